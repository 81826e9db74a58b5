"""Tagger: a file or an array -> per-head label probabilities.

A track's probabilities are the mean over its windows (silent windows are left
out unless every window is silent), calibrated with each head's temperature;
softmax heads also get the majority vote of their windows (ties go to the label
with the higher mean probability). Which labels a track is tagged with follows
:mod:`mirtag.runtime.decisions`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import audio, decisions
from .card import ModelCard, load_card, resolve_model
from .errors import ModelLoadError, NonFiniteError
from .session import Session

if TYPE_CHECKING:
    # Imported where used: the frontend pulls in numba (about half a CPU second), and a
    # scan's parent process only aggregates windows the workers computed.
    from .frontend import Features, Frontend

_LOGGER = logging.getLogger(__name__)

WARN_SILENT = "silent"
WARN_SHORT = "shorter than one window"


@dataclass
class TagResult:
    """What a Tagger says about one track.

    Attributes
    ----------
    heads : dict[str, dict[str, float]]
        Head name -> label -> probability (mean over the windows, calibrated with the
        head's temperature), in card order.
    votes : dict[str, str | None]
        Softmax heads: the label most windows chose; sigmoid heads: None.
    duration_s : float
        Seconds of decoded audio.
    n_windows : int
        Windows the model saw (silent ones included).
    warnings : list[str]
        ``silent``, ``shorter than one window``.
    embedding : np.ndarray or None [shape=(D,)]
        Mean of the ``embedding`` output, when the model has one.
    """

    heads: dict[str, dict[str, float]]
    votes: dict[str, str | None]
    duration_s: float
    n_windows: int
    warnings: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None

    def finite(self, embedding: bool = True) -> bool:
        """True when no probability (and, with ``embedding``, no embedding value) is NaN or Inf."""
        ok = all(math.isfinite(p) for h in self.heads.values() for p in h.values())
        if embedding and self.embedding is not None:
            ok = ok and bool(np.isfinite(self.embedding).all())
        return ok

    def is_music(self, card: ModelCard) -> bool:
        """Whether the track counts as music (not silent; above the card's music threshold, if it has one)."""
        return decisions.is_music(self.heads, card, silent=WARN_SILENT in self.warnings)

    def top(self, head: str, card: ModelCard, k: int | None = None, min_confidence: float | None = None) -> list[str]:
        """The labels of ``head`` the track is tagged with, best first; may be empty.

        See :mod:`mirtag.runtime.decisions`: calibrated probabilities at or above
        their threshold (``min_confidence`` when given, else the card's), at
        most ``k`` (else the head's ``max_labels``); a softmax head names its best
        label only; a track that is not music gets no label from any head.
        """
        if not self.is_music(card):
            return []
        return decisions.decide(self.heads[head], card.head(head), k, min_confidence)


class WindowAccumulator:
    """Running sums over windows, so a track of any length needs constant memory."""

    def __init__(self, card: ModelCard):
        self.card = card
        self.sum_all: dict[str, np.ndarray] = {}
        self.sum_loud: dict[str, np.ndarray] = {}
        self.votes = {h.name: np.zeros(len(h.labels), np.int64) for h in card.heads if h.kind == "softmax"}
        self.votes_loud = {name: v.copy() for name, v in self.votes.items()}
        self.n = 0
        self.n_loud = 0

    def add(self, outputs: dict[str, np.ndarray], silent: np.ndarray) -> None:
        loud = ~silent
        for name, value in outputs.items():
            self.sum_all[name] = self.sum_all.get(name, 0) + value.sum(axis=0, dtype=np.float64)
            self.sum_loud[name] = self.sum_loud.get(name, 0) + value[loud].sum(axis=0, dtype=np.float64)
            if name in self.votes:
                np.add.at(self.votes[name], value.argmax(axis=1), 1)
                np.add.at(self.votes_loud[name], value[loud].argmax(axis=1), 1)
        self.n += len(silent)
        self.n_loud += int(loud.sum())

    def result(self, duration_s: float) -> TagResult:
        use_loud = self.n_loud > 0
        sums, votes, n = (
            (self.sum_loud, self.votes_loud, self.n_loud) if use_loud else (self.sum_all, self.votes, self.n)
        )
        heads, winners = {}, {}
        for head in self.card.heads:
            mean = decisions.calibrate(sums[head.name] / n, head.kind, head.temperature)
            heads[head.name] = {lab: float(p) for lab, p in zip(head.labels, mean)}
            if head.kind == "softmax":
                counts = votes[head.name]
                best = np.flatnonzero(counts == counts.max())
                winners[head.name] = head.labels[int(best[np.argmax(mean[best])])]
            else:
                winners[head.name] = None
        warnings = []
        if duration_s < self.card.frontend.window_seconds:
            warnings.append(WARN_SHORT)
        if not use_loud:
            warnings.append(WARN_SILENT)
        emb = sums.get("embedding")
        return TagResult(
            heads, winners, duration_s, self.n, warnings, None if emb is None else (emb / n).astype(np.float32)
        )


class Tagger:
    """Tag audio with a classifier: frontend + ONNX session + window aggregation.

    Thread-safe: the frontend keeps no state between calls and onnxruntime
    sessions may be run from several threads.

    Examples
    --------
    >>> tagger = Tagger.load("tests/fixtures/tiny")        # doctest: +SKIP
    >>> result = tagger.tag_file("song.flac")              # doctest: +SKIP
    >>> result.heads["genre"], result.votes["quadrant"]    # doctest: +SKIP
    """

    def __init__(self, card: ModelCard, session: Session, frontend: Frontend):
        self.card = card
        self.session = session
        self.frontend = frontend

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        device: str | None = "auto",
        threads: int | None = None,
        batch_size: int = 64,
    ) -> Tagger:
        """Load a classifier.

        Parameters
        ----------
        path : path-like, optional
            ``.onnx``, ``.onnx.json`` or a model folder with a ``registry.json``;
            None = the shipped default classifier.
        device : str
            ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see :mod:`mirtag.runtime.session`).
        threads : int, optional
            onnxruntime intra-op threads.
        batch_size : int
            Windows per graph call.
        """
        card = resolve_model(None) if path is None else load_card(path)
        if card.model_type != "classifier":
            raise ModelLoadError(f"{card.path}: is a {card.model_type}, not a classifier")
        from .frontend import Frontend

        return cls(card, Session(card, device, threads, batch_size), Frontend.from_card(card))

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider in use."""
        return self.session.provider

    def tag_array(self, y: np.ndarray, sr: int) -> TagResult:
        """Tag a mono signal.

        Parameters
        ----------
        y : np.ndarray [shape=(n,), floating]
        sr : int
            Its sample rate in Hz.
        """
        feats = self.frontend.analyze(y, sr)
        acc = WindowAccumulator(self.card)
        acc.add(self.session.run(finite_windows(feats.windows)), feats.silent)
        return _finite_result(acc.result(len(y) / float(sr)))

    def tag_file(
        self, path: str | os.PathLike[str], *, offset: float = 0.0, duration: float | None = None
    ) -> TagResult:
        """Tag an audio file, streaming it so memory does not grow with its length.

        Raises
        ------
        AudioError
            The file cannot be decoded (the message names it and says why).
        NonFiniteError
            Its features or probabilities hold NaN or Inf (samples far outside [-1, 1]).
        """
        rate = self.card.frontend.sample_rate
        counter = [0]
        chunks = _counting(audio.stream(path, rate, offset=offset, duration=duration), counter)
        try:
            return self.tag_windows(self.frontend.iter_windows(chunks, rate), counter)
        except NonFiniteError as exc:
            raise NonFiniteError(f"{os.fspath(path)}: {exc}") from None

    def tag_windows(self, batches: Iterable[Features], counter: list[int] | None = None) -> TagResult:
        """Aggregate model outputs over batches of windows (``counter[0]``: samples seen)."""
        acc = WindowAccumulator(self.card)
        for feats in batches:
            acc.add(self.session.run(finite_windows(feats.windows)), feats.silent)
        rate = self.card.frontend.sample_rate
        return _finite_result(acc.result((counter[0] if counter else 0) / rate))


def finite_windows(windows: np.ndarray) -> np.ndarray:
    """``windows`` itself, or :class:`NonFiniteError` when they hold NaN or Inf (the scan's workers and the Tagger)."""
    if not np.isfinite(windows).all():
        raise NonFiniteError("non-finite values in the features (NaN or Inf; are the samples far outside [-1, 1]?)")
    return windows


def _finite_result(result: TagResult) -> TagResult:
    """NaN or Inf never reaches a caller (the scan turns the same case into an error row)."""
    if not result.finite():
        raise NonFiniteError("non-finite probabilities (NaN or Inf)")
    return result


def _counting(chunks: Iterable[np.ndarray], counter: list[int]) -> Iterable[np.ndarray]:
    for chunk in chunks:
        counter[0] += len(chunk)
        yield chunk


def warmup() -> None:
    """Compile (or load from numba's cache) every DSP kernel before the first file."""
    from . import dsp
    from .frontend import Frontend

    fe = Frontend()
    y = np.random.default_rng(0).standard_normal(fe.config.sample_rate * 4).astype(np.float32)
    fe.analyze(y, fe.config.sample_rate)
    dsp.hpss(dsp.stft_magnitude(y[:4096]))
