"""``mirtag tag FILE...``: a human-readable view of a few files, the labels of every head with their probabilities.

For reading, not for libraries (that is ``mirtag scan``): one block per file on
stdout, a bad file one line on stderr (exit 1 at the end if any failed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mirtag.cli.options import DEVICE_HELP, check_device
from mirtag.runtime.errors import MirtagError


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def describe(result, card, top: Optional[int] = None) -> list[str]:
    """The lines of one file's view: per head, its decided labels (or the ``top`` best) with probabilities.

    Parameters
    ----------
    result : mirtag.runtime.tagger.TagResult
    card : mirtag.runtime.card.ModelCard
    top : int, optional
        Show the ``top`` most probable labels of each head whether or not they
        pass their thresholds (musicnn's ``--topN``). Default: the labels the
        card's decision rules give (what ``scan`` writes in ``top``).
    """
    width = max(len(h.name) for h in card.heads)
    music = result.is_music(card)
    lines = []
    if not music:
        why = "silent" if "silent" in result.warnings else "below the music threshold"
        lines.append(f"  not music ({why}): no head names a label")
    for head in card.heads:
        probs = result.heads[head.name]
        ranked = sorted(probs, key=lambda lab: (-probs[lab], head.labels.index(lab)))
        chosen = ranked[:top] if top else result.top(head.name, card)
        shown = [_label(head, lab, probs[lab]) for lab in chosen]
        if not shown:
            best = ranked[0]
            shown = [f"(none; best {_label(head, best, probs[best])})"]
        lines.append(f"  {head.name:<{width}}  " + ", ".join(shown))
    return lines


def _label(head, label: str, p: float) -> str:
    desc = (head.descriptions or {}).get(label)
    return f"{label}{f' ({desc})' if desc else ''} {p:.2f}"


def tag_cmd(
    files: Annotated[list[Path], typer.Argument(help="Audio files to tag.", show_default=False)],
    top: Annotated[
        Optional[int],
        typer.Option("--top", min=1, help="Show the N most probable labels of each head (default: the decided ones)."),
    ] = None,
    model: Annotated[
        Optional[Path], typer.Option("--model", help="Model .onnx/.onnx.json or folder (default: the shipped one).")
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, callback=check_device)] = "auto",
) -> None:
    """Print each file's labels per head with their probabilities (human-readable; scan is for libraries)."""
    from mirtag.cli.main import err
    from mirtag.runtime import Tagger

    tagger = Tagger.load(model, device=device)
    failed = 0
    for i, path in enumerate(files):
        try:
            result = tagger.tag_file(path)
        except MirtagError as exc:
            failed += 1
            err.print(f"mirtag tag: {exc}", markup=False, highlight=False)
            continue
        if i:
            typer.echo("")
        typer.echo(f"{path}  ({_duration(result.duration_s)}, {result.n_windows} windows, {tagger.card.ref})")
        for line in describe(result, tagger.card, top):
            typer.echo(line)
    if failed:
        raise typer.Exit(1)
