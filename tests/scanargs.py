"""The ``mirtag scan`` command lines the tests run: the options every test repeats, in one place."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TINY = str(Path(__file__).parent / "fixtures" / "tiny")
"""The tiny test classifier (tests/fixtures/tiny)."""

MIRTAG = [sys.executable, "-m", "mirtag.cli.main"]
"""The ``mirtag`` command as a subprocess of this interpreter."""


def scan_args(
    root: str | os.PathLike[str], out: str | os.PathLike[str], *extra: str, workers: int = 1, model: str = TINY
) -> list[str]:
    """``scan ROOT --out OUT --model MODEL --device cpu --workers N EXTRA...`` (the program not included)."""
    return [
        "scan",
        str(root),
        "--out",
        str(out),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--workers",
        str(workers),
        *extra,
    ]
