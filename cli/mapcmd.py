"""``mirtag map``: genre maps from a generator and the classifier it belongs to.

PNGs and ``--data`` JSON go to files; ``distribution`` prints its table to
stdout (data); progress and summaries go to stderr. Errors are MirtagError
(one line, exit 1 via ``mirtag.cli.main.main``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mirtag.cli.options import DEVICE_HELP, check_device
from mirtag.runtime.errors import MirtagError, ParameterError

_LOGGER = logging.getLogger("mirtag")

map_app = typer.Typer(
    help="Genre maps: what the classifier calls the windows the generator makes, across its 10-dim code.",
    no_args_is_help=True,
)

HeadOpt = Annotated[str, typer.Option("--head", help="Classifier head to map.")]
DimsOpt = Annotated[tuple[int, int], typer.Option("--dims", help="The two code dims of the plane: x then y (0-based).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the noise vector that fixes every other dim of z.")]
GenOpt = Annotated[Optional[Path], typer.Option("--generator", help="Generator .onnx/.onnx.json or folder (default: the shipped one).")]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="Classifier .onnx/.onnx.json or folder (default: the generator folder's).")]
DeviceOpt = Annotated[str, typer.Option("--device", help=DEVICE_HELP, callback=check_device)]
DataOpt = Annotated[Optional[Path], typer.Option("--data", help="Also write the numbers as JSON here.")]


def _err():
    from mirtag.cli.main import err

    return err


def _say(text: str) -> None:
    _err().print(text, markup=False, highlight=False)


def _load(generator: Optional[Path], model: Optional[Path], device: str):
    from mirtag.runtime.genremap import load_pair

    return load_pair(generator, model, device=device)


def _write_json(path: Optional[Path], data: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
    _say(f"wrote {path}")


def _shares(labels: list[str], argmax) -> str:
    import numpy as np

    a = np.asarray(argmax).ravel()
    parts = [(labels[k], float((a == k).mean())) for k in range(len(labels)) if (a == k).any()]
    return ", ".join(f"{lab} {s:.0%}" for lab, s in sorted(parts, key=lambda p: -p[1]))


def place_tracks(grid: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """Scanned tracks (``mirtag scan`` JSONL or JSON rows) at the grid cell nearest (L1) to their head probabilities."""
    import numpy as np

    from mirtag.runtime import rows as rows_mod
    from mirtag.runtime.genremap import nearest_cells

    if not path.is_file():
        raise MirtagError(f"{path}: no such tracks file (JSONL rows from mirtag scan)")
    rows = rows_mod.read_rows(path, "json" if path.suffix.lower() == ".json" else "jsonl")
    head, labels = grid["head"], list(grid["labels"])
    vectors, kept, skipped, other_model = [], [], 0, 0
    for row in rows:
        info = ((row.get("heads") or {}) if isinstance(row, dict) else {}).get(head)
        probs = info.get("probs") if isinstance(info, dict) else None
        if row.get("status", "ok") != "ok" or not isinstance(probs, dict) or set(probs) != set(labels):
            skipped += 1
            continue
        if row.get("model") and row["model"] != grid.get("classifier"):
            other_model += 1
        vectors.append([float(probs[lab]) for lab in labels])
        kept.append(row)
    if skipped:
        _LOGGER.warning("%s: %d rows skipped (errors, or no %r head with the labels %s)", path, skipped, head, labels)
    if other_model:
        _LOGGER.warning("%s: %d rows were tagged by another model than %s", path, other_model, grid.get("classifier"))
    if not kept:
        raise MirtagError(f"{path}: no row has {head!r} probabilities with the labels {labels}")
    axis = grid["axis"]
    tracks = []
    for row, (iy, ix, dist) in zip(kept, nearest_cells(grid, np.asarray(vectors))):
        p = rows_mod.path_from_row(row)
        tracks.append({"path": row.get("path", p), "stem": Path(p).stem, "ix": ix, "iy": iy,
                       "x": axis[ix], "y": axis[iy], "l1": round(dist, 6)})
    return tracks


@map_app.command("grid")
def grid_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")],
    data: DataOpt = None,
    head: HeadOpt = "genre",
    dims: DimsOpt = (0, 1),
    grid: Annotated[int, typer.Option("--grid", min=2, max=401, help="Points per axis.")] = 41,
    seed: SeedOpt = 0,
    generator: GenOpt = None,
    model: ModelOpt = None,
    tracks: Annotated[Optional[Path], typer.Option("--tracks", help="mirtag scan JSONL: place its tracks on the map.")] = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Colour the plane of two code dims by the classifier's top label."""
    from mirtag.cli.plots import plot_grid

    gm = _load(generator, model, device)
    result = gm.grid(head=head, dims=dims, n=grid, seed=seed)
    if tracks is not None:
        result["tracks"] = place_tracks(result, tracks)
        _say(f"placed {len(result['tracks'])} tracks")
    plot_grid(result, out)
    _say(f"wrote {out}  ({result['head']}: {_shares(result['labels'], result['argmax'])})")
    _write_json(data, result)


