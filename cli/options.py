"""Command-line options shared by several commands, validated before any work (a bad value: exit 2)."""

from __future__ import annotations

from typing import Optional

import typer


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
