"""Background-noise augmentation: ESC-50 under music at a chosen SNR.

:class:`Augment` describes one training example (clean, or a noise clip at an
SNR and offset), :func:`plan_augments` draws each clip's examples and
:func:`mix_noise` mixes the signals.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mirtag.runtime.card import FrontendConfig
from mirtag.runtime.errors import ParameterError

from .datasets import Clip

ESC50_CLIP_SECONDS = 5.0
"""Length of every ESC-50 clip: noise offsets are drawn within it."""


def max_noise_offset(sample_rate: int = FrontendConfig.sample_rate) -> int:
    """Noise offsets are drawn in ``[0, max_noise_offset)`` samples: one ESC-50 clip at ``sample_rate``."""
    return int(ESC50_CLIP_SECONDS * sample_rate)


@dataclass(frozen=True)
class Augment:
    """How one training example is derived from its clip: clean, or with noise mixed in.

    Attributes
    ----------
    noise_file : str or None
        The noise clip's ``file`` (relative to the data root, or absolute); None = clean.
    snr_db : float or None
        Music-to-noise ratio in dB (RMS over the whole clip).
    noise_offset : int
        Noise sample (at the model rate) mixed under the music's first sample;
        taken modulo the noise length.
    """

    noise_file: str | None = None
    snr_db: float | None = None
    noise_offset: int = 0

    def __post_init__(self) -> None:
        if (self.noise_file is None) != (self.snr_db is None):
            raise ParameterError("an Augment needs both noise_file and snr_db, or neither")
        if self.noise_offset < 0:
            raise ParameterError(f"noise_offset must be >= 0, got {self.noise_offset}")

    @property
    def id(self) -> str:
        """``"clean"``, or ``"n-<8 hex>"`` hashed from the fields (stable across runs)."""
        if self.noise_file is None:
            return "clean"
        spec = json.dumps([self.noise_file, float(self.snr_db), int(self.noise_offset)])
        return "n-" + hashlib.sha256(spec.encode()).hexdigest()[:8]


CLEAN = Augment()


def plan_augments(
    clips: Iterable[Clip],
    noise_clips: Sequence[Clip],
    k: int,
    seed: int,
    snr_range: tuple[float, float] = (0.0, 20.0),
    *,
    max_offset: int = max_noise_offset(),
    k_mix: int = 0,
    mix_snr_range: tuple[float, float] = (-6.0, 6.0),
) -> dict[str, list[Augment]]:
    """The examples to compute per clip: ``{clip.key: [CLEAN, noisy_1 .. noisy_k]}``.

    Each music clip gets ``k`` noisy variants: a noise clip drawn from
    ``noise_clips``, an SNR uniform in ``snr_range`` dB (rounded to 0.01 dB) and
    an offset uniform in ``[0, max_offset)`` samples (default: the length of an
    ESC-50 clip at the default model rate, :func:`max_noise_offset`). Each non-music clip gets ``k_mix`` mixtures with
    another noise clip at an SNR uniform in ``mix_snr_range`` (two sounds at
    once are still not music: more varied negatives for the ``music`` head
    than the few clips of each category). Each clip draws from its own seeded
    stream, so its plan does not depend on the other clips.
    """
    if k < 0:
        raise ParameterError(f"k must be >= 0, got {k}")
    noise = sorted(noise_clips, key=lambda c: c.key)
    if k and not noise:
        raise ParameterError("noisy variants need at least one noise clip")
    lo, hi = float(snr_range[0]), float(snr_range[1])
    if not lo <= hi:
        raise ParameterError(f"snr_range must be (low, high), got {snr_range}")
    if k_mix < 0:
        raise ParameterError(f"k_mix must be >= 0, got {k_mix}")

    def draw(rng: np.random.Generator, pool: Sequence[Clip], snr_lo: float, snr_hi: float) -> Augment:
        nc = pool[int(rng.integers(len(pool)))]
        snr = round(float(rng.uniform(snr_lo, snr_hi)), 2)
        return Augment(nc.file, snr, int(rng.integers(max(1, int(max_offset)))))

    out = {}
    for c in clips:
        rng = np.random.default_rng([int(seed), zlib.crc32(c.key.encode())])
        if c.music:
            extra = [draw(rng, noise, lo, hi) for _ in range(k)]
        else:
            others = [n for n in noise if n.key != c.key]
            extra = [draw(rng, others, *mix_snr_range) for _ in range(k_mix if others else 0)]
        out[c.key] = [CLEAN, *extra]
    return out


def mix_noise(y: np.ndarray, noise: np.ndarray, snr_db: float, offset: int = 0) -> np.ndarray:
    """Music plus looped noise at a given SNR.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), floating]
        Music samples.
    noise : np.ndarray [shape=(m,), floating]
        Noise at the same rate; repeated from sample ``offset % m`` to cover ``n``.
    snr_db : float
        Wanted ``20 * log10(rms(y) / rms(scaled noise))``, RMS over the clip.
    offset : int
        First noise sample used.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        ``y + g * noise_segment``; ``y`` unchanged (a float32 copy) when the
        music or the noise segment is silent (no gain reaches the SNR).
    """
    y = np.asarray(y)
    noise = np.asarray(noise)
    if y.ndim != 1 or noise.ndim != 1:
        raise ParameterError(f"mix_noise takes 1-D signals, got {y.shape} and {noise.shape}")
    if noise.size == 0:
        raise ParameterError("noise is empty")
    if not np.isfinite(snr_db):
        raise ParameterError(f"snr_db must be finite, got {snr_db}")
    y32 = y.astype(np.float32, copy=True)
    if y.size == 0:
        return y32
    start = int(offset) % noise.size
    seg = np.resize(np.roll(noise.astype(np.float64), -start), y.size)
    rms_y = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    rms_n = float(np.sqrt(np.mean(np.square(seg))))
    if rms_y == 0.0 or rms_n == 0.0:
        return y32
    gain = rms_y / (rms_n * 10.0 ** (float(snr_db) / 20.0))
    return (y.astype(np.float64) + gain * seg).astype(np.float32)
