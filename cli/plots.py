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


def label_colors(n: int) -> np.ndarray:
    """n distinguishable RGB colours (tab10 up to 10 labels, tab20 up to 20, then evenly spaced hues)."""
    from matplotlib import colormaps

    if n <= 10:
        cols = colormaps["tab10"](np.arange(n))
    elif n <= 20:
        cols = colormaps["tab20"](np.arange(n))
    else:
        cols = colormaps["hsv"](np.arange(n) / n)
    return np.asarray(cols)[:, :3]


def _save(fig, out_png: str | os.PathLike[str]) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def _confidence(pmax: np.ndarray, n_labels: int, kind: str = "softmax") -> np.ndarray:
    """Shading strength: 0.25 at chance (1/K for softmax heads, 0 for sigmoid ones) to 1 at certainty."""
    floor = 1.0 / n_labels if kind == "softmax" else 0.0
    s = np.clip((pmax - floor) / (1.0 - floor), 0.0, 1.0)
    return 0.25 + 0.75 * s


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
    """Regions coloured by top label, lighter where the classifier is less sure, boundaries in black.

    ``data`` is a ``GenreMap.grid`` result; an optional ``tracks`` list of
    ``{"x", "y", "stem"}`` is drawn as markers (the first few labelled).
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    labels = list(data["labels"])
    probs = np.asarray(data["probs"], np.float64)  # [iy][ix][label]
    arg = np.asarray(data["argmax"], np.int64)
    axis = np.asarray(data["axis"], np.float64)
    n = len(axis)
    colors = label_colors(len(labels))
    shade = _confidence(probs.max(axis=2), len(labels), data.get("kind", "softmax"))[..., None]
    rgb = 1.0 - shade * (1.0 - colors[arg])  # blend the label colour with white
    half = (axis[1] - axis[0]) / 2 if n > 1 else 0.5
    extent = (axis[0] - half, axis[-1] + half, axis[0] - half, axis[-1] + half)

    fig, ax = plt.subplots(figsize=(7.2, 5.6))
    ax.imshow(rgb, origin="lower", extent=extent, interpolation="nearest", aspect="equal")
    present = [k for k in range(len(labels)) if (arg == k).any()]
    segments = boundary_segments(arg, axis)
    if segments:
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(segments, colors="black", linewidths=1.0, capstyle="projecting"))
    dims = data["dims"]
    ax.set_xlabel(f"code dim {dims[0]}")
    ax.set_ylabel(f"code dim {dims[1]}")
    ax.set_xlim(-1 - half, 1 + half)
    ax.set_ylim(-1 - half, 1 + half)
    ax.set_xticks(np.linspace(-1, 1, 5))
    ax.set_yticks(np.linspace(-1, 1, 5))
    who = f"{data['generator']} \u2192 {data['classifier']}\n" if "generator" in data else ""
    ax.set_title(f"{who}{data['head']} map, seed {data['seed']} (paler = less confident)", fontsize=10)

    _draw_tracks(ax, data.get("tracks") or [], 4 * half)

    share = {k: float((arg == k).mean()) for k in present}
    handles = [Patch(facecolor=colors[k], edgecolor="black", linewidth=0.5, label=f"{labels[k]} ({_pct(share[k])})")
               for k in present]
    ax.legend(handles=handles, title=data["head"], loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
              title_fontsize=9, frameon=False)
    fig.tight_layout()
    return _save(fig, out_png)


def _draw_tracks(ax, tracks: list[dict[str, Any]], min_gap: float) -> None:
    """Markers at the tracks' cells (bigger where several share one); a few labelled, without overlaps."""
    if not tracks:
        return
    groups: dict[tuple[float, float], list[str]] = {}
    for t in tracks:
        groups.setdefault((float(t["x"]), float(t["y"])), []).append(str(t["stem"]))
    pts = list(groups)
    sizes = [14 + 10 * min(len(groups[p]) - 1, 6) for p in pts]
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=sizes, marker="o", facecolors="white",
               edgecolors="black", linewidths=0.8, zorder=3)
    labelled: list[tuple[float, float]] = []
    for x, y in sorted(pts, key=lambda p: -len(groups[p])):
        if len(labelled) >= MAX_TRACK_LABELS:
            break
        if any(abs(x - lx) < 2.5 * min_gap and abs(y - ly) < min_gap for lx, ly in labelled):
            continue
        labelled.append((x, y))
        stems = groups[(x, y)]
        text = stems[0][:22] + (f" +{len(stems) - 1}" if len(stems) > 1 else "")
        right = x > 0.3
        ax.annotate(text, (x, y), xytext=(-5 if right else 5, 3), textcoords="offset points", fontsize=7,
                    ha="right" if right else "left", zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})


def plot_line(data: dict[str, Any], out_png: str | os.PathLike[str], min_prob: float = 0.1) -> Path:
    """Each label's probability along the line; the legend names labels that exceed ``min_prob`` somewhere."""
    plt = _pyplot()

    labels = list(data["labels"])
    probs = np.asarray(data["probs"], np.float64)  # [step][label]
    t = np.asarray(data["t"], np.float64)
    colors = label_colors(len(labels))
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    for k, lab in enumerate(labels):
        if probs[:, k].max() > min_prob:
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
    ax.set_xlabel(f"position along the line, (code dim {dims[0]}, code dim {dims[1]})")
    ax.set_ylabel(f"{data['head']} probability")
    who = f"{data['generator']} \u2192 {data['classifier']}\n" if "generator" in data else ""
    ax.set_title(f"{who}{data['head']} from ({x0:+.2f}, {y0:+.2f}) to ({x1:+.2f}, {y1:+.2f}), seed {data['seed']}",
                 fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, out_png)


def plot_gallery(gallery: dict[str, list[tuple[np.ndarray, float]]], labels: Sequence[str],
                 out_png: str | os.PathLike[str], title: str | None = None) -> Path:
    """One column per label, one row per example; each example shows its harmonic and percussive channel."""
    plt = _pyplot()

    labels = list(labels)
    rows = max([len(gallery.get(lab, [])) for lab in labels] + [1])
    body_h = 1.25 * rows + 0.6
    fig = plt.figure(figsize=(min(1.7 * len(labels), 17.0), body_h + (0.4 if title else 0.0)))
    body = fig
    if title:
        head, body = fig.subfigures(2, 1, height_ratios=[0.4, body_h])
        head.suptitle(title, fontsize=10, y=0.5, va="center")
    subfigs = np.atleast_1d(body.subfigures(1, len(labels), wspace=0.02))
    for sub, lab in zip(subfigs, labels):
        items = gallery.get(lab, [])
        sub.suptitle(lab, fontsize=9, fontweight="bold")
        axes = np.asarray(sub.subplots(rows, 2, squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.35}))
        for r in range(rows):
            for c in range(2):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if r >= len(items):
                    ax.axis("off")
                    continue
                window, prob = items[r]
                ax.imshow(np.asarray(window)[c], origin="lower", aspect="auto", cmap="magma", vmin=0.0, vmax=1.0,
                          interpolation="nearest")
                ax.set_title(f"{'HP'[c]}  p={prob:.2f}" if c == 0 else "P", fontsize=7, pad=2)
                if c == 0 and r == rows - 1:
                    ax.set_ylabel("mel", fontsize=7)
        if not items:
            sub.text(0.5, 0.5, "no sample", ha="center", va="center", fontsize=8, color="0.4")
    return _save(fig, out_png)
