"""The ``mirtag`` command line.

stdout carries data only; logs, progress and summaries go to stderr.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from mirtag.runtime.errors import MirtagError

app = typer.Typer(
    name="mirtag",
    help="Music auto-tagging: genres, mood quadrant and mood tags from ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()
_LOGGER = logging.getLogger("mirtag")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging on stderr (-vv for debug).")] = 0,
) -> None:
    _setup_logging(verbose)


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@app.command()
def info() -> None:
    """Print versions, onnxruntime providers, the numba threading layer and cache, and the shipped models."""
    import numba

    from mirtag.runtime import card as card_mod
    from mirtag.runtime import session

    table = Table(show_header=False, box=None)
    rows = [
        ("mirtag", _version("mirtag")),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy / numba", f"{_version('numpy')} / {numba.__version__}"),
        ("numba threading layer", f"{numba.config.THREADING_LAYER} (kernels run serial unless parallel=True)"),
        ("numba cache dir", numba.config.CACHE_DIR or "next to the sources (__pycache__); set NUMBA_CACHE_DIR for read-only installs"),
    ]
    runtimes = session.installed_runtimes()
    rows.append(("onnxruntime packages", ", ".join(f"{r} {_version(r)}" for r in runtimes) or "none"))
    if len(runtimes) > 1:
        rows.append(("WARNING", "onnxruntime and onnxruntime-gpu are both installed: CUDA will not work"))
    try:
        ort = session.import_onnxruntime()
        rows.append(("providers available", ", ".join(ort.get_available_providers())))
        n, why = session.cuda_driver_devices()
        rows.append(("CUDA devices", str(n) if n else f"0 ({why})"))
    except MirtagError as exc:
        rows.append(("providers available", str(exc)))
    models_dir = card_mod.exported_dir()
    rows.append(("models folder", str(models_dir)))
    try:
        reg = card_mod.read_registry(models_dir)
        defaults = {v: k for k, v in reg["default"].items()}
        for name, entry in reg["models"].items():
            tag = f" (default {defaults[name]})" if name in defaults else ""
            rows.append(("model", f"{name}: {entry.get('file')}{tag}"))
        if not reg["models"]:
            rows.append(("model", "none shipped yet"))
    except MirtagError as exc:
        rows.append(("model", str(exc)))
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


def main() -> None:
    """Entry point: run the app, turning MirtagError into a one-line message and exit 1."""
    try:
        app()
    except MirtagError as exc:
        err.print(f"mirtag: error: {exc}", markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
