"""``mirtag write`` and ``mirtag untag``: scan results into the files' tags, and back out.

The work is done by :mod:`mirtag.runtime.tagwrite`; this module parses options
and prints. stdout carries the per-file changes (the data of a dry run);
skips, errors and the summary go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from mirtag.runtime.errors import MirtagError

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True, highlight=False)


def _show(values) -> str:
    return "-" if not values else "; ".join(values)


class _Bar:
    """A transient progress bar on stderr, fed by the runtime's ``progress(done, total, result)`` callback."""

    def __init__(self, label: str, enabled: bool):
        self.progress = None
        self.task = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
            )

    def __call__(self, done: int, total: int, result) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task(str(total), total=total)
        self.progress.update(self.task, completed=done)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _report(results, apply: bool, quiet: bool, what: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for res in results:
        counts[res.status] = counts.get(res.status, 0) + 1
        if res.status in ("written", "would write"):
            how = f" ({res.method})" if res.method else ""
            out.print(f"{res.path}{how}", markup=False)
            for value, (old, new) in res.changes.items():
                out.print(f"  {value} [{res.keys.get(value, '')}]: {_show(old)} -> {_show(new)}", markup=False)
        elif res.status in ("skipped", "error") and not quiet:
            err.print(f"{res.status}: {res.path}: {res.reason}", markup=False, highlight=False)
    if not quiet:
        order = ("written", "would write", "unchanged", "skipped", "error")
        summary = ", ".join(f"{counts.get(k, 0)} {k}" for k in order if counts.get(k) or k in ("written", "error"))
        tail = "" if apply else f" (dry run: nothing was changed; add --apply to {what})"
        err.print(f"done: {summary}{tail}", markup=False, highlight=False)
    return counts


def run_write(
    rows: str,
    *,
    apply: bool,
    policy: str = "fill",
    heads: str | None = None,
    min_confidence: float | None = None,
    top_k: int | None = None,
    label_map: Path | None = None,
    journal: Path | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    model: Path | None = None,
    wav: bool = False,
    allow_hardlinks: bool = False,
    id3v24: bool = False,
    strict: bool = False,
    quiet: bool = False,
    jobs: int = 2,
    in_place: bool = True,
) -> None:
    """``mirtag write`` (also run by ``mirtag scan --write-tags``); exits 1/2 through typer.Exit."""
    from mirtag.runtime.tagwrite import WriteOptions, check_rows, write_tags

    try:
        opts = WriteOptions(
            policy=policy,
            heads=tuple(h.strip() for h in heads.split(",") if h.strip()) if heads else WriteOptions.heads,
            min_confidence=min_confidence,
            top_k=top_k,
            label_map=label_map,
            model=model,
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            wav=wav,
            allow_hardlinks=allow_hardlinks,
            id3v24=id3v24,
            in_place=in_place,
        )
        check_rows(rows, opts)
    except MirtagError as exc:
        err.print(f"mirtag write: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    bar = _Bar("writing tags" if apply else "planning", not quiet)
    try:
        counts = _report(
            write_tags(rows, opts, apply=apply, journal=journal, progress=bar, jobs=jobs), apply, quiet, "write"
        )
    except MirtagError as exc:  # the journal cannot be written: nothing more is touched
        bar.stop()
        err.print(f"mirtag write: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    finally:
        bar.stop()
    if strict and counts.get("error"):
        raise typer.Exit(1)


def write(
    rows: Annotated[str, typer.Argument(help="A scan output (.csv, .jsonl or .json).", show_default=False)],
    apply: Annotated[
        bool, typer.Option("--apply", help="Write the files (default: a dry run that changes nothing).")
    ] = False,
    policy: Annotated[
        str,
        typer.Option(
            help="fill: genre/mood only where the file has none; merge: the file's values, then mirtag's; replace."
        ),
    ] = "fill",
    heads: Annotated[
        Optional[str], typer.Option(help="Heads to write, comma-separated (default genre,moods,quadrant,tags).")
    ] = None,
    min_confidence: Annotated[
        Optional[float],
        typer.Option(
            min=0.0, max=1.0, help="Probability floor for every label (default: the model card's thresholds)."
        ),
    ] = None,
    top_k: Annotated[
        Optional[int],
        typer.Option(min=1, help="At most K labels per head (default: the card's cap: 2 genres, 3 moods)."),
    ] = None,
    label_map: Annotated[
        Optional[Path], typer.Option(help="TOML label map laid over the default (rename, split, drop labels).")
    ] = None,
    journal: Annotated[
        Optional[Path],
        typer.Option(help="Journal of old values (default: ROWS.tagjournal.jsonl); mirtag untag reads it."),
    ] = None,
    include: Annotated[Optional[list[str]], typer.Option(help="Only files matching this glob (repeatable).")] = None,
    exclude: Annotated[
        Optional[list[str]], typer.Option(help="Leave out files matching this glob (repeatable).")
    ] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="The model card the scan used, when it is not a shipped model.")
    ] = None,
    wav: Annotated[
        bool, typer.Option("--wav", help="Write WAV files too (ffmpeg and iTunes ignore their ID3 chunk).")
    ] = False,
    allow_hardlinks: Annotated[
        bool,
        typer.Option(
            "--allow-hardlinks",
            help="Write files with several hard links (a copy-and-replace leaves the other names as they were).",
        ),
    ] = False,
    id3v24: Annotated[
        bool, typer.Option("--id3v24", help="Save ID3v2.3 files as v2.4 (default: keep each file's version).")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any file failed.")] = False,
    jobs: Annotated[
        int, typer.Option(min=1, help="Files worked on at once (the audio check decodes each file twice).")
    ] = 2,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place/--no-in-place",
            help="Save in place when the tag fits its padding (default); --no-in-place: always a verified copy.",
        ),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No skip lines or summary on stderr.")] = False,
) -> None:
    """Write genres, moods and mirtag's fields from a scan output into the files' tags (dry run unless --apply)."""
    run_write(
        rows,
        apply=apply,
        policy=policy,
        heads=heads,
        min_confidence=min_confidence,
        top_k=top_k,
        label_map=label_map,
        journal=journal,
        include=include,
        exclude=exclude,
        model=model,
        wav=wav,
        allow_hardlinks=allow_hardlinks,
        id3v24=id3v24,
        strict=strict,
        quiet=quiet,
        jobs=jobs,
        in_place=in_place,
    )


def untag(
    journal: Annotated[
        Path, typer.Argument(help="The journal of a mirtag write (ROWS.tagjournal.jsonl).", show_default=False)
    ],
    apply: Annotated[
        bool, typer.Option("--apply", help="Restore the files (default: a dry run that changes nothing).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Restore even fields edited since mirtag wrote them.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any file failed.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No skip lines or summary on stderr.")] = False,
) -> None:
    """Put back the values a mirtag write replaced (and remove the fields it added)."""
    from mirtag.runtime.tagwrite import untag as untag_files

    from mirtag.runtime.tagjournal import read_journal

    try:
        read_journal(journal)  # unreadable or not a journal: a usage error, before anything is touched
    except MirtagError as exc:
        err.print(f"mirtag untag: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    bar = _Bar("restoring" if apply else "planning", not quiet)
    try:
        counts = _report(untag_files(journal, apply=apply, force=force, progress=bar), apply, quiet, "restore")
    except MirtagError as exc:
        err.print(f"mirtag untag: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    finally:
        bar.stop()
    if strict and counts.get("error"):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``write`` and ``untag`` to the ``mirtag`` app."""
    app.command("write")(write)
    app.command("untag")(untag)
