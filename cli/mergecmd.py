"""``mirtag merge OUT PART...``: join the outputs of sharded or repeated scans.

The merged rows go to OUT (stdout only with ``OUT -`` and ``--format``); the
summary goes to stderr. Refusals (another model, other settings, another schema)
are one line and exit 2.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from mirtag.runtime.errors import MirtagError


def merge_cmd(
    out: Annotated[
        str,
        typer.Argument(
            metavar="OUT",
            help="Merged output .csv, .jsonl or .json (may be one of the parts); - for stdout.",
            show_default=False,
        ),
    ],
    parts: Annotated[
        list[str],
        typer.Argument(
            metavar="PART", help="Outputs of `mirtag scan` (for example one per --shard).", show_default=False
        ),
    ],
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv or jsonl (needed with OUT -).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT when it exists and is not one of the parts.")
    ] = False,
    path_map: Annotated[
        Optional[list[str]],
        typer.Option(
            "--path-map",
            help="FROM=TO: give rows under path prefix FROM (another machine's mount of the library) the prefix TO "
            "(repeatable; first match wins).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Join scan outputs into one, one row per file (refuses parts from another model or other settings)."""
    from mirtag.cli.main import err
    from mirtag.runtime.merge import merge_outputs

    try:
        report = merge_outputs(out, parts, fmt=fmt, force=force, path_map=path_map or ())
    except MirtagError as exc:
        err.print(f"mirtag merge: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if not quiet:
        extra = f", {report.replaced} for older file versions" if report.replaced else ""
        err.print(
            f"merged {report.parts} parts: {report.rows_read} rows read, {report.rows_written} written "
            f"({report.duplicates} duplicates dropped{extra})",
            markup=False,
            highlight=False,
        )
