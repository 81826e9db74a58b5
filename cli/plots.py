"""PNG renderings of genre maps (matplotlib, Agg backend, imported inside the functions).

The data come from :mod:`mirtag.runtime.genremap`: :func:`plot_grid` takes a
``GenreMap.grid`` dict (optionally with ``tracks``), :func:`plot_line` a
``GenreMap.line`` dict, :func:`plot_gallery` a ``GenreMap.gallery`` result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

DPI = 100
MAX_TRACK_LABELS = 12
"""At most this many track markers get their file stem written beside them."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


KELLY_COLORS = (
    "#F3C300",
    "#875692",
    "#F38400",
    "#A1CAF1",
    "#BE0032",
    "#C2B280",
    "#848482",
    "#008856",
    "#E68FAC",
    "#0067A5",
    "#F99379",
    "#604E97",
    "#F6A600",
    "#B3446C",
    "#DCD300",
    "#882D17",
    "#8DB600",
    "#654522",
    "#E25822",
    "#2B3D26",
)
"""Kelly's 20 colours of maximum contrast (without white and black): distinct hues, no light/dark pairs."""


def label_colors(n: int) -> np.ndarray:
    """n colours of distinct hues: tab10 up to 10 labels, Kelly's up to 20, then evenly spaced hues.

    Never two shades of one hue (tab20's pairs read as "the same genre, less sure").
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    if n <= 10:
        cols = colormaps["tab10"](np.arange(n))[:, :3]
    elif n <= len(KELLY_COLORS):
        cols = [to_rgb(c) for c in KELLY_COLORS[:n]]
    else:
        cols = colormaps["hsv"](np.arange(n) / n)[:, :3]
    return np.asarray(cols, np.float64)


def axis_label(data: dict[str, Any], i: int) -> str:
    """What a map axis is: one dim of the generator's code, its index in z, and its range."""
    dim = data["dims"][i]
    z = data.get("code_offset", 0) + dim
    return f"generator code dim {dim} (input z[{z}]), from -1 to 1"


def _save(fig, out_png: str | os.PathLike[str]) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, bbox_inches="tight")  # legends sit outside the axes
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def _pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.005 else "<1%"


