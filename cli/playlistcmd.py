"""``mirtag playlist ROWS --where ... --out X.m3u8``: playlists (M3U8 or Navidrome smart playlist) from scan rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mirtag.runtime.errors import MirtagError


def playlist_cmd(
    rows: Annotated[
        Path, typer.Argument(metavar="ROWS", help="A scan output (.csv, .jsonl or .json).", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Playlist file (.m3u8, or .nsp with --format nsp).")],
    where: Annotated[
        str | None,
        typer.Option("--where", "-w", help='Filter, e.g. "quadrant=Q4 and genre=Jazz and music>0.9" (see README).'),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N tracks.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="m3u8 (the matching files) or nsp (Navidrome smart-playlist rules).")
    ] = "m3u8",
    name: Annotated[str | None, typer.Option("--name", help="Playlist name (nsp; default: the file name).")] = None,
    absolute: Annotated[bool, typer.Option("--absolute", help="Absolute paths in an M3U8.")] = False,
    label_map: Annotated[
        Path | None,
        typer.Option("--label-map", help="The TOML label map given to `mirtag write` (nsp: written names)."),
    ] = None,
) -> None:
    """Write the tracks of ROWS that match --where as a playlist; prints the count on stderr."""
    from mirtag.cli.main import err
    from mirtag.runtime import playlist as pl
    from mirtag.runtime import rows as rows_mod

    try:
        if fmt not in ("m3u8", "nsp"):
            raise pl.PlaylistError(f"--format must be m3u8 or nsp, got {fmt!r}")
        if not rows.is_file():
            raise pl.PlaylistError(f"{rows}: no such scan output")
        by_path = {}
        for row in rows_mod.read_rows(rows, rows_mod.format_of(str(rows), None)):
            by_path[rows_mod.path_from_row(row)] = row  # the last row of a file wins
        data = list(by_path.values())
        if fmt == "nsp":
            if not where:
                raise pl.PlaylistError("--format nsp needs --where (the rules)")
            from mirtag.runtime.labelmap import LabelMap

            flt = pl.Filter(where, pl.labels_of(data))
            names = LabelMap.load(label_map).names  # the genre/mood names `mirtag write` puts into files
            doc = pl.write_nsp(out, flt, name=name, limit=limit, label_name=names)
            rules = json.dumps({k: doc[k] for k in ("all", "any") if k in doc}, ensure_ascii=False)
            err.print(f"wrote Navidrome rules {rules} to {out}", markup=False, highlight=False)
            return
        chosen = pl.select(data, where, limit)
        count = pl.write_m3u8(out, [pl.entry_of(r) for r in chosen], relative=not absolute)
    except pl.FilterError as exc:
        err.print(f"mirtag playlist: --where: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except MirtagError as exc:
        err.print(f"mirtag playlist: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    err.print(
        f"wrote {count} of {sum(r.get('status') == 'ok' for r in data)} tracks to {out}", markup=False, highlight=False
    )