@map_app.command("line", context_settings={"ignore_unknown_options": True})  # negative coordinates
def line_cmd(
    x0: Annotated[float, typer.Argument(help="Start, code dim I.")],
    y0: Annotated[float, typer.Argument(help="Start, code dim J.")],
    x1: Annotated[float, typer.Argument(help="End, code dim I.")],
    y1: Annotated[float, typer.Argument(help="End, code dim J.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")],
    data: DataOpt = None,
    head: HeadOpt = "genre",
    dims: DimsOpt = (0, 1),
    seed: SeedOpt = 0,
    steps: Annotated[int, typer.Option("--steps", min=2, max=10001, help="Points along the line.")] = 101,
    generator: GenOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Each label's probability along the straight line (X0, Y0) -> (X1, Y1) of a code plane (e.g. -1 -1 1 1)."""
    from mirtag.cli.plots import plot_line

    gm = _load(generator, model, device)
    result = gm.line(x0, y0, x1, y1, head=head, dims=dims, n=steps, seed=seed)
    plot_line(result, out)
    _say(f"wrote {out}")
    _write_json(data, result)


@map_app.command("gallery")
def gallery_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")],
    head: HeadOpt = "genre",
    per_label: Annotated[int, typer.Option("--per-label", min=1, max=20, help="Examples per label.")] = 3,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Random windows to draw from.")] = 2000,
    seed: SeedOpt = 0,
    generator: GenOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """The most confident generated windows of each label (harmonic and percussive channel)."""
    from mirtag.cli.plots import plot_gallery

    gm = _load(generator, model, device)
    labels = list(gm.head(head).labels)
    gallery = gm.gallery(head=head, per_label=per_label, n_samples=samples, seed=seed)
    title = f"{gm.generator.ref} \u2192 {gm.classifier.ref}: most confident {head} of {samples} samples, seed {seed}"
    plot_gallery(gallery, labels, out, title=title)
    empty = [lab for lab in labels if not gallery[lab]]
    _say(f"wrote {out}" + (f"  (never on top: {', '.join(empty)})" if empty else ""))


@map_app.command("distribution")
def distribution_cmd(
    n: Annotated[int, typer.Option("--n", min=1, help="Random windows to generate.")] = 10000,
    data: DataOpt = None,
    head: HeadOpt = "genre",
    seed: SeedOpt = 0,
    generator: GenOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
) -> None:
    """How often each label is on top over N random generated windows; a table (label, count, share) on stdout."""
    gm = _load(generator, model, device)
    result = gm.distribution(head=head, n=n, seed=seed)
    if sum(result["counts"].values()) != n:  # pragma: no cover - an invariant
        raise ParameterError("counts do not sum to n")
    typer.echo("label\tcount\tshare")
    for lab in result["labels"]:
        c = result["counts"][lab]
        typer.echo(f"{lab}\t{c}\t{c / n:.4f}")
    _write_json(data, result)
