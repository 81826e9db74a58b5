"""``mirtag map``: genre maps from a generator and the classifier it belongs to.

PNGs and ``--data`` JSON go to files; ``distribution`` prints its table to
stdout (data); progress and summaries go to stderr. Errors are MirtagError
(one line, exit 1 via ``mirtag.cli.main.main``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mirtag.cli.options import DEVICE_HELP, check_device
from mirtag.runtime.errors import ParameterError

_LOGGER = logging.getLogger("mirtag")

map_app = typer.Typer(
    help="Genre maps: what the classifier calls the windows the generator makes, across its 10-dim code.",
    no_args_is_help=True,
)

HeadOpt = Annotated[str, typer.Option("--head", help="Classifier head to map.")]
DimsOpt = Annotated[tuple[int, int], typer.Option("--dims", help="The two code dims of the plane: x then y (0-based).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the noise vector that fixes every other dim of z.")]
MapSeedOpt = Annotated[
    Optional[int],
    typer.Option(
        "--seed",
        help="Seed of the noise vector that fixes every other generator input (default: of seeds "
        "0-9, the one whose map shows the most labels).",
    ),
]
GenOpt = Annotated[
    Optional[Path], typer.Option("--generator", help="Generator .onnx/.onnx.json or folder (default: the shipped one).")
]
ModelOpt = Annotated[
    Optional[Path],
    typer.Option("--model", help="Classifier .onnx/.onnx.json or folder (default: the generator folder's)."),
]
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


def _summary(labels: list[str], argmax) -> str:
    """``Pop/Rock 41%, Jazz 22%, ...``: each label's share of the map's cells, largest first."""
    import numpy as np

    from mirtag.runtime.genremap import cell_shares

    share = cell_shares(np.asarray(argmax), len(labels))
    return ", ".join(f"{labels[k]} {share[k]:.0%}" for k in np.argsort(-share, kind="stable") if share[k] > 0)


def _median(values: list[float]) -> float:
    import numpy as np

    return float(np.median(values))


@contextmanager
def _progress(what: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when it is a terminal; yields ``update(done, total)``."""
    if quiet or not _err().is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=_err(),
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _seed(gm, head: str, dims: tuple[int, int], seed: Optional[int]) -> int:
    """``--seed``, or the seed the rule picks (:meth:`GenreMap.pick_seed`), said on stderr."""
    if seed is not None:
        return seed
    from mirtag.runtime.genremap import MAP_SEEDS, SHOWN_SHARE

    picked, shares = gm.pick_seed(head, dims)
    shown = sum(s >= SHOWN_SHARE for s in shares[picked])
    _say(
        f"seed {picked}: of seeds {MAP_SEEDS[0]}-{MAP_SEEDS[-1]}, the one whose map shows the most {head} labels "
        f"({shown} with >= {SHOWN_SHARE:.0%} of a 7 x 7 preview); --seed N picks another"
    )
    return picked


@map_app.command("grid")
def grid_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")],
    data: DataOpt = None,
    head: HeadOpt = "genre",
    dims: DimsOpt = (0, 1),
    grid: Annotated[int, typer.Option("--grid", min=2, max=401, help="Points per axis.")] = 41,
    seed: MapSeedOpt = None,
    generator: GenOpt = None,
    model: ModelOpt = None,
    tracks: Annotated[
        Optional[Path], typer.Option("--tracks", help="mirtag scan output (.csv, .jsonl, .json): place its tracks.")
    ] = None,
    device: DeviceOpt = "cpu",
) -> None:
    """Colour the plane of two code dims by the classifier's top label."""
    from mirtag.cli.plots import plot_grid
    from mirtag.runtime.genremap import place_tracks, read_tracks

    gm = _load(generator, model, device)
    labels = list(gm.head(head).labels)
    scanned = read_tracks(tracks, head, labels, gm.classifier.ref) if tracks is not None else None  # before any work
    seed = _seed(gm, head, dims, seed)
    with _progress(f"{head} map, {grid} x {grid} windows") as update:
        result = gm.grid(head=head, dims=dims, n=grid, seed=seed, progress=update)
    if scanned is not None:
        result["tracks"] = place_tracks(result, scanned)
        off = sum(t["top"] != t["cell_top"] for t in result["tracks"])
        _say(
            f"placed {len(scanned)} tracks; {off} sit on a cell whose top {head} is not their own "
            f"(median fit distance {_median([t['l1'] for t in result['tracks']]):.2f})"
        )
    plot_grid(result, out)
    _say(f"wrote {out}  ({result['head']}: {_summary(result['labels'], result['argmax'])})")
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
    with _progress(f"{samples} generated windows") as update:
        gallery = gm.gallery(head=head, per_label=per_label, n_samples=samples, seed=seed, progress=update)
    title = (
        f"{gm.generator.ref} \u2192 {gm.classifier.ref}: for each {head}, the generated windows the classifier "
        f"is most sure of (of {samples} random ones, seed {seed}; p = its probability)"
    )
    plot_gallery(gallery, labels, out, title=title, head=head)
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
    gm.head(head)  # a wrong head fails before any work
    with _progress(f"{n} generated windows") as update:
        result = gm.distribution(head=head, n=n, seed=seed, progress=update)
    if sum(result["counts"].values()) != n:  # pragma: no cover - an invariant
        raise ParameterError("counts do not sum to n")
    typer.echo("label\tcount\tshare")
    for lab in result["labels"]:
        c = result["counts"][lab]
        typer.echo(f"{lab}\t{c}\t{c / n:.4f}")
    _write_json(data, result)
