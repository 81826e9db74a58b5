"""Command-line options shared by several commands, validated before any work (a bad value: exit 2)."""

from __future__ import annotations

from typing import Optional

import typer
from typer.core import TyperGroup


def check_device(value: Optional[str]) -> Optional[str]:
    """Typer callback: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, else a usage error (exit 2)."""
    if value is None:
        return value
    from mirtag.runtime.errors import ParameterError
    from mirtag.runtime.session import Device

    try:
        Device.parse(value)
    except ParameterError:
        hint = "  (a GPU is 'cuda')" if value.strip().lower() in ("gpu", "nvidia") else ""
        raise typer.BadParameter(f"{value!r} is not auto, cpu, cuda or cuda:N{hint}") from None
    return value


DEVICE_HELP = "auto, cpu, cuda or cuda:N."


# --------------------------------------------------------------------------- help text

_METAVARS = {"Path": "PATH", "int": "N", "float": "NUMBER", "str": "TEXT"}


def _type_metavar(annotation) -> str:
    """PATH, N, NUMBER or TEXT for a parameter's annotation (list[X]: X's; tuple: each element's)."""
    from typing import get_args, get_origin

    origin = get_origin(annotation)
    if origin is list:
        return _type_metavar(get_args(annotation)[0])
    if origin is tuple:
        return " ".join(_type_metavar(a) for a in get_args(annotation))
    if origin is not None:  # Optional[X] and other unions
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _type_metavar(args[0]) if len(args) == 1 else "TEXT"
    return _METAVARS.get(getattr(annotation, "__name__", ""), "TEXT")


# Duck-typed on the parameter API: typer vendors click privately (typer._click) and wraps its types.
def _metavar(param) -> str | None:
    """What the help shows for a value: ``PATH``, ``N``, ``TEXT``..., never a Python type."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""  # a flag (or -v, -vv) takes no value
    if param.metavar is not None:
        return param.metavar
    desc = getattr(param, "type_descriptor", None)
    if desc is None or getattr(desc, "is_choice", False):
        return None  # typer lists the choices
    return _type_metavar(desc.annotation)


def readable_help(command) -> None:
    """Give every parameter of ``command`` and its subcommands a plain metavar (typer would show Python types)."""
    for param in command.params:
        param.metavar = _metavar(param)
        if param.param_type_name == "argument":
            # Its own name (X0, PATH), singular: the usage line adds "..." to one that repeats.
            name = param.name.upper()
            param.metavar = name.removesuffix("S") if param.nargs != 1 else name
            # An argument's name already says what it takes; typer's type column would repeat it as a Python type.
            param.display_type_rich = lambda ctx: None
    get_help_option = command.get_help_option

    def plain_help_option(ctx):
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""  # --help is a flag, not <bool>
        return option

    command.get_help_option = plain_help_option
    for sub in getattr(command, "commands", {}).values():
        readable_help(sub)


class ReadableGroup(TyperGroup):
    """The top-level ``mirtag`` group: plain metavars in every command's help (see :func:`readable_help`)."""

    def main(self, *args, **kwargs):
        readable_help(self)
        return super().main(*args, **kwargs)
