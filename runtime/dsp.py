"""Numba DSP kernels behind small numpy-facing functions.

Public functions take and return float32 numpy arrays and follow librosa's
conventions, so librosa (a test-only dependency) can serve as their oracle:

- :func:`stft_magnitude` as ``abs(librosa.stft(y, center=True, pad_mode="constant"))``
- :func:`hpss` as ``librosa.decompose.hpss`` on a magnitude spectrogram
- :func:`mel_filterbank` as ``librosa.filters.mel`` (Slaney scale and norm)
- :func:`median_filter` as ``scipy.ndimage.median_filter`` along one axis, ``mode="reflect"``

The median filters are where a librosa HPSS pipeline spends 95 % of its time
(2-D ``scipy.ndimage.median_filter``). Ours keep a sorted window per row and move
one element per step with branch-free rank counting, which beats scipy's 1-D
path as well.

Every kernel is compiled serial (``nogil``, safe to call from threads and worker
processes: numba's default threading layer aborts on concurrent parallel calls);
the ``parallel=True`` builds are used only when a caller asks for them.
"""

from __future__ import annotations

import logging

import numba
import numpy as np

from .errors import ParameterError

_LOGGER = logging.getLogger(__name__)

_TINY32 = np.float32(np.finfo(np.float32).tiny)

__all__ = ["stft_magnitude", "hpss", "mel_filterbank", "median_filter", "hann_window"]


# --------------------------------------------------------------------------- kernels
# Each kernel is written once as plain Python and compiled twice (resampy style):
# serial by default, parallel over rows on explicit request.


def _reflect_index(i, n):  # pragma: no cover - compiled
    """scipy.ndimage ``reflect`` (d c b a | a b c d | d c b a), for any offset."""
    if n == 1:
        return 0
    period = 2 * n
    i = i % period
    if i < 0:
        i += period
    if i >= n:
        i = period - 1 - i
    return i


_reflect_index_jit = numba.njit(cache=True, nogil=True, inline="always")(_reflect_index)


@numba.njit(cache=True, nogil=True)
def _median_row(src, dst, k, a, b):  # pragma: no cover - compiled
    """Sliding median of width ``k`` over ``src`` (len(dst) + k - 1 values) into ``dst``.

    The window is kept sorted in ``a[1:k+1]`` (``a`` and ``b`` have k + 2 slots).
    Each step removes the outgoing value and inserts the incoming one by counting
    ranks and rebuilding the window into ``b`` with selects only: no data-dependent
    branches, so it vectorises and never mispredicts (about 2x a binary-search +
    shift update, and about 2x scipy's 1-D median).
    """
    mid = k // 2
    for j in range(k):
        a[j + 1] = src[j]
    a[1 : k + 1].sort()
    dst[0] = a[mid + 1]
    for j in range(1, dst.shape[0]):
        old = src[j - 1]
        new = src[j + k - 1]
        p = 0  # index of the first copy of `old` in the sorted window
        c = 0  # how many window values are below `new`
        for i in range(1, k + 1):
            v = a[i]
            p += v < old
            c += v < new
        q = c - (1 if old < new else 0)  # where `new` lands once `old` is gone
        for i in range(k):
            # w'[i] is the window without `old`; out[i] = w'[i], new, or w'[i - 1].
            # Load all three neighbours unconditionally: selects on loaded values
            # vectorise, conditional loads compile to branches (2x slower).
            lo_ = a[i]
            mid_ = a[i + 1]
            hi_ = a[i + 2]
            w_i = mid_ if i < p else hi_
            w_im1 = lo_ if i - 1 < p else mid_
            b[i + 1] = w_i if i < q else (new if i == q else w_im1)
        a, b = b, a
        dst[j] = a[mid + 1]


def _median_valid(x, out, k):  # pragma: no cover - compiled
    """Row-wise median of already padded rows: x (R, L + k - 1) -> out (R, L)."""
    for r in numba.prange(x.shape[0]):
        a = np.zeros(k + 2, dtype=x.dtype)
        b = np.zeros(k + 2, dtype=x.dtype)
        _median_row(x[r], out[r], k, a, b)


def _median_reflect(x, out, k):  # pragma: no cover - compiled
    """Row-wise median with reflect edges: x (R, n) -> out (R, n)."""
    n = x.shape[1]
    h = k // 2
    for r in numba.prange(x.shape[0]):
        a = np.zeros(k + 2, dtype=x.dtype)
        b = np.zeros(k + 2, dtype=x.dtype)
        buf = np.empty(n + 2 * h, dtype=x.dtype)
        row = x[r]
        for j in range(n + 2 * h):
            buf[j] = row[_reflect_index_jit(j - h, n)]
        _median_row(buf, out[r], k, a, b)


