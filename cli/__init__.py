"""mirtag.cli: the ``mirtag`` command (typer + rich); thin: parse, call the runtime or trainer, present."""

import os as _os
import signal as _signal
import sys as _sys
from pathlib import Path as _Path


def _interrupted_early(signum, frame):  # pragma: no cover - timing
    # Ctrl-C while the command is still importing: nothing to clean up yet, and a
    # KeyboardInterrupt traceback from inside an import helps no one.
    _sys.stderr.write("mirtag: interrupted\n")
    _os._exit(130)


def _is_the_command() -> bool:
    """True when this process is ``mirtag`` / ``python -m mirtag[.cli.main]`` (not an embedder or a test run)."""
    argv0 = _Path(_sys.argv[0]) if _sys.argv and _sys.argv[0] else _Path()
    return argv0.name in ("mirtag", "mirtag.exe", "-m") or (
        argv0.name == "__main__.py" and argv0.parent.name == "mirtag"
    )


if _is_the_command() and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted_early)
