"""The whole frontend re-implemented with librosa: the test-only oracle.

Every step follows the card's frontend fields with librosa's own functions, so a
drift between mirtag's numba frontend and the published recipe shows up as a
test failure. Not imported by mirtag itself.
"""

from __future__ import annotations

import librosa
import numpy as np

from mirtag.runtime.card import FrontendConfig


def oracle_windows(y: np.ndarray, sr: int, c: FrontendConfig | None = None):
    """Windows, silent flags and frame count of ``y``, computed with librosa.

    Returns
    -------
    windows : np.ndarray [shape=(n, 2, n_mels, window_frames), float32]
    silent : np.ndarray [shape=(n,), bool]
    n_frames : int
    """
    c = c or FrontendConfig()
    y = np.asarray(y, dtype=np.float32)
    if sr != c.sample_rate:
        y = librosa.resample(y, orig_sr=sr, target_sr=c.sample_rate, res_type="soxr_hq")
    S = np.abs(librosa.stft(y, n_fft=c.n_fft, hop_length=c.hop_length, center=True, pad_mode="constant"))
    H, P = librosa.decompose.hpss(S, kernel_size=tuple(c.hpss_kernel), power=c.hpss_power, margin=tuple(c.hpss_margin))
    M = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    mel = np.stack([M @ H**c.mel_power, M @ P**c.mel_power]).astype(np.float32)  # (2, n_mels, T)
    if c.compression == "log1p":
        mel = np.log1p(mel)
    T = mel.shape[2]
    wf, wh = c.window_frames, c.window_hop
    if T < wf:
        starts = [0]
        mel = np.pad(mel, ((0, 0), (0, 0), (0, wf - T)))
    else:
        n_full = 1 + (T - wf) // wh
        starts = [i * wh for i in range(n_full)]
        if T - ((n_full - 1) * wh + wf) >= max(1, wh // 2):
            starts.append(T - wf)
    windows = np.stack([mel[:, :, s : s + wf] for s in starts]).astype(np.float32)
    silent = np.zeros(len(starts), bool)
    for i in range(len(starts)):
        quiet = 0
        for ch in range(2):
            peak = windows[i, ch].max()
            if peak < c.silence_floor:
                windows[i, ch] = 0.0
                quiet += 1
            else:
                windows[i, ch] /= peak
        silent[i] = quiet == 2
    return windows, silent, T