@numba.njit(cache=True, nogil=True, inline="always")
def _softmask(x, ref, power, split_zeros):  # pragma: no cover - compiled
    """librosa's ``util.softmask(x, ref, power, split_zeros)`` for one value."""
    z = max(x, ref)
    if np.isinf(power):
        return 1.0 if x > ref else 0.0
    if z < _TINY32:
        return 0.5 if split_zeros else 0.0
    a = x / z
    b = ref / z
    if power == 2.0:
        a = a * a
        b = b * b
    elif power != 1.0:
        a = a**power
        b = b**power
    return a / (a + b)


def _mask_pair(s, h, p, margin_h, margin_p, power, split_zeros):  # pragma: no cover
    """Both HPSS masks applied to one bin: (s * M_h, s * M_p), as librosa.decompose.hpss."""
    return (s * _softmask(h, p * margin_h, power, split_zeros),
            s * _softmask(p, h * margin_p, power, split_zeros))


_mask_pair_jit = numba.njit(cache=True, nogil=True, inline="always")(_mask_pair)


def _apply_masks(S, Hm, Pm, H, P, margin_h, margin_p, power, split_zeros):  # pragma: no cover
    """Element-wise soft masks over 2-D arrays of the same shape."""
    for r in numba.prange(S.shape[0]):
        for c in range(S.shape[1]):
            hv, pv = _mask_pair_jit(
                S[r, c], Hm[r, c], Pm[r, c], margin_h, margin_p, power, split_zeros
            )
            H[r, c] = hv
            P[r, c] = pv


def _masked_mel(S, HmT, Pm, lo, hi, W, out, margin_h, margin_p, power, split_zeros, squared):  # pragma: no cover
    """Soft masks, applied and projected on the mel bands in one pass.

    S, Pm: (L, B) frames-major; HmT: (B, L) bins-major (the harmonic median's
    natural layout); W: (n_mels, B) with band m non-zero on [lo[m], hi[m]);
    out: (2, n_mels, L).
    """
    L, B = S.shape
    n_mels = W.shape[0]
    for t in numba.prange(L):
        hrow = np.empty(B, dtype=np.float32)
        prow = np.empty(B, dtype=np.float32)
        for b in range(B):
            hv, pv = _mask_pair_jit(
                S[t, b], HmT[b, t], Pm[t, b], margin_h, margin_p, power, split_zeros
            )
            if squared:
                hv = hv * hv
                pv = pv * pv
            hrow[b] = hv
            prow[b] = pv
        for m in range(n_mels):
            ah = np.float32(0.0)
            ap = np.float32(0.0)
            for b in range(lo[m], hi[m]):
                w = W[m, b]
                ah += w * hrow[b]
                ap += w * prow[b]
            out[0, m, t] = ah
            out[1, m, t] = ap


def _frame_window(ypad, win, first, hop, frames):  # pragma: no cover - compiled
    """frames[t] = ypad[(first + t) * hop:][:n_fft] * win."""
    n_fft = win.shape[0]
    for t in numba.prange(frames.shape[0]):
        base = (first + t) * hop
        for j in range(n_fft):
            frames[t, j] = ypad[base + j] * win[j]


def _abs_complex(z, out):  # pragma: no cover - compiled
    for r in numba.prange(z.shape[0]):
        for c in range(z.shape[1]):
            v = z[r, c]
            out[r, c] = np.sqrt(v.real * v.real + v.imag * v.imag)


def _compile(fn):
    return (
        numba.njit(cache=True, nogil=True)(fn),
        numba.njit(cache=True, nogil=True, parallel=True)(fn),
    )


_MEDIAN_VALID = _compile(_median_valid)
_MEDIAN_REFLECT = _compile(_median_reflect)
_APPLY_MASKS = _compile(_apply_masks)
_MASKED_MEL = _compile(_masked_mel)
_FRAME_WINDOW = _compile(_frame_window)
_ABS_COMPLEX = _compile(_abs_complex)


def _kernel(pair, parallel: bool):
    return pair[1] if parallel else pair[0]


def median_rows_into(x: np.ndarray, out: np.ndarray, k: int, *, padded: bool = False, parallel: bool = False) -> None:
    """Row-wise running median of odd length ``k`` into ``out``: the streaming frontend's hot path, unchecked.

    Parameters
    ----------
    x : np.ndarray [shape=(R, n) or (R, L + k - 1), dtype=float32, C-contiguous]
        Rows to filter.
    out : np.ndarray [shape=(R, n) or (R, L), dtype=float32]
        Written in place.
    k : int
        Odd median length (validated by the public filters, not here).
    padded : bool
        False: reflect at the row edges (``out`` as wide as ``x``). True: ``x``
        already holds ``k // 2`` values of context on each side (``out`` is
        ``k - 1`` narrower).
    parallel : bool
        Use the ``prange`` build.
    """
    _kernel(_MEDIAN_VALID if padded else _MEDIAN_REFLECT, parallel)(x, out, k)


