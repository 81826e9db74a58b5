"""Synthetic audio for tests and benchmarks (numpy only: benchmarks import it without pytest)."""

from __future__ import annotations

import numpy as np


def music_like(sr: int, seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Real-like synthetic music: chords with vibrato, a kick, hi-hats and noise.

    Returns float32 (n,) for mono, (n, channels) otherwise, peak about 0.8.
    """
    rng = np.random.default_rng(seed)
    n = int(round(sr * seconds))
    t = np.arange(n) / sr
    y = np.zeros(n)
    chord = [220.0, 277.18, 329.63, 440.0]
    for i, f in enumerate(chord):
        f_t = f * (1 + 0.003 * np.sin(2 * np.pi * 5 * t + i))
        y += 0.15 * np.sin(2 * np.pi * np.cumsum(f_t) / sr) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t + i))
    beat = int(sr * 0.5)
    kick_len = int(sr * 0.15)
    kt = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * (60 + 60 * np.exp(-kt * 30)) * kt) * np.exp(-kt * 20)
    hat_len = int(sr * 0.03)
    for s in range(0, n, beat):
        e = min(n, s + kick_len)
        y[s:e] += 0.6 * kick[: e - s]
        h = s + beat // 2
        if h < n:
            e = min(n, h + hat_len)
            y[h:e] += 0.2 * rng.standard_normal(e - h) * np.exp(-np.arange(e - h) / (0.005 * sr))
    y += 0.01 * rng.standard_normal(n)
    y = 0.8 * y / np.max(np.abs(y))
    if channels == 1:
        return y.astype(np.float32)
    out = np.stack([y * (1.0 - 0.1 * c) for c in range(channels)], axis=1)
    return out.astype(np.float32)
