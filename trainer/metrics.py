"""Evaluation metrics, confidence intervals and report writing (pure numpy).

Everything here is deterministic and index-based: labels are integer indices
(single-label heads) or columns of a ``(n, L)`` matrix (multi-label heads);
human-readable names are passed separately, only where something is drawn or
written. The module deliberately avoids torch, sklearn and scipy so evaluation
can run (and be tested) on a machine with only the runtime dependencies; the
definitions follow ``sklearn.metrics`` so numbers are comparable with the
literature.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from mirtag.runtime.errors import ParameterError

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "accuracy",
    "average_precision",
    "bootstrap_ci",
    "confusion_csv",
    "confusion_matrix",
    "confusion_png",
    "macro_auc",
    "multilabel_prf",
    "precision_recall_f1",
    "roc_auc",
    "top1_accuracy",
    "track_level",
    "track_votes",
    "tune_thresholds",
    "write_report",
]


# --------------------------------------------------------------------------- #
# single-label classification
# --------------------------------------------------------------------------- #


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exactly matching labels.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, shape (n,), int
        True and predicted class indices.

    Returns
    -------
    float
        Accuracy in [0, 1]; nan when ``n == 0``.
    """
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ParameterError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Count matrix with true classes in rows and predicted classes in columns.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, shape (n,), int
        Class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes; fixes the matrix size even when some classes are absent.

    Returns
    -------
    np.ndarray, shape (n_classes, n_classes), int64
        ``cm[i, j]`` is the number of samples of true class ``i`` predicted as ``j``.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ParameterError(f"y_true and y_pred differ in length: {y_true.shape} vs {y_pred.shape}")
    # An out-of-range index would silently land in another cell of the flat
    # bincount, so refuse it instead.
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ParameterError(f"{name} has indices outside [0, {n_classes})")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise ``num / den`` with 0 where ``den == 0`` (and no warning)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_f1(cm: np.ndarray) -> dict:
    """Per-class and averaged precision, recall and F1 from a confusion matrix.

    Undefined ratios (no predictions, no support) are 0, as with
    ``sklearn``'s ``zero_division=0``, but without a warning.

    Parameters
    ----------
    cm : np.ndarray, shape (C, C)
        Confusion matrix, true classes in rows (see :func:`confusion_matrix`).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``: np.ndarray (C,) float64;
        ``support``: np.ndarray (C,) int64 (true count per class);
        ``macro_f1``: unweighted mean of ``f1`` over all C classes;
        ``weighted_precision``, ``weighted_recall``, ``weighted_f1``: means
        weighted by support (0 when the matrix is empty).
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ParameterError(f"confusion matrix must be square, got shape {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2.0 * precision * recall, precision + recall)
    total = support.sum()
    weights = _safe_div(support, total) if total else np.zeros_like(precision)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.astype(np.int64),
        # All classes count, including absent ones (f1 = 0), like sklearn with
        # an explicit label list: a head that never predicts a class is penalised.
        "macro_f1": float(f1.mean()) if f1.size else float("nan"),
        "weighted_precision": float(np.sum(weights * precision)),
        "weighted_recall": float(np.sum(weights * recall)),
        "weighted_f1": float(np.sum(weights * f1)),
    }


# --------------------------------------------------------------------------- #
# multi-label classification
# --------------------------------------------------------------------------- #


def multilabel_prf(Y: np.ndarray, B: np.ndarray, mask: np.ndarray | None = None, min_positives: int = 5) -> dict:
    """Per-label and averaged precision, recall and F1 of thresholded multi-label predictions.

    Each label is judged on the rows where it is supervised (``mask``). Labels
    with fewer than ``min_positives`` supervised positives are left out of the
    averages (as in :func:`macro_auc`: an F1 from two positives is noise).

    Parameters
    ----------
    Y : np.ndarray, shape (n, L), {0, 1}
        Ground truth.
    B : np.ndarray, shape (n, L), bool
        Predictions (scores at or above the label's threshold).
    mask : np.ndarray, shape (n, L), bool, optional
        True where the label is known for that row; None means all known.
    min_positives : int
        Minimum supervised positives for a label to enter the averages.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``: np.ndarray (L,) float64;
        ``support``, ``tp``, ``fp``, ``fn``, ``tn``: np.ndarray (L,) int64;
        ``evaluated``: np.ndarray (L,) bool (labels in the averages);
        ``macro_f1``; ``weighted_precision``, ``weighted_recall``,
        ``weighted_f1`` (support-weighted); ``label_accuracy`` (fraction of
        correct supervised (row, label) decisions over the evaluated labels).
        Averages are nan when no label qualifies.
    """
    Y = np.asarray(Y).astype(bool)
    B = np.asarray(B).astype(bool)
    if Y.shape != B.shape or Y.ndim != 2:
        raise ParameterError(f"Y and B must be (n, L) of the same shape, got {Y.shape} and {B.shape}")
    known = np.ones_like(Y) if mask is None else np.asarray(mask, dtype=bool)
    if known.shape != Y.shape:
        raise ParameterError(f"mask shape {known.shape} differs from Y shape {Y.shape}")
    tp = (Y & B & known).sum(axis=0)
    fp = (~Y & B & known).sum(axis=0)
    fn = (Y & ~B & known).sum(axis=0)
    tn = (~Y & ~B & known).sum(axis=0)
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    f1 = _safe_div(2.0 * precision * recall, precision + recall)
    support = tp + fn
    evaluated = support >= max(1, min_positives)
    out = {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.astype(np.int64),
        "tp": tp.astype(np.int64),
        "fp": fp.astype(np.int64),
        "fn": fn.astype(np.int64),
        "tn": tn.astype(np.int64),
        "evaluated": evaluated,
    }
    if not evaluated.any():
        nan = float("nan")
        return out | {
            "macro_f1": nan,
            "weighted_precision": nan,
            "weighted_recall": nan,
            "weighted_f1": nan,
            "label_accuracy": nan,
        }
    w = support[evaluated] / support[evaluated].sum()
    decisions = (tp + fp + fn + tn)[evaluated].sum()
    return out | {
        "macro_f1": float(f1[evaluated].mean()),
        "weighted_precision": float(np.sum(w * precision[evaluated])),
        "weighted_recall": float(np.sum(w * recall[evaluated])),
        "weighted_f1": float(np.sum(w * f1[evaluated])),
        "label_accuracy": float((tp + tn)[evaluated].sum() / decisions) if decisions else float("nan"),
    }


def top1_accuracy(Y: np.ndarray, S: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of rows whose highest-scoring supervised label is one of their positives.

    What a user of a tagger sees first ("is the top genre right?"). Rows with
    no supervised positive are left out; unsupervised labels cannot win.

    Parameters
    ----------
    Y : np.ndarray, shape (n, L), {0, 1}
    S : np.ndarray, shape (n, L)
        Scores.
    mask : np.ndarray, shape (n, L), bool, optional

    Returns
    -------
    float
        In [0, 1]; nan when no row has a supervised positive.
    """
    Y = np.asarray(Y).astype(bool)
    S = np.asarray(S, dtype=np.float64)
    known = np.ones_like(Y) if mask is None else np.asarray(mask, dtype=bool)
    rows = (Y & known).any(axis=1)
    if not rows.any():
        return float("nan")
    top = np.where(known, S, -np.inf)[rows].argmax(axis=1)
    return float(Y[rows][np.arange(rows.sum()), top].mean())


# --------------------------------------------------------------------------- #
# ranking metrics (binary)
# --------------------------------------------------------------------------- #


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with tied values sharing their average rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    # The tie group k occupies ranks start_k + 1 .. start_k + counts_k; its
    # average is start_k + (counts_k + 1) / 2.
    starts = np.cumsum(counts) - counts
    return (starts + (counts + 1) / 2.0)[inverse.ravel()]


def _binary_inputs(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ParameterError(f"y_true and scores differ in length: {y.shape} vs {s.shape}")
    return y.astype(bool), s


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic.

    Ties in ``scores`` get average ranks, which counts a tied positive/negative
    pair as one half, exactly as the trapezoidal ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    y_true : np.ndarray, shape (n,), {0, 1}
        Binary ground truth.
    scores : np.ndarray, shape (n,)
        Higher means more likely positive.

    Returns
    -------
    float
        AUC in [0, 1]; nan when only one class is present.
    """
    y, s = _binary_inputs(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (PR-AUC) as ``sklearn.metrics.average_precision_score``.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in
    decreasing order; samples with equal scores enter at the same threshold,
    so the result does not depend on the order of ties.

    Parameters
    ----------
    y_true : np.ndarray, shape (n,), {0, 1}
        Binary ground truth.
    scores : np.ndarray, shape (n,)
        Higher means more likely positive.

    Returns
    -------
    float
        AP in [0, 1]; nan when there are no positives.
    """
    y, s = _binary_inputs(y_true, scores)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    # A stable sort keeps the computation deterministic; the grouping below
    # makes it independent of the order within ties anyway.
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    y_sorted = y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(~y_sorted)
    # The last index of every group of equal scores is one threshold.
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tp = tp[last_of_group].astype(np.float64)
    fp = fp[last_of_group].astype(np.float64)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    recall_step = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_step * precision))


