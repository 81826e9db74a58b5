"""What ``mirtag scan`` shows: usage checks, the progress bar, the summary and the exit code.

The work (walk, resume, locking, workers, writing) is :func:`mirtag.runtime.scan.scan`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import typer
from mirtag.runtime.errors import MirtagError
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
_LOGGER = logging.getLogger("mirtag")


def _usage(message: str) -> typer.Exit:
    err.print(f"mirtag scan: {message}", markup=False, highlight=False)
    return typer.Exit(2)


def _check_paths(paths: list[Path]) -> None:
    """A missing folder is a usage error; a missing or unreadable explicit file becomes an error row."""
    from mirtag.runtime.audio import AUDIO_EXTENSIONS

    for p in paths:
        if not os.path.lexists(p) and p.suffix.lower() not in AUDIO_EXTENSIONS:
            raise _usage(f"{p}: no such folder or file")


def _default_folder(quiet: bool) -> Path:
    """The user's music folder, for ``mirtag scan`` without a path (said on stderr; a usage error if missing)."""
    from mirtag.runtime.userdirs import music_dir

    folder = music_dir()
    if not folder.is_dir():
        raise _usage(f"no folder given, and your music folder {folder} does not exist: give the folders to scan")
    if not quiet:
        err.print(f"scanning your music folder {folder} (no folder given)", markup=False, highlight=False)
    return folder


def _no_audio_hint(paths: list[Path], include) -> str:
    """Why nothing was found: the extensions a scan picks up (or the --include globs)."""
    from mirtag.runtime.audio import AUDIO_EXTENSIONS

    where = ", ".join(str(p) for p in paths)
    if include:
        return f"no file under {where} matches --include {' '.join(include)}"
    return (
        f"no audio files under {where}: a scan picks up {' '.join(sorted(AUDIO_EXTENSIONS))} "
        "(--include GLOB for others)"
    )


def _ray_engine(address: str | None, gpus_per_actor: float):
    """A Scanner factory for ``--engine ray`` (a drop-in Scanner: same rows, writer and resume)."""

    def make(settings, card):
        from mirtag.runtime.rayscan import RayScanner, RaySettings

        return RayScanner(settings, RaySettings(address=address, gpus_per_actor=gpus_per_actor), card=card)

    return make


def run_scan(
    paths: list[Path],
    out: str,
    fmt: str | None,
    settings: dict[str, Any],
    *,
    include,
    exclude,
    follow_symlinks: bool,
    force: bool,
    retry_errors: bool,
    strict: bool,
    quiet: bool,
    shard: str | None = None,
    embeddings: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    gpus_per_actor: float = 0.0,
    write_tags: bool = False,
) -> None:
    """Run a scan for the CLI; exits 2 on usage errors, 1 with ``strict`` and error rows, 130/143 when stopped."""
    from mirtag.runtime import rows as rows_mod
    from mirtag.runtime.scan import ScanSettings, scan
    from mirtag.runtime.shard import Shard

    try:
        fmt = rows_mod.format_of(out, fmt)
        if out == "-" and fmt == "json":
            raise rows_mod.OutputError("--out - supports csv and jsonl")
        scan_settings = ScanSettings(**settings)
        part = Shard.parse(shard) if shard else None
        if write_tags and out == "-":
            raise rows_mod.OutputError("--write-tags needs --out FILE (the rows it writes from)")
        if engine not in ("local", "ray"):
            raise MirtagError(f"--engine must be local or ray, got {engine!r}")
        if engine == "local" and (ray_address or gpus_per_actor):
            raise MirtagError("--ray-address and --gpus-per-actor need --engine ray")
        if embeddings == "auto" and out == "-":
            raise rows_mod.OutputError("--embeddings auto names the file after --out; give a file name")
    except MirtagError as exc:
        raise _usage(str(exc)) from None
    if not paths:
        paths = [_default_folder(quiet)]
    _check_paths(paths)
    stats = None
    progress = None
    task = None
    stopped_by = {}

    def on_start(s) -> None:
        nonlocal stats, progress, task
        stats = s
        if quiet:
            return
        if s.total == 0 and s.skipped == 0:
            err.print(_no_audio_hint(paths, include), markup=False, highlight=False)
        where = f" on {s.provider}" if s.provider else ""
        err.print(
            f"{s.model}{where}; {s.total} file{'s' if s.total != 1 else ''} to scan, {s.skipped} already in {out}",
            markup=False,
            highlight=False,
        )
        if s.total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            progress = Progress(
                TextColumn("scanning"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[last]}"),
                console=err,
                transient=True,
            )
            progress.start()
            task = progress.add_task("scan", total=s.total, last="")

    def on_term(signum, frame):  # SIGTERM stops like Ctrl-C: rows so far kept, output closed cleanly
        stopped_by["signal"] = signum
        raise KeyboardInterrupt

    import time

    t0 = time.monotonic()
    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # the scan cleans up on KeyboardInterrupt
    rows = None
    try:
        rows = scan(
            paths,
            scan_settings,
            include=tuple(include),
            exclude=tuple(exclude),
            follow_symlinks=follow_symlinks,
            out=out,
            fmt=fmt,
            resume=not force,
            retry_errors=retry_errors,
            on_start=on_start,
            shard=part,
            embeddings=embeddings,
            engine=_ray_engine(ray_address, gpus_per_actor) if engine == "ray" else None,
        )
        for row in rows:
            if row["status"] == "error":
                _LOGGER.warning("%s: %s", row["path"], row["error"])
            if progress is not None:
                progress.update(task, advance=1, last=os.path.basename(row["path"])[-40:])
    except KeyboardInterrupt:
        if progress is not None:
            progress.stop()
        if rows is not None:
            with contextlib.suppress(KeyboardInterrupt):
                # A signal that lands while the generator waits at a yield leaves it open: close it now (output
                # closed and unlocked, workers stopped) rather than whenever it is garbage-collected.
                rows.close()
        if out != "-":
            from mirtag.runtime.output import OutputLock

            with contextlib.suppress(KeyboardInterrupt, OSError):
                OutputLock.remove_stale(out)  # the interrupt may have landed as the lock was being dropped
        err.print(
            "interrupted: rows written so far are kept; run the same command to resume", markup=False, highlight=False
        )
        raise typer.Exit(143 if stopped_by else 130) from None
    except rows_mod.OutputConflictError as exc:
        raise _usage(str(exc)) from None
    finally:
        if rows is not None:
            rows.close()  # a no-op when the scan ran to its end
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if progress is not None:
            progress.stop()
    wall = time.monotonic() - t0
    if not quiet and stats is not None:
        xrt = f", {stats.audio_s / wall:,.0f}x real time" if wall > 0 and stats.audio_s else ""
        kept = (
            f", {stats.kept_errors} earlier error row{'s' if stats.kept_errors != 1 else ''} kept"
            if stats.kept_errors
            else ""
        )
        err.print(
            f"done: {stats.ok} ok, {stats.error} error, {stats.skipped} already done{kept} in {wall:.1f} s{xrt}"
            + (f" ({stats.provider})" if stats.provider else ""),
            markup=False,
            highlight=False,
        )
    if write_tags:
        from mirtag.cli.writecmd import run_write

        run_write(out, apply=True, model=settings["model"], strict=strict, quiet=quiet)
    if strict and stats is not None and stats.output_errors:
        raise typer.Exit(1)
