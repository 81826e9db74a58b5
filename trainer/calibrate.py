"""Calibration and precision-tuned decisions, fitted on validation (the card's ``temperature``,
``thresholds`` and ``max_labels``; the runtime applies them in :mod:`mirtag.runtime.decisions`).

- :func:`fit_temperature`: one temperature per head minimising the (masked)
  negative log-likelihood of the track-level probabilities;
- :func:`tune_head_threshold`: one threshold per head, on calibrated
  probabilities, maximising F-beta (beta 0.5 weighs precision twice as much as
  recall) over every supervised (track, label) pair, optionally subject to a
  precision floor. One threshold per head rather than per label: validation has
  a handful of positives for most labels, and per-label thresholds tuned on them
  are noise; one threshold also keeps ``top`` a prefix of the probability ranking;
- :func:`reliability_table`: observed frequency against predicted probability in
  bins, with the expected calibration error (ECE);
- :func:`decision_stats`: precision, recall and list lengths of the runtime's
  own decisions (caps included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mirtag.runtime.card import Head
from mirtag.runtime.decisions import calibrate, decide
from mirtag.runtime.errors import ParameterError

TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.2), np.log(5.0), 121))
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)
DEFAULT_MAX_LABELS = {"genre": 2, "moods": 3, "emotions": 3, "tags": 5}
HEAD_BETA = {"music": 1.0}
"""Heads tuned for F1 rather than F0.5: a false "not music" removes every label of a track, so the music
gate weighs recall as much as precision."""
SOFT_POSITIVE = 0.3
"""A soft target (the share of listeners who felt an emotion) counts as positive from this share."""


def _flat(Y: np.ndarray, P: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if Y.shape != P.shape:
        raise ParameterError(f"Y and P must have the same shape, got {Y.shape} and {P.shape}")
    keep = np.ones(Y.shape, bool) if mask is None else np.asarray(mask, dtype=bool)
    return Y[keep], P[keep]


def nll(Y: np.ndarray, P: np.ndarray, mask: np.ndarray | None, kind: str) -> float:
    """Mean negative log-likelihood: cross-entropy per supervised row (softmax) or BCE per pair (sigmoid)."""
    P = np.clip(np.asarray(P, dtype=np.float64), 1e-7, 1 - 1e-7)
    Y = np.asarray(Y, dtype=np.float64)
    if kind == "softmax":
        rows = np.ones(len(Y), bool) if mask is None else np.asarray(mask, bool).all(axis=1)
        return float(-(Y[rows] * np.log(P[rows])).sum(axis=1).mean()) if rows.any() else float("nan")
    y, p = _flat(Y, P, mask)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean()) if y.size else float("nan")


def fit_temperature(
    Y: np.ndarray, P: np.ndarray, mask: np.ndarray | None, kind: str, grid: np.ndarray = TEMPERATURE_GRID
) -> float:
    """The temperature (grid search, 0.2-5) with the lowest validation NLL; 1.0 without supervision.

    Parameters
    ----------
    Y : np.ndarray [shape=(n, L)]
        Targets in [0, 1] (soft targets allowed).
    P : np.ndarray [shape=(n, L)]
        Uncalibrated track-level probabilities.
    mask : np.ndarray [shape=(n, L), bool], optional
    kind : str
        ``"sigmoid"`` or ``"softmax"``.
    """
    if mask is not None and not np.asarray(mask, bool).any():
        return 1.0
    losses = [nll(Y, calibrate(P, kind, float(t)), mask, kind) for t in grid]
    return round(float(grid[int(np.nanargmin(losses))]), 3)


def binary_targets(Y: np.ndarray) -> np.ndarray:
    """Hard targets: 1/0 stay, soft shares count as positive from :data:`SOFT_POSITIVE`."""
    Y = np.asarray(Y, dtype=np.float64)
    return Y >= (0.5 if np.isin(Y, (0.0, 1.0)).all() else SOFT_POSITIVE)


def tune_head_threshold(
    Y: np.ndarray,
    S: np.ndarray,
    mask: np.ndarray | None,
    beta: float = 0.5,
    min_precision: float | None = None,
    grid: np.ndarray = THRESHOLD_GRID,
) -> float:
    """One threshold for a sigmoid head maximising micro F-beta on validation.

    With ``min_precision``, only thresholds whose precision reaches it compete
    (the highest threshold when none does). Ties go to the higher threshold
    (fewer, surer labels).
    """
    y, s = _flat(binary_targets(Y), S, mask)
    y = y.astype(bool)
    if not y.any():
        return 0.5
    pred = s[None, :] >= grid[:, None]
    tp = (pred & y).sum(axis=1).astype(np.float64)
    fp = (pred & ~y).sum(axis=1)
    fn = y.sum() - tp
    prec = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    b2 = beta * beta
    f = np.divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, out=np.zeros_like(tp), where=tp > 0)
    if min_precision is not None:
        ok = prec >= min_precision
        if not ok.any():
            return float(grid[-1])
        f = np.where(ok, f, -1.0)
    best = np.flatnonzero(f == f.max())
    return float(grid[best[-1]])


def reliability_table(Y: np.ndarray, P: np.ndarray, mask: np.ndarray | None, bins: int = 10) -> dict[str, Any]:
    """Observed positive rate per predicted-probability bin, and the ECE.

    Soft targets (shares of listeners) are compared as they are: the observed
    value of a bin is then the mean share.

    Returns
    -------
    dict
        ``rows``: ``[{"bin": "0.0-0.1", "n": ..., "mean_p": ..., "observed": ...}]`` (empty bins left out);
        ``ece``: the count-weighted mean ``|observed - mean_p|``; ``n``: pairs judged.
    """
    y, p = _flat(np.clip(np.asarray(Y, dtype=np.float64), 0.0, 1.0), P, mask)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        if not sel.any():
            continue
        mp, obs = float(p[sel].mean()), float(y[sel].mean())
        rows.append(
            {
                "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                "n": int(sel.sum()),
                "mean_p": round(mp, 3),
                "observed": round(obs, 3),
            }
        )
        ece += sel.sum() * abs(obs - mp)
    return {"rows": rows, "ece": round(float(ece / max(1, y.size)), 4), "n": int(y.size)}


def decision_stats(
    Y: np.ndarray,
    P: np.ndarray,
    mask: np.ndarray | None,
    head: Head,
    labels: Sequence[str],
    k: int | None = None,
    music: np.ndarray | None = None,
) -> dict[str, float]:
    """Precision and recall of the runtime's decisions (:func:`mirtag.runtime.decisions.decide`).

    Parameters
    ----------
    Y, P : np.ndarray [shape=(n, L)]
        Targets and calibrated probabilities; columns in ``labels`` order.
    mask : np.ndarray [shape=(n, L)], optional
        Only supervised pairs count; tracks with no supervised label are left out.
    head : Head
        Thresholds, cap and kind.
    music : np.ndarray [shape=(n,), bool], optional
        The runtime's music decision per track (not music: no labels).
    """
    Yb = binary_targets(Y)
    M = np.ones(Yb.shape, bool) if mask is None else np.asarray(mask, bool)
    tp = fp = fn = 0
    lengths, empty, n = [], 0, 0
    for i in range(len(Yb)):
        if not M[i].any():
            continue
        n += 1
        chosen = [] if music is not None and not music[i] else decide(dict(zip(labels, map(float, P[i]))), head, k)
        pick = np.isin(np.asarray(labels), chosen)
        tp += int((pick & Yb[i] & M[i]).sum())
        fp += int((pick & ~Yb[i] & M[i]).sum())
        fn += int((~pick & Yb[i] & M[i]).sum())
        lengths.append(len(chosen))
        empty += not chosen
    return {
        "tracks": n,
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, tp + fn), 4),
        "mean_labels": round(float(np.mean(lengths)) if lengths else 0.0, 3),
        "max_labels_seen": int(max(lengths, default=0)),
        "empty_share": round(empty / max(1, n), 4),
    }


def fit_decisions(
    heads: Mapping[str, Head],
    val_targets: Mapping[str, np.ndarray],
    val_probs: Mapping[str, np.ndarray],
    val_masks: Mapping[str, np.ndarray],
    beta: float = 0.5,
    min_precision: float | None = None,
    max_labels: Mapping[str, int] | None = None,
) -> dict[str, Head]:
    """New heads with temperature, one tuned threshold per sigmoid head, and caps (validation only).

    ``beta`` is the F-beta of every head but those in :data:`HEAD_BETA`.
    """
    caps = DEFAULT_MAX_LABELS if max_labels is None else max_labels
    out = {}
    for name, h in heads.items():
        if name not in val_probs:
            out[name] = h
            continue
        t = fit_temperature(val_targets[name], val_probs[name], val_masks[name], h.kind)
        thresholds = h.thresholds
        if h.kind == "sigmoid":
            cal = calibrate(val_probs[name], h.kind, t)
            thr = tune_head_threshold(val_targets[name], cal, val_masks[name], HEAD_BETA.get(name, beta), min_precision)
            thresholds = {lab: thr for lab in h.labels}
        out[name] = Head(
            h.name,
            h.kind,
            h.labels,
            h.descriptions,
            thresholds,
            temperature=t,
            max_labels=caps.get(name, h.max_labels) if h.kind == "sigmoid" else None,
        )
    return out