def _label_rows(mask: np.ndarray | None, n: int, label: int) -> np.ndarray:
    if mask is None:
        return np.ones(n, dtype=bool)
    return np.asarray(mask[:, label], dtype=bool)


def macro_auc(
    Y: np.ndarray,
    S: np.ndarray,
    mask: np.ndarray | None = None,
    min_positives: int = 5,
    kind: str = "roc",
) -> tuple[float, np.ndarray]:
    """Macro-averaged ROC-AUC or PR-AUC over a multi-label matrix.

    A label is evaluated only on the rows where it is supervised (``mask``) and
    only if it has at least ``min_positives`` supervised positives and one
    supervised negative: an AUC from two positives is noise, and averaging it
    with well-supported labels would make the macro value unstable.

    Parameters
    ----------
    Y : np.ndarray, shape (n, L), {0, 1}
        Ground truth.
    S : np.ndarray, shape (n, L)
        Scores (probabilities or logits).
    mask : np.ndarray, shape (n, L), bool, optional
        True where the label is known for that row; None means all known.
    min_positives : int
        Minimum number of supervised positives for a label to count.
    kind : {"roc", "pr"}
        ROC-AUC (:func:`roc_auc`) or average precision (:func:`average_precision`).

    Returns
    -------
    value : float
        Mean over evaluated labels; nan when none qualifies.
    per_label : np.ndarray, shape (L,), float64
        Per-label value, nan for skipped labels.
    """
    if kind not in ("roc", "pr"):
        raise ParameterError(f"kind must be 'roc' or 'pr', got {kind!r}")
    Y = np.asarray(Y)
    S = np.asarray(S, dtype=np.float64)
    if Y.shape != S.shape or Y.ndim != 2:
        raise ParameterError(f"Y and S must be (n, L) of the same shape, got {Y.shape} and {S.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != Y.shape:
            raise ParameterError(f"mask shape {mask.shape} differs from Y shape {Y.shape}")
    fn = roc_auc if kind == "roc" else average_precision
    n, n_labels = Y.shape
    per_label = np.full(n_labels, np.nan, dtype=np.float64)
    for j in range(n_labels):
        rows = _label_rows(mask, n, j)
        y = Y[rows, j].astype(bool)
        n_pos = int(y.sum())
        if n_pos < min_positives or n_pos == y.size:
            continue
        per_label[j] = fn(y, S[rows, j])
    evaluated = per_label[~np.isnan(per_label)]
    skipped = n_labels - evaluated.size
    if skipped:
        _LOGGER.debug(
            "macro %s-AUC: %d of %d labels skipped (< %d positives or no negatives)",
            kind,
            skipped,
            n_labels,
            min_positives,
        )
    value = float(evaluated.mean()) if evaluated.size else float("nan")
    return value, per_label


# --------------------------------------------------------------------------- #
# confidence intervals
# --------------------------------------------------------------------------- #


def _as_scalar(result) -> float:
    # Metrics such as macro_auc return (value, per_label); the value is what
    # the interval is about.
    if isinstance(result, tuple):
        result = result[0]
    return float(result)


def bootstrap_ci(
    metric_fn: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of a metric over rows.

    Every resample draws the same row indices for all ``arrays``, so paired
    inputs (labels, scores, masks) stay aligned. Resamples where the metric is
    nan (e.g. a resample with a single class for ROC-AUC) are skipped rather
    than counted, which would otherwise poison the percentiles.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays) -> float`` (or a tuple whose first element is the value).
    *arrays : np.ndarray, each shape (n, ...)
        Inputs sharing their first dimension.
    n_boot : int
        Number of resamples.
    seed : int
        Seed for ``numpy.random.default_rng``; the same seed gives the same interval.
    alpha : float
        Two-sided level: the interval is the ``[alpha/2, 1 - alpha/2]`` percentiles.

    Returns
    -------
    point, low, high : float
        Metric on the full data and the interval bounds (nan when no resample
        gave a finite value).
    """
    if not arrays:
        raise ParameterError("bootstrap_ci needs at least one array")
    arrays = tuple(np.asarray(a) for a in arrays)
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ParameterError("all arrays must share their first dimension")
    point = _as_scalar(metric_fn(*arrays))
    if n == 0:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        v = _as_scalar(metric_fn(*(a[idx] for a in arrays)))
        if not math.isnan(v):
            values.append(v)
    if not values:
        return point, float("nan"), float("nan")
    if len(values) < n_boot:
        _LOGGER.debug("bootstrap: %d of %d resamples gave nan and were skipped", n_boot - len(values), n_boot)
    low, high = np.percentile(np.asarray(values), [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return point, float(low), float(high)


# --------------------------------------------------------------------------- #
# window -> track aggregation
# --------------------------------------------------------------------------- #


def _track_sums(window_probs: np.ndarray, track_index: np.ndarray, n_tracks: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(window_probs, dtype=np.float64)
    t = np.asarray(track_index, dtype=np.int64).ravel()
    if p.ndim != 2 or p.shape[0] != t.size:
        raise ParameterError(f"window_probs must be (n_windows, L) matching track_index, got {p.shape} and {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= n_tracks):
        raise ParameterError(f"track_index has values outside [0, {n_tracks})")
    sums = np.zeros((n_tracks, p.shape[1]), dtype=np.float64)
    np.add.at(sums, t, p)
    counts = np.bincount(t, minlength=n_tracks)
    return sums, counts


def track_level(window_probs: np.ndarray, track_index: np.ndarray, n_tracks: int) -> np.ndarray:
    """Mean of window probabilities per track.

    Parameters
    ----------
    window_probs : np.ndarray, shape (n_windows, L)
        Per-window probabilities.
    track_index : np.ndarray, shape (n_windows,), int
        Track of each window, in ``[0, n_tracks)``.
    n_tracks : int
        Number of tracks.

    Returns
    -------
    np.ndarray, shape (n_tracks, L), float64
        Mean probabilities; rows of tracks without windows are nan.
    """
    sums, counts = _track_sums(window_probs, track_index, n_tracks)
    out = np.full_like(sums, np.nan)
    has = counts > 0
    out[has] = sums[has] / counts[has, None]
    if not has.all():
        _LOGGER.warning("track_level: %d of %d tracks have no windows (nan rows)", int((~has).sum()), n_tracks)
    return out


def track_votes(window_probs: np.ndarray, track_index: np.ndarray, n_tracks: int) -> np.ndarray:
    """Majority vote of per-window argmax classes per track.

    A tie between classes with the same number of votes goes to the class with
    the higher mean probability over the track's windows (then the lower index),
    so the result never depends on window order.

    Parameters
    ----------
    window_probs : np.ndarray, shape (n_windows, C)
        Per-window class probabilities.
    track_index : np.ndarray, shape (n_windows,), int
        Track of each window, in ``[0, n_tracks)``.
    n_tracks : int
        Number of tracks.

    Returns
    -------
    np.ndarray, shape (n_tracks,), int64
        Voted class per track; -1 for tracks without windows.
    """
    p = np.asarray(window_probs, dtype=np.float64)
    sums, counts = _track_sums(p, track_index, n_tracks)
    t = np.asarray(track_index, dtype=np.int64).ravel()
    votes = np.zeros((n_tracks, p.shape[1]), dtype=np.int64)
    if t.size:
        np.add.at(votes, (t, p.argmax(axis=1)), 1)
    means = _safe_div(sums, counts[:, None])
    # Only classes with the top vote count compete; among them the highest mean
    # probability wins (argmax takes the lowest index on an exact tie).
    top = votes == votes.max(axis=1, keepdims=True)
    out = np.where(top, means, -np.inf).argmax(axis=1).astype(np.int64)
    out[counts == 0] = -1
    return out


# --------------------------------------------------------------------------- #
# thresholds
# --------------------------------------------------------------------------- #


def tune_thresholds(
    Y: np.ndarray,
    S: np.ndarray,
    mask: np.ndarray | None = None,
    grid: np.ndarray | None = None,
    min_positives: int = 1,
) -> np.ndarray:
    """Per-label decision threshold maximising F1 on (validation) data.

    A sample is predicted positive when ``score >= threshold``. When several
    grid points reach the same best F1 (typical on well-separated data), the
    middle one is taken: it keeps the largest margin to both classes instead of
    hugging the scores of one of them.

    Parameters
    ----------
    Y : np.ndarray, shape (n, L), {0, 1}
        Ground truth.
    S : np.ndarray, shape (n, L)
        Probabilities.
    mask : np.ndarray, shape (n, L), bool, optional
        True where the label is known; None means all known.
    grid : np.ndarray, shape (G,), optional
        Candidate thresholds; default ``np.linspace(0.05, 0.95, 19)``.
    min_positives : int
        Labels with fewer supervised positives (and at least 1) keep 0.5.

    Returns
    -------
    np.ndarray, shape (L,), float64
        Threshold per label.
    """
    grid = np.linspace(0.05, 0.95, 19) if grid is None else np.asarray(grid, dtype=np.float64).ravel()
    if grid.size == 0:
        raise ParameterError("grid is empty")
    Y = np.asarray(Y)
    S = np.asarray(S, dtype=np.float64)
    if Y.shape != S.shape or Y.ndim != 2:
        raise ParameterError(f"Y and S must be (n, L) of the same shape, got {Y.shape} and {S.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
    n, n_labels = Y.shape
    out = np.full(n_labels, 0.5, dtype=np.float64)
    for j in range(n_labels):
        rows = _label_rows(mask, n, j)
        y = Y[rows, j].astype(bool)
        n_pos = int(y.sum())
        if n_pos < max(1, min_positives):
            continue
        pred = S[rows, j][None, :] >= grid[:, None]  # (G, n_rows)
        tp = (pred & y).sum(axis=1)
        fp = (pred & ~y).sum(axis=1)
        fn = n_pos - tp
        f1 = _safe_div(2.0 * tp, 2.0 * tp + fp + fn)
        best = np.flatnonzero(f1 == f1.max())
        out[j] = grid[best[(best.size - 1) // 2]]
    return out


# --------------------------------------------------------------------------- #
# confusion matrix outputs
# --------------------------------------------------------------------------- #


def confusion_png(cm: np.ndarray, labels: Sequence[str], path: str | Path, title: str) -> Path:
    """Draw a confusion matrix to a PNG file.

    Colours are row-normalised (recall per true class) so that rare classes are
    as readable as frequent ones; the raw counts are written in the cells.

    Parameters
    ----------
    cm : np.ndarray, shape (C, C)
        Confusion matrix, true classes in rows.
    labels : sequence of str, length C
        Class names.
    path : str or Path
        Output PNG path (parent folders are created).
    title : str
        Figure title.

    Returns
    -------
    Path
        The written path.
    """
    # Imported here so that importing the metrics never pulls in matplotlib,
    # and with Agg so that it works on headless machines.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    if len(labels) != n:
        raise ParameterError(f"{len(labels)} labels for a {n}x{n} matrix")
    norm = _safe_div(cm, cm.sum(axis=1, keepdims=True))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = max(4.0, 0.6 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    try:
        im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticklabels(labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        fontsize = 8 if n > 12 else 10
        for i in range(n):
            for j in range(n):
                # White text on dark cells, black on light ones.
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=fontsize)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path


def confusion_csv(cm: np.ndarray, labels: Sequence[str], path: str | Path) -> Path:
    """Write a confusion matrix as CSV.

    The header row is ``true\\predicted`` followed by the predicted labels; each
    following row starts with the true label and holds the counts.

    Parameters
    ----------
    cm : np.ndarray, shape (C, C)
        Confusion matrix, true classes in rows.
    labels : sequence of str, length C
        Class names.
    path : str or Path
        Output CSV path (parent folders are created).

    Returns
    -------
    Path
        The written path.
    """
    cm = np.asarray(cm, dtype=np.int64)
    if len(labels) != cm.shape[0]:
        raise ParameterError(f"{len(labels)} labels for a {cm.shape[0]}x{cm.shape[1]} matrix")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *labels])
        for label, row in zip(labels, cm):
            writer.writerow([label, *(int(v) for v in row)])
    return path


# --------------------------------------------------------------------------- #
# report
# --------------------------------------------------------------------------- #


def _jsonable(obj):
    """Convert numpy types to Python ones and non-finite floats to None."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        # JSON has no NaN; null is what every consumer can parse.
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _is_interval(v) -> bool:
    return isinstance(v, Mapping) and {"value", "low", "high"} <= set(v)


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool, int, float)) or _is_interval(v)