def boundary_segments(arg: np.ndarray, axis: np.ndarray) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Cell edges between neighbouring grid cells whose top labels differ (arg is [iy][ix])."""
    arg = np.asarray(arg)
    axis = np.asarray(axis, np.float64)
    half = (axis[1] - axis[0]) / 2 if len(axis) > 1 else 0.5
    segs = []
    for iy, ix in zip(*np.nonzero(arg[:, 1:] != arg[:, :-1])):  # vertical edges
        x = (axis[ix] + axis[ix + 1]) / 2
        segs.append(((x, axis[iy] - half), (x, axis[iy] + half)))
    for iy, ix in zip(*np.nonzero(arg[1:, :] != arg[:-1, :])):  # horizontal edges
        y = (axis[iy] + axis[iy + 1]) / 2
        segs.append(((axis[ix] - half, y), (axis[ix] + half, y)))
    return segs


def plot_grid(data: dict[str, Any], out_png: str | os.PathLike[str]) -> Path:
    """Two panels over the code plane: the top label (distinct hues, boundaries in black) and how sure it is.

    ``data`` is a ``GenreMap.grid`` result; an optional ``tracks`` list (from
    ``GenreMap``'s ``place_tracks``) is drawn as markers filled with each
    track's own top label, the first few named with their fit distance.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    labels = list(data["labels"])
    probs = np.asarray(data["probs"], np.float64)  # [iy][ix][label]
    arg = np.asarray(data["argmax"], np.int64)
    axis = np.asarray(data["axis"], np.float64)
    n = len(axis)
    tracks = data.get("tracks") or []
    # Colours go to the labels this map shows (and its tracks' own labels), in label order: a map rarely shows
    # more than 10, so they get tab10's distinct hues even when the head has 14 labels.
    present = [k for k in range(len(labels)) if (arg == k).any() or any(t.get("top") == labels[k] for t in tracks)]
    colors = np.ones((len(labels), 3))
    colors[present] = label_colors(len(present))
    half = (axis[1] - axis[0]) / 2 if n > 1 else 0.5
    extent = (axis[0] - half, axis[-1] + half, axis[0] - half, axis[-1] + half)

    fig, (ax, axc) = plt.subplots(1, 2, figsize=(12.4, 5.8), gridspec_kw={"width_ratios": [1.0, 0.78]})
    ax.imshow(colors[arg], origin="lower", extent=extent, interpolation="nearest", aspect="equal")
    segments = boundary_segments(arg, axis)
    if segments:
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segments, colors="black", linewidths=1.0, capstyle="projecting"))
    sure = axc.imshow(
        probs.max(axis=2),
        origin="lower",
        extent=extent,
        interpolation="nearest",
        aspect="equal",
        cmap="Greys",
        vmin=0.0,
        vmax=1.0,
    )
    fig.colorbar(sure, ax=axc, fraction=0.046, pad=0.04, label=f"probability of the top {data['head']}")
    for a in (ax, axc):
        a.set_xlabel(axis_label(data, 0), fontsize=8)
        a.set_ylabel(axis_label(data, 1), fontsize=8)
        a.set_xlim(-1 - half, 1 + half)
        a.set_ylim(-1 - half, 1 + half)
        a.set_xticks(np.linspace(-1, 1, 5))
        a.set_yticks(np.linspace(-1, 1, 5))
    ax.set_title(f"top {data['head']} of the classifier", fontsize=10)
    axc.set_title("how sure it is", fontsize=10)
    who = f"{data['generator']} \u2192 {data['classifier']}: " if "generator" in data else ""
    fig.suptitle(
        f"{who}each point is one window the generator makes with two code dims set to (x, y) and its "
        f"other inputs fixed by seed {data['seed']}",
        fontsize=9,
    )

    _draw_tracks(ax, tracks, 4 * half, colors, labels)

    share = {k: float((arg == k).mean()) for k in present}
    handles = [
        Patch(facecolor=colors[k], edgecolor="black", linewidth=0.5, label=f"{labels[k]} ({_pct(share[k])})")
        for k in present
    ]
    title = f"{data['head']} (share of the map)"
    if tracks:
        off = sum(t.get("top") != t.get("cell_top") for t in tracks)
        title += (
            f"\n\u25cf track, filled with its own top {data['head']};\nwhite ring: {off} of {len(tracks)} "
            "on a cell of another"
        )
    ax.legend(
        handles=handles,
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=7,
        title_fontsize=8,
        frameon=False,
    )
    fig.tight_layout()
    return _save(fig, out_png)


def _draw_tracks(ax, tracks: list[dict[str, Any]], min_gap: float, colors: np.ndarray, labels: list[str]) -> None:
    """Markers at the tracks' cells, filled with each track's own top label; a few named with their fit distance."""
    if not tracks:
        return
    index = {lab: k for k, lab in enumerate(labels)}
    face = [colors[index[t["top"]]] if t.get("top") in index else (1.0, 1.0, 1.0) for t in tracks]
    # A track whose own top label is not its cell's gets a white ring: it does not fit the map there.
    edge = ["white" if t.get("top") != t.get("cell_top") else "black" for t in tracks]
    ax.scatter(
        [t["x"] for t in tracks],
        [t["y"] for t in tracks],
        s=30,
        marker="o",
        c=face,
        edgecolors=edge,
        linewidths=1.2,
        zorder=3,
    )
    labelled: list[tuple[float, float]] = []
    for t in sorted(tracks, key=lambda t: t.get("l1", 0.0)):
        if len(labelled) >= MAX_TRACK_LABELS:
            break
        x, y = float(t["x"]), float(t["y"])
        if any(abs(x - lx) < 2.5 * min_gap and abs(y - ly) < min_gap for lx, ly in labelled):
            continue
        labelled.append((x, y))
        text = f"{str(t['stem'])[:22]} (fit {t.get('l1', 0.0):.2f})"
        right = x > 0.3
        ax.annotate(
            text,
            (x, y),
            xytext=(-5 if right else 5, 3),
            textcoords="offset points",
            fontsize=7,
            ha="right" if right else "left",
            zorder=4,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
        )


