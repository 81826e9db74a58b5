"""The frontend: waveform -> model windows ``(n_windows, 2, n_mels, window_frames)``.

Every step is pinned and every parameter is a field of the card's
:class:`~mirtag.runtime.card.FrontendConfig`:

1. resample to ``sample_rate`` (soxr HQ);
2. STFT magnitude of the whole signal (centred frames, zero padding, periodic Hann);
3. HPSS on the magnitude: harmonic = median along time, percussive = median along
   frequency (``reflect`` edges), soft masks (``hpss_power``, ``hpss_margin``);
4. ``mel = M @ H`` and ``M @ P`` (Slaney mel, ``mel_power`` 1 = amplitude);
5. optional ``compression`` (``log1p``);
6. windows of ``window_frames`` every ``window_hop`` frames;
7. each (window, channel) divided by its maximum; a maximum under
   ``silence_floor`` gives zeros and marks the window silent.

Windows: full windows start at ``i * window_hop``. A clip shorter than one window
gives one zero-padded window. Otherwise a tail window ending at the last frame is
added when the frames no full window covers number at least ``window_hop // 2``.
(With 50 % overlap at most ``window_hop - 1`` frames are ever left uncovered, so the
tail rule counts those; at the defaults a 30-s clip has 1,292 frames, 19 full
windows and 12 uncovered frames: no tail window.)

Long input is processed in blocks of frames, carrying ``kernel // 2`` frames of
context for the time-direction median, so memory does not grow with the track and
a streamed track gives the same windows as the whole array
(:class:`FrontendStream`; ``Frontend.__call__`` runs the same engine).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soxr

from . import dsp
from .card import FrontendConfig, ModelCard
from .errors import ParameterError

_LOGGER = logging.getLogger(__name__)

BLOCK_FRAMES = 1024
"""Frames processed per block (about 24 s at the defaults): bounds the working memory."""


@dataclass
class Features:
    """Windows of one signal (or one batch of a stream).

    Attributes
    ----------
    windows : np.ndarray [shape=(n, 2, n_mels, window_frames), dtype=float32]
        Max-normalised harmonic and percussive mel windows.
    silent : np.ndarray [shape=(n,), dtype=bool]
        Windows whose every channel was below the silence floor (all zeros).
    starts : np.ndarray [shape=(n,), dtype=int64]
        First frame of each window (the tail window may start off the hop grid).
    n_frames : int
        STFT frames of the whole signal so far (final after the last batch).
    """

    windows: np.ndarray
    silent: np.ndarray
    starts: np.ndarray
    n_frames: int

    def __len__(self) -> int:
        return self.windows.shape[0]


class Frontend:
    """Waveform -> HPSS mel windows, built from a card's frontend fields.

    Parameters
    ----------
    config : FrontendConfig
        The card's frontend section.
    parallel : bool
        Use the multi-threaded kernels. Only for a single caller: never from
        threads or worker pools (numba's default threading layer aborts on
        concurrent parallel calls).

    Examples
    --------
    >>> fe = Frontend(FrontendConfig())
    >>> x = fe(np.zeros(22050 * 30, np.float32), 22050)
    >>> x.shape
    (19, 2, 84, 128)
    """

    def __init__(self, config: FrontendConfig | None = None, *, parallel: bool = False):
        self.config = config or FrontendConfig()
        self.parallel = parallel
        c = self.config
        self.window = dsp.hann_window(c.n_fft)
        self.mel_basis = dsp.mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax)

    @classmethod
    def from_card(cls, card: ModelCard, **kwargs) -> Frontend:
        """The frontend a model was trained with."""
        return cls(card.frontend, **kwargs)

    def __call__(self, y: np.ndarray, sr: int) -> np.ndarray:
        """Windows of a whole signal.

        Parameters
        ----------
        y : np.ndarray [shape=(n,), floating]
            Mono samples at rate ``sr``.
        sr : int
            Sample rate of ``y`` in Hz (resampled to the card's rate if different).

        Returns
        -------
        np.ndarray [shape=(n_windows, 2, n_mels, window_frames), dtype=float32]
        """
        return self.analyze(y, sr).windows

    def analyze(self, y: np.ndarray, sr: int) -> Features:
        """Like ``__call__`` but also returns the silent flags, window starts and frame count."""
        y = self._prepare(y, sr)
        stream = self.stream(self.config.sample_rate)
        parts = [stream.push(y), stream.finish()]
        return _concat(parts, stream.n_frames, self.config)

    def mel(self, y: np.ndarray, sr: int) -> np.ndarray:
        """The pre-window harmonic and percussive mel spectrogram of a whole signal.

        What the windows are cut from (before compression and normalisation); the
        trainer caches it and cuts windows at random phases with :func:`cut_windows`.

        Returns
        -------
        np.ndarray [shape=(2, n_mels, n_frames), dtype=float32]
        """
        y = self._prepare(y, sr)
        stream = FrontendStream(self, self.config.sample_rate, keep_mel=True)
        stream.push(y)
        stream.finish()
        return stream._mel[:, :, : stream.n_frames]

    def stream(self, sr: int | None = None) -> FrontendStream:
        """A push-based stream for audio that arrives in chunks at rate ``sr``."""
        return FrontendStream(self, sr if sr is not None else self.config.sample_rate)

    def _prepare(self, y: np.ndarray, sr: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
            raise ParameterError(f"samples must be a 1-D float array, got {y.dtype} {y.shape}")
        if int(sr) != self.config.sample_rate:
            # One-shot resampling of a whole array (streams use soxr.ResampleStream).
            y = soxr.resample(y.astype(np.float32, copy=False), int(sr), self.config.sample_rate, quality="HQ")
        return y

    def iter_windows(self, chunks: Iterable[np.ndarray], sr: int | None = None) -> Iterator[Features]:
        """Feed chunks, yield windows as soon as they are complete (memory independent of length)."""
        stream = self.stream(sr)
        for chunk in chunks:
            out = stream.push(chunk)
            if len(out):
                yield out
        out = stream.finish()
        if len(out):
            yield out


class FrontendStream:
    """Incremental frontend: ``push`` chunks of samples, then ``finish``.

    Each call returns the windows completed by it. Concatenated, they equal
    ``Frontend.analyze`` of the concatenated input (same windows, same order).
    State is bounded: a few blocks of frames, whatever the input length.
    """

    def __init__(self, frontend: Frontend, sr: int, *, keep_mel: bool = False):
        self.fe = frontend
        self._keep_mel = keep_mel
        c = frontend.config
        self.c = c
        self._resampler = None
        if int(sr) != c.sample_rate:
            self._resampler = soxr.ResampleStream(int(sr), c.sample_rate, 1, dtype="float32", quality="HQ")
        self._pad = c.n_fft // 2
        self._half = c.hpss_kernel[0] // 2
        self._n_bins = 1 + c.n_fft // 2
        # Samples of the padded signal not yet consumed; index 0 is padded sample _s0.
        self._samples = np.zeros(self._pad, dtype=np.float32)
        self._s0 = 0
        self._n_input = 0  # samples pushed (at the model rate)
        # Magnitude frames kept (frames-major), first one is frame _S0.
        self._S = np.zeros((0, self._n_bins), dtype=np.float32)
        self._S0 = 0
        self._n_frames = 0  # STFT frames computed
        self._next_mel = 0  # first frame whose mel is not computed yet
        # Mel frames kept, (2, n_mels, k); first one is frame _mel0.
        self._mel = np.zeros((2, c.n_mels, 0), dtype=np.float32)
        self._mel0 = 0
        self._next_window = 0  # index of the next full window
        self._finished = False

    @property
    def n_frames(self) -> int:
        """STFT frames computed so far (the total once finished)."""
        return self._n_frames

    @property
    def n_samples(self) -> int:
        """Samples pushed so far, at the model rate."""
        return self._n_input

    def push(self, y: np.ndarray) -> Features:
        """Add samples (mono, at the stream's input rate); returns the windows completed."""
        if self._finished:
            raise ParameterError("push() after finish()")
        y = np.asarray(y)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
            raise ParameterError(f"samples must be a 1-D float array, got {y.dtype} {y.shape}")
        y = y.astype(np.float32, copy=False)
        if not np.isfinite(y).all():
            raise ParameterError("samples contain NaN or Inf")
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y)
        return self._consume(y, last=False)

    def finish(self) -> Features:
        """End of input: flush the last frames and the tail window."""
        if self._finished:
            raise ParameterError("finish() called twice")
        y = np.zeros(0, np.float32)
        if self._resampler is not None:
            y = self._resampler.resample_chunk(y, last=True)
        out = self._consume(y, last=True)
        self._finished = True
        return out

    # ------------------------------------------------------------------ engine
    def _consume(self, y: np.ndarray, last: bool) -> Features:
        if y.size:
            self._samples = np.concatenate([self._samples, y])
            self._n_input += y.size
        if last:
            if self._n_input == 0:
                raise ParameterError("no samples: the signal is empty")
            self._samples = np.concatenate([self._samples, np.zeros(self._pad, np.float32)])
        total = 1 + self._n_input // self.c.hop_length if last else None
        parts = []
        while True:
            progressed = self._compute_frames(total)
            progressed |= self._compute_mel(total)
            if not progressed:
                break
            parts.append(self._cut_windows(total))
        if last:
            parts.append(self._cut_windows(total, final=True))
        return _concat(parts, self._n_frames, self.c)

    def _compute_frames(self, total: int | None) -> bool:
        """STFT of the next block of frames whose samples have all arrived."""
        c = self.c
        avail = self._s0 + self._samples.size  # padded samples known
        n_avail = 0 if avail < c.n_fft else 1 + (avail - c.n_fft) // c.hop_length
        if total is not None:
            n_avail = min(n_avail, total)
        n_new = min(n_avail - self._n_frames, BLOCK_FRAMES)
        if n_new <= 0:
            return False
        first = self._n_frames * c.hop_length - self._s0
        mag = dsp.stft_frames(
            self._samples[first : first + (n_new - 1) * c.hop_length + c.n_fft],
            self.fe.window,
            c.hop_length,
            0,
            n_new,
            self.fe.parallel,
        )
        self._S = np.concatenate([self._S, mag]) if self._S.size else mag
        self._n_frames += n_new
        drop = self._n_frames * c.hop_length - self._s0
        self._samples = self._samples[drop:]
        self._s0 += drop
        return True

    def _compute_mel(self, total: int | None) -> bool:
        """HPSS + mel for the next block of frames whose time-median context is known."""
        h = self._half
        done = total is not None and self._n_frames == total
        end = total if done else self._n_frames - h
        # Wait for a full block until the signal is complete: fewer, larger blocks.
        if end <= self._next_mel or (not done and end - self._next_mel < BLOCK_FRAMES):
            return False
        stop = min(end, self._next_mel + BLOCK_FRAMES)
        a, b = self._next_mel, stop
        if done:
            rows = dsp.reflect_indices(a - h, b + h, total)
        else:
            # Only the start can need reflection here; frames up to b + h - 1 exist.
            rows = np.arange(a - h, b + h, dtype=np.int64)
            rows = np.where(rows < 0, -rows - 1, rows)
        S = self._S[a - self._S0 : b - self._S0]
        c = self.c
        # The median along time reads its context frames where they lie in _S.
        harm = np.empty_like(S)
        dsp.median_axis0_into(self._S, rows - self._S0, harm, c.hpss_kernel[0], parallel=self.fe.parallel)
        mel = dsp.hpss_mel(
            S,
            harm,
            self.fe.mel_basis,
            perc_kernel=c.hpss_kernel[1],
            power=c.hpss_power,
            margin=c.hpss_margin,
            mel_power=c.mel_power,
            parallel=self.fe.parallel,
        )
        self._mel = np.concatenate([self._mel, mel], axis=2) if self._mel.shape[2] else mel
        self._next_mel = b
        keep_from = max(0, b - h)
        self._S = self._S[keep_from - self._S0 :]
        self._S0 = keep_from
        return True

    def _cut_windows(self, total: int | None, final: bool = False) -> Features:
        c = self.c
        wf, wh = c.window_frames, c.window_hop
        starts = []
        mel_end = self._next_mel
        while self._next_window * wh + wf <= mel_end:
            starts.append(self._next_window * wh)
            self._next_window += 1
        if final:
            # Every full window is out by now; what remains is the tail (or the only, padded, window).
            starts += [int(v) for v in window_starts(total, c)[self._next_window :]]
        windows, silent = cut_windows(self._mel, np.asarray(starts, dtype=np.int64) - self._mel0, c)
        # Keep the frames a later window (or the end-aligned tail) may still need.
        keep_from = max(self._mel0, min(self._next_window * wh, mel_end - wf))
        if keep_from > self._mel0 and not self._keep_mel:
            self._mel = self._mel[:, :, keep_from - self._mel0 :]
            self._mel0 = keep_from
        return Features(windows, silent, np.asarray(starts, dtype=np.int64), self._n_frames)


def window_starts(n_frames: int, c: FrontendConfig) -> np.ndarray:
    """First frame of every window of a signal of ``n_frames`` STFT frames.

    Full windows every ``window_hop`` frames; a clip shorter than one window gets
    one (zero-padded) window at 0; an end-aligned tail window is added when the
    frames no full window covers number at least ``window_hop // 2``.
    """
    wf, wh = c.window_frames, c.window_hop
    if n_frames < wf:
        return np.zeros(1, dtype=np.int64)
    n_full = 1 + (n_frames - wf) // wh
    starts = list(range(0, n_full * wh, wh))
    if n_frames - ((n_full - 1) * wh + wf) >= max(1, wh // 2):
        starts.append(n_frames - wf)
    return np.asarray(starts, dtype=np.int64)


def cut_windows(mel: np.ndarray, starts: np.ndarray, c: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cut, compress and max-normalise windows from a pre-window mel spectrogram.

    Parameters
    ----------
    mel : np.ndarray [shape=(channels, n_mels, n_frames)]
        Harmonic and percussive mel bands (``Frontend.mel``), before compression
        (the trainer's plain-mel ablation passes their sum, one channel).
    starts : np.ndarray [shape=(n,), int]
        First frame of each window; frames past the end are zeros.
    c : FrontendConfig

    Returns
    -------
    windows : np.ndarray [shape=(n, channels, n_mels, window_frames), float32]
    silent : np.ndarray [shape=(n,), bool]
    """
    wf = c.window_frames
    windows = np.zeros((len(starts), mel.shape[0], c.n_mels, wf), dtype=np.float32)
    for i, s in enumerate(starts):
        seg = mel[:, :, s : s + wf]
        windows[i, :, :, : seg.shape[2]] = seg
    return windows, _normalise(windows, c)


def _normalise(windows: np.ndarray, c: FrontendConfig) -> np.ndarray:
    """In place: compression, then divide each (window, channel) by its maximum."""
    if c.compression == "log1p":
        np.log1p(windows, out=windows)
    peak = windows.max(axis=(2, 3), keepdims=True)
    quiet = peak < c.silence_floor
    np.divide(windows, np.where(quiet, 1.0, peak), out=windows)
    windows[np.broadcast_to(quiet, windows.shape)] = 0.0
    return quiet.reshape(windows.shape[0], windows.shape[1]).all(axis=1)


def _concat(parts: list[Features], n_frames: int, c: FrontendConfig) -> Features:
    parts = [p for p in parts if len(p)]
    if not parts:
        return Features(
            np.zeros((0, 2, c.n_mels, c.window_frames), np.float32), np.zeros(0, bool), np.zeros(0, np.int64), n_frames
        )
    if len(parts) == 1:
        p = parts[0]
        return Features(p.windows, p.silent, p.starts, n_frames)
    return Features(
        np.concatenate([p.windows for p in parts]),
        np.concatenate([p.silent for p in parts]),
        np.concatenate([p.starts for p in parts]),
        n_frames,
    )