def _fmt(v) -> str:
    if _is_interval(v):
        return f"{_fmt(v['value'])} [{_fmt(v['low'])}, {_fmt(v['high'])}]"
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    # Pipes would split a Markdown table cell.
    return str(v).replace("|", "\\|")


def _md_table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(_fmt(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _md_section(obj, level: int, key_header: str) -> list[str]:
    """Render a report node: scalars as a key/value table, children as subsections."""
    if isinstance(obj, list):
        if obj and all(isinstance(r, Mapping) for r in obj):
            columns: list[str] = []
            for r in obj:
                columns += [c for c in r if c not in columns]
            return _md_table(columns, [[r.get(c) for c in columns] for r in obj])
        return [_fmt(obj), ""]
    if not isinstance(obj, Mapping) or _is_interval(obj):
        return [_fmt(obj), ""]
    lines: list[str] = []
    scalars = [(k, v) for k, v in obj.items() if _is_scalar(v)]
    if scalars:
        lines += _md_table([key_header, "value"], scalars)
    for k, v in obj.items():
        if not _is_scalar(v):
            lines += [f"{'#' * min(level, 6)} {k}", ""]
            lines += _md_section(v, level + 1, "label")
    return lines


def write_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write an evaluation report as JSON and as readable Markdown.

    The renderer is generic: in each top-level section (a head name,
    ``"robustness"``, ``"domain_shift"``...), scalar entries form a metric
    table (a ``{"value", "low", "high"}`` dict renders as ``0.812 [0.790, 0.833]``),
    nested dicts (e.g. label -> number) become subsections with their own
    tables, and lists of dicts become tables with one column per key.

    Parameters
    ----------
    report : dict
        Nested report; numpy scalars/arrays are accepted.
    out_dir : str or Path
        Output folder (created if needed).

    Returns
    -------
    json_path, md_path : Path
        ``out_dir/report.json`` (indent 2, NaN as null) and ``out_dir/report.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = _jsonable(report)
    json_path = out_dir / "report.json"
    # allow_nan=False guarantees strict JSON: _jsonable already turned NaN into None.
    json_path.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    lines = ["# Evaluation report", ""]
    top_scalars = [(k, v) for k, v in clean.items() if _is_scalar(v)]
    if top_scalars:
        lines += _md_table(["key", "value"], top_scalars)
    for section, value in clean.items():
        if _is_scalar(value):
            continue
        lines += [f"## {section}", ""]
        lines += _md_section(value, 3, "metric")
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return json_path, md_path
