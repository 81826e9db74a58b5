"""``mirtag similar SEED... --embeddings FILE``: the tracks most like the seeds (stdout, or an M3U8 playlist)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mirtag.cli.options import check_device
from mirtag.runtime.errors import MirtagError


def similar_cmd(
    seeds: Annotated[
        list[str],
        typer.Argument(
            metavar="SEED...",
            help="Tracks in the embeddings file, or any audio file (tagged on the fly).",
            show_default=False,
        ),
    ],
    embeddings: Annotated[
        Path, typer.Option("--embeddings", "-e", help="Embeddings file of a scan (mirtag scan --embeddings).")
    ],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many tracks.")] = 20,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write them as an M3U8 playlist.")] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", help="The model that made the file, for seeds not in it (default: the shipped one)."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto, cpu, cuda or cuda:N (seeds tagged on the fly).", callback=check_device)
    ] = "auto",
    absolute: Annotated[bool, typer.Option("--absolute", help="Absolute paths in the playlist.")] = False,
) -> None:
    """Print the N tracks most like SEED... (exact cosine of embeddings), best first: score<TAB>path."""
    from mirtag.cli.main import err
    from mirtag.runtime.embeddings import Embeddings
    from mirtag.runtime.playlist import entry_of, write_m3u8
    from mirtag.runtime.similar import similar

    try:
        emb = Embeddings.open(embeddings)
    except MirtagError as exc:
        err.print(f"mirtag similar: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    with emb:
        try:
            hits = similar(emb, seeds, n, model=model, device=device)
        except MirtagError as exc:  # a seed that is neither indexed nor audio, another model
            err.print(f"mirtag similar: {exc}", markup=False, highlight=False)
            raise typer.Exit(1) from None
        for h in hits:
            typer.echo(f"{h.score:.4f}\t{h.path}")
        if out is not None:
            count = write_m3u8(out, [entry_of(h.key) for h in hits], relative=not absolute)
            err.print(f"wrote {count} tracks to {out}", markup=False, highlight=False)