# --------------------------------------------------------------------------- helpers


def _as_float32(x, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ParameterError(f"{name} must be {ndim}-D, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ParameterError(f"{name} must be floating point, got {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _check_kernel(k) -> int:
    if isinstance(k, (bool, np.bool_)) or int(k) != k or int(k) < 1 or int(k) % 2 == 0:
        raise ParameterError(f"median kernel sizes must be odd positive integers, got {k!r}")
    return int(k)


def _pair(value, name: str):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ParameterError(f"{name} must be a number or a (harmonic, percussive) pair")
        return value[0], value[1]
    return value, value


def hann_window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n_fft, fftbins=True)``).

    Returns
    -------
    np.ndarray [shape=(n_fft,), dtype=float32]
    """
    n = np.arange(n_fft, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)).astype(np.float32)


# --------------------------------------------------------------------------- public API


def median_filter(x: np.ndarray, size: int, *, axis: int = -1, parallel: bool = False) -> np.ndarray:
    """Median filter along one axis of a 2-D array, with ``reflect`` edges.

    Equal to ``scipy.ndimage.median_filter(x, size=shape, mode="reflect")`` where
    ``shape`` is ``size`` on ``axis`` and 1 elsewhere.

    Parameters
    ----------
    x : np.ndarray [shape=(d0, d1), floating]
    size : int
        Odd window length, in samples of ``axis``.
    axis : int
        0 or 1 (negative values count from the end).
    parallel : bool
        Use the multi-threaded kernel (never from threads or worker pools).

    Returns
    -------
    np.ndarray [shape=x.shape, dtype=float32]
    """
    x = _as_float32(x, "x", 2)
    k = _check_kernel(size)
    if axis not in (0, 1, -1, -2):
        raise ParameterError(f"axis must be 0 or 1 for a 2-D array, got {axis}")
    along_rows = axis in (1, -1)
    src = x if along_rows else np.ascontiguousarray(x.T)
    out = np.empty_like(src)
    _kernel(_MEDIAN_REFLECT, parallel)(src, out, k)
    return out if along_rows else np.ascontiguousarray(out.T)


def stft_magnitude(
    y: np.ndarray, n_fft: int = 2048, hop_length: int = 512, *, parallel: bool = False
) -> np.ndarray:
    """Magnitude of the centred short-time Fourier transform.

    As ``np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=True,
    pad_mode="constant"))`` with a periodic Hann window of length ``n_fft``.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), floating]
        Mono signal, at least one sample.
    n_fft : int
        FFT size and window length, in samples.
    hop_length : int
        Samples between frame centres.
    parallel : bool
        Multi-threaded framing (never from threads or worker pools).

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, 1 + n // hop_length), dtype=float32]
    """
    y = _as_float32(y, "y", 1)
    if y.size == 0:
        raise ParameterError("y must hold at least one sample")
    if n_fft < 2 or hop_length < 1:
        raise ParameterError(f"need n_fft >= 2 and hop_length >= 1, got {n_fft}, {hop_length}")
    pad = n_fft // 2
    ypad = np.zeros(y.size + 2 * pad, dtype=np.float32)
    ypad[pad : pad + y.size] = y
    n_frames = 1 + (ypad.size - n_fft) // hop_length
    return np.ascontiguousarray(
        stft_frames(ypad, hann_window(n_fft), hop_length, 0, n_frames, parallel).T
    )


def stft_frames(ypad, window, hop_length, first, n_frames, parallel=False) -> np.ndarray:
    """Frames-major STFT magnitude (n_frames, 1 + n_fft // 2) of an already padded signal.

    Frame ``t`` covers ``ypad[(first + t) * hop_length:][:n_fft]``.
    """
    n_fft = window.shape[0]
    frames = np.empty((n_frames, n_fft), dtype=np.float32)
    _kernel(_FRAME_WINDOW, parallel)(ypad, window, first, hop_length, frames)
    spec = np.fft.rfft(frames, axis=1)
    mag = np.empty(spec.shape, dtype=np.float32)
    _kernel(_ABS_COMPLEX, parallel)(spec, mag)
    return mag


def hpss(
    S: np.ndarray,
    kernel_size=31,
    power: float = 2.0,
    margin=1.0,
    *,
    parallel: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Median-filtering harmonic/percussive separation of a magnitude spectrogram.

    As ``librosa.decompose.hpss(S, kernel_size, power, mask=False, margin)``:
    harmonic = median along time, percussive = median along frequency (both with
    ``reflect`` edges), then soft masks ``M_H = H^p / (H^p + (m_H P)^p)`` and
    ``M_P = P^p / (P^p + (m_P H)^p)``. With ``margin`` 1, bins where both medians
    vanish are split evenly, so ``H + P == S``.

    Parameters
    ----------
    S : np.ndarray [shape=(n_bins, n_frames), non-negative]
        Magnitude spectrogram.
    kernel_size : int or (int, int)
        Odd median lengths, (harmonic in frames, percussive in bins).
    power : float > 0 or np.inf
        Mask exponent; ``np.inf`` gives binary masks.
    margin : float >= 1 or (float, float)
        Margins of the harmonic and percussive masks.
    parallel : bool
        Multi-threaded kernels (never from threads or worker pools).

    Returns
    -------
    H, P : np.ndarray [shape=S.shape, dtype=float32]
    """
    S = _as_float32(S, "S", 2)
    kh, kp = (_check_kernel(k) for k in _pair(kernel_size, "kernel_size"))
    mh, mp = (float(m) for m in _pair(margin, "margin"))
    if mh < 1.0 or mp < 1.0:
        raise ParameterError(f"margins must be >= 1, got {margin!r}")
    power = float(power)
    if not power > 0:
        raise ParameterError(f"power must be > 0, got {power}")
    harm = median_filter(S, kh, axis=1, parallel=parallel)
    perc = median_filter(S, kp, axis=0, parallel=parallel)
    H = np.empty_like(S)
    P = np.empty_like(S)
    split = mh == 1.0 and mp == 1.0
    _kernel(_APPLY_MASKS, parallel)(
        S, harm, perc, H, P, np.float32(mh), np.float32(mp), np.float32(power), split
    )
    return H, P


def _hz_to_mel(f):
    # Slaney's auditory toolbox scale: linear below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(
        f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mels
    )


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(
    sr: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> np.ndarray:
    """Triangular mel filters (Slaney scale, Slaney area normalisation).

    As ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)``.

    Parameters
    ----------
    sr : float
        Sample rate in Hz.
    n_fft : int
        FFT size, in samples.
    n_mels : int
        Number of bands.
    fmin, fmax : float
        Lowest and highest band edge in Hz (``fmax`` None = ``sr / 2``).

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32]
    """
    if fmax is None:
        fmax = float(sr) / 2
    if n_mels < 1 or not 0 <= fmin < fmax:
        raise ParameterError(f"need n_mels >= 1 and 0 <= fmin < fmax, got {n_mels}, {fmin}, {fmax}")
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        _LOGGER.warning("empty mel filters: n_mels=%d is too many for n_fft=%d", n_mels, n_fft)
    return weights.astype(np.float32)


def masked_mel(
    S: np.ndarray,
    harm_median_t: np.ndarray,
    perc_median: np.ndarray,
    mel_basis: np.ndarray,
    *,
    power: float = 2.0,
    margin=1.0,
    mel_power: float = 1.0,
    parallel: bool = False,
) -> np.ndarray:
    """Soft-mask a frames-major magnitude block and project both parts on mel bands.

    The fused tail of the frontend: ``M @ (S * M_H)`` and ``M @ (S * M_P)``
    without materialising H and P.

    Parameters
    ----------
    S : np.ndarray [shape=(L, n_bins), float32]
        Magnitude frames, frames-major.
    harm_median_t : np.ndarray [shape=(n_bins, L), float32]
        Median along time (bins-major).
    perc_median : np.ndarray [shape=(L, n_bins), float32]
        Median along frequency (frames-major).
    mel_basis : np.ndarray [shape=(n_mels, n_bins), float32]
    power, margin : as in :func:`hpss`
    mel_power : 1.0 or 2.0
        Project the magnitudes (1) or their squares (2).

    Returns
    -------
    np.ndarray [shape=(2, n_mels, L), dtype=float32]
        Harmonic and percussive mel spectrogram (amplitude).
    """
    mh, mp = (float(m) for m in _pair(margin, "margin"))
    nz = mel_basis > 0
    any_nz = nz.any(axis=1)
    lo = np.where(any_nz, nz.argmax(axis=1), 0).astype(np.int64)
    hi = np.where(any_nz, nz.shape[1] - nz[:, ::-1].argmax(axis=1), 0).astype(np.int64)
    out = np.empty((2, mel_basis.shape[0], S.shape[0]), dtype=np.float32)
    _kernel(_MASKED_MEL, parallel)(
        S,
        harm_median_t,
        perc_median,
        lo,
        hi,
        np.ascontiguousarray(mel_basis, dtype=np.float32),
        out,
        np.float32(mh),
        np.float32(mp),
        np.float32(power),
        mh == 1.0 and mp == 1.0,
        mel_power == 2.0,
    )
    return out
