"""Decisions users can trust: calibrated probabilities and the labels a track's ``top`` list names.

The rules (the card's heads carry their parameters; see ``exported/MODEL_CARD.md``):

1. **Calibration.** A head's track-level probabilities (the mean over windows) are
   calibrated with the head's ``temperature`` T, fitted on validation: a sigmoid
   label's logit is divided by T, a softmax head's probabilities become
   ``p ** (1 / T)`` renormalised. T = 1 (or none) leaves them as they are.
2. **Thresholds.** A sigmoid label is decided when its calibrated probability is
   at least its threshold (``--min-confidence`` replaces every threshold). A
   sigmoid head's ``top`` may be empty: nothing is said that the model does not
   know. A softmax head names its best label, when that passes its threshold.
3. **Order and cap.** ``top`` is ordered best first (highest probability; ties
   in card order), so a label that passes is never left out for a weaker one;
   at most ``max_labels`` labels (``--top-k`` overrides).
4. **Music first.** When the card has a ``music`` head, a track below the music
   threshold (or silent) is not music: its ``music`` top is empty and every other
   head's ``top`` is empty too (no genre or mood for rain or silence).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .card import Head, ModelCard

MUSIC_HEAD = "music"
_EPS = 1e-7


def calibrate(probs: np.ndarray, kind: str, temperature: float | None) -> np.ndarray:
    """Temperature-scale probabilities.

    Parameters
    ----------
    probs : np.ndarray [shape=(..., n_labels)]
        Probabilities in [0, 1] (softmax rows sum to 1).
    kind : str
        ``"sigmoid"`` or ``"softmax"``.
    temperature : float or None
        T > 0; None or 1 returns ``probs`` unchanged (as float64).

    Returns
    -------
    np.ndarray [shape=(..., n_labels), float64]
    """
    p = np.asarray(probs, dtype=np.float64)
    if temperature is None or temperature == 1.0:
        return p
    p = np.clip(p, _EPS, 1.0 - _EPS)
    if kind == "softmax":
        z = np.log(p) / temperature
        z -= z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)
    z = (np.log(p) - np.log1p(-p)) / temperature
    return 1.0 / (1.0 + np.exp(-z))


def is_music(heads: Mapping[str, Mapping[str, float]], card: ModelCard, silent: bool = False) -> bool:
    """Whether a track counts as music: not silent and, if the card has a music head, above its threshold."""
    if silent:
        return False
    if MUSIC_HEAD not in heads or not any(h.name == MUSIC_HEAD for h in card.heads):
        return True
    spec = card.head(MUSIC_HEAD)
    label = spec.labels[0]
    return heads[MUSIC_HEAD][label] >= spec.threshold(label)


def decide(
    probs: Mapping[str, float], head: Head, k: int | None = None, min_confidence: float | None = None
) -> list[str]:
    """The labels of one head a track is tagged with, best first (rules 2-3 of the module docstring).

    Parameters
    ----------
    probs : mapping label -> calibrated probability
    head : Head
    k : int, optional
        Cap on the list (overrides ``head.max_labels``).
    min_confidence : float, optional
        One threshold for every label (overrides the card's).
    """
    ranked = sorted(probs, key=lambda lab: (-probs[lab], head.labels.index(lab)))
    if not ranked:
        return []
    if head.kind == "softmax":
        best = ranked[0]
        floor = min_confidence if min_confidence is not None else head.threshold(best, default=0.0)
        return [best] if probs[best] >= floor else []
    keep = [
        lab for lab in ranked if probs[lab] >= (min_confidence if min_confidence is not None else head.threshold(lab))
    ]
    cap = k if k is not None else head.max_labels
    return keep[:cap] if cap else keep