def plot_line(data: dict[str, Any], out_png: str | os.PathLike[str], min_prob: float = 0.1) -> Path:
    """Each label's probability along the line; the legend names labels that exceed ``min_prob`` somewhere."""
    plt = _pyplot()

    labels = list(data["labels"])
    probs = np.asarray(data["probs"], np.float64)  # [step][label]
    t = np.asarray(data["t"], np.float64)
    shown = [k for k in range(len(labels)) if probs[:, k].max() > min_prob]
    colors = np.full((len(labels), 3), 0.8)
    colors[shown] = label_colors(len(shown))  # distinct hues for the labels the legend names
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for k, lab in enumerate(labels):
        if k in shown:
            ax.plot(t, probs[:, k], color=colors[k], linewidth=1.8, label=lab)
        else:
            ax.plot(t, probs[:, k], color="0.8", linewidth=0.8)
    (x0, y0), (x1, y1) = data["start"], data["end"]
    dims = data["dims"]
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ticks = np.linspace(0, 1, 5)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:.2f}\n({x0 + t * (x1 - x0):+.2f}, {y0 + t * (y1 - y0):+.2f})" for t in ticks], fontsize=8)
    ax.set_xlabel(f"position along the line (0 to 1) and its point (generator code dim {dims[0]}, code dim {dims[1]})")
    ax.set_ylabel(f"{data['head']} probability")
    who = f"{data['generator']} \u2192 {data['classifier']}\n" if "generator" in data else ""
    ax.set_title(
        f"{who}{data['head']} from ({x0:+.2f}, {y0:+.2f}) to ({x1:+.2f}, {y1:+.2f}), seed {data['seed']}", fontsize=10
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, out_png)


GALLERY_GAMMA = 0.4
"""Thumbnails use a power scale: mel energy is mostly small next to each window's maximum of 1 (linear looks black)."""


def plot_gallery(
    gallery: dict[str, list[tuple[np.ndarray, float]]],
    labels: Sequence[str],
    out_png: str | os.PathLike[str],
    title: str | None = None,
    head: str = "genre",
) -> Path:
    """One column per label, one row per example; each example shows its harmonic and percussive part.

    Each thumbnail is a generated window: mel bands (low at the bottom) over its
    3 s, brightness on a shared power-scaled colour bar.
    """
    plt = _pyplot()
    from matplotlib.colors import PowerNorm

    labels = list(labels)
    norm = PowerNorm(gamma=GALLERY_GAMMA, vmin=0.0, vmax=1.0)
    rows = max([len(gallery.get(lab, [])) for lab in labels] + [1])
    body_h = 1.35 * rows + 0.8
    fig = plt.figure(figsize=(min(1.8 * len(labels), 18.0) + 0.9, body_h + (0.5 if title else 0.0)))
    body = fig
    if title:
        top, body = fig.subfigures(2, 1, height_ratios=[0.5, body_h])
        top.suptitle(title, fontsize=10, y=0.6, va="center")
        top.text(
            0.5,
            0.12,
            "each example: harmonic part (left) and percussive part (right) of one generated 3-s window; "
            "y: mel band, low to high; x: time",
            ha="center",
            fontsize=8,
            color="0.3",
        )
    subfigs = np.atleast_1d(body.subfigures(1, len(labels) + 1, wspace=0.02, width_ratios=[1.0] * len(labels) + [0.35]))
    image = None
    for sub, lab in zip(subfigs, labels):
        items = gallery.get(lab, [])
        sub.suptitle(lab, fontsize=9, fontweight="bold")
        axes = np.asarray(sub.subplots(rows, 2, squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.45}))
        for r in range(rows):
            for c in range(2):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if r >= len(items):
                    ax.axis("off")
                    continue
                window, prob = items[r]
                image = ax.imshow(
                    np.asarray(window)[c],
                    origin="lower",
                    aspect="auto",
                    cmap="magma",
                    norm=norm,
                    interpolation="nearest",
                )
                ax.set_title("harmonic" if c == 0 else "percussive", fontsize=6, pad=2)
                if c == 0:
                    ax.set_xlabel(f"p = {prob:.2f}", fontsize=6.5, labelpad=1, loc="left")
        if not items:
            sub.text(0.5, 0.5, f"never the top\n{head} of a sample", ha="center", va="center", fontsize=8, color="0.4")
    if image is not None:
        cax = subfigs[-1].add_axes([0.25, 0.15, 0.2, 0.7])
        subfigs[-1].colorbar(image, cax=cax, label=f"energy (window max = 1; power scale, gamma {GALLERY_GAMMA})")
    return _save(fig, out_png)
