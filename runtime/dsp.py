"""Numba DSP kernels behind small numpy-facing functions.

Public functions take and return float32 numpy arrays and follow librosa's
conventions, so librosa (a test-only dependency) can serve as their oracle:

- :func:`stft_magnitude` as ``abs(librosa.stft(y, center=True, pad_mode="constant"))``
- :func:`hpss` as ``librosa.decompose.hpss`` on a magnitude spectrogram
- :func:`mel_filterbank` as ``librosa.filters.mel`` (Slaney scale and norm)
- :func:`median_filter` as ``scipy.ndimage.median_filter`` along one axis, ``mode="reflect"``

The median filters are where a librosa HPSS pipeline spends 95 % of its time
(2-D ``scipy.ndimage.median_filter``). Ours run one filter per SIMD lane
(:data:`LANES` rows at once, each keeping its window sorted and updated with a
compare, a select, a min and a max per slot), read the spectrogram in the layout
it already has (no transposes), and the frontend's tail
(:func:`hpss_mel`: percussive median, both masks, both mel projections) works on
tiles of frames, so no block-sized H or P is ever made.

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

__all__ = [
    "stft_magnitude",
    "stft_frames",
    "hpss",
    "hpss_mel",
    "mel_filterbank",
    "median_filter",
    "median_axis0_into",
    "reflect_indices",
    "hann_window",
]


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


# The median kernels run one filter per SIMD lane: LANES independent rows (frequency
# bins for the median along time, frames for the median along frequency) advance
# together, so every operation is a dense vector operation over lanes and no
# transpose of the spectrogram is ever made. Each lane keeps its window sorted;
# one step deletes the outgoing value and inserts the incoming one with a
# compare, a select, a min and a max per slot (no rank counting, no branches).
LANES = 32
"""Rows filtered together: two AVX-512 (four AVX2) vectors; a runtime trip count
this large keeps LLVM's vector body (with its alias checks) in use."""

STFT_SUB_FRAMES = 16
"""Frames framed and transformed together by :func:`stft_frames` (16 x 2,048 float32 frames and their
spectra take 260 kB: inside a 1 MB L2 with room to spare; at 64 they spill and the STFT runs 1.2-3x slower)."""

_INF32 = np.float32(np.inf)
_NINF32 = np.float32(-np.inf)


@numba.njit(cache=True, nogil=True)
def _lanes_step(a, b, old, new, prev, k, w):  # pragma: no cover - compiled
    """One sliding step of ``w`` sorted windows of length ``k``: ``b`` = ``a`` - old + new.

    ``a`` and ``b`` hold slot ``i`` of lane ``ln`` at ``i * w + ln`` (``k + 1`` slots,
    the last a +inf sentinel). With ``d`` the window without ``old`` (``d[i] = a[i]``
    below the first copy of ``old``, ``a[i + 1]`` from it on), inserting ``new``
    gives ``b[i] = max(d[i - 1], min(d[i], new))`` (``d[-1] = -inf``).
    """
    for ln in range(w):
        prev[ln] = _NINF32
    for i in range(k):
        base = i * w
        for ln in range(w):
            ai = a[base + ln]
            d = ai if ai < old[ln] else a[base + w + ln]
            nv = new[ln]
            m = d if d < nv else nv
            pv = prev[ln]
            b[base + ln] = m if m > pv else pv
            prev[ln] = d


@numba.njit(cache=True, nogil=True, inline="always")
def _median_lanes(
    src, stride, off, nl, idx, n_out, k, a, b, old, new, prev, sink, sink_stride, sink_off
):  # pragma: no cover
    """Running medians of ``nl`` lanes read contiguously: ``src[idx[j] * stride + off + ln]``.

    ``sink[t * sink_stride + sink_off + ln]`` = median over ``j in t .. t + k - 1``
    of lane ``ln``. ``idx``: (n_out + k - 1,) positions with edges and context
    resolved. Idle lanes (``nl .. LANES``) see zeros.
    """
    w = LANES
    mid = k // 2
    a[:] = _INF32
    b[:] = _INF32
    old[:] = _INF32
    new[:] = 0.0
    for j in range(n_out + k - 1):
        base = idx[j] * stride + off
        for ln in range(nl):
            new[ln] = src[base + ln]
        if j >= k:  # before that the window fills: +inf values leave
            base = idx[j - k] * stride + off
            for ln in range(nl):
                old[ln] = src[base + ln]
            for ln in range(nl, w):
                old[ln] = 0.0
        if j % 2 == 0:
            _lanes_step(a, b, old, new, prev, k, w)
            cur = b
        else:
            _lanes_step(b, a, old, new, prev, k, w)
            cur = a
        if j >= k - 1:
            base = (j - k + 1) * sink_stride + sink_off
            for ln in range(nl):
                sink[base + ln] = cur[mid * w + ln]


def _median_axis0(x, rows, out, k):  # pragma: no cover - compiled
    """out[t, c] = median of x[rows[t : t + k], c]: one lane per column, no transpose.

    x: (N, C); rows: (T + k - 1,) row indices (reflection or context already
    resolved); out: (T, C).
    """
    n_cols = x.shape[1]
    n_out = out.shape[0]
    w = LANES
    mid = k // 2
    for chunk in numba.prange((n_cols + w - 1) // w):
        c0 = chunk * w
        nl = min(w, n_cols - c0)
        a = np.full((k + 1) * w, _INF32, dtype=np.float32)
        b = np.full((k + 1) * w, _INF32, dtype=np.float32)
        old = np.full(w, _INF32, dtype=np.float32)
        new = np.zeros(w, dtype=np.float32)
        prev = np.empty(w, dtype=np.float32)
        for j in range(n_out + k - 1):
            r = rows[j]
            for ln in range(nl):
                new[ln] = x[r, c0 + ln]
            if j >= k:  # before that the window fills: +inf leaves (unused lanes carry zeros)
                ro = rows[j - k]
                for ln in range(nl):
                    old[ln] = x[ro, c0 + ln]
                for ln in range(nl, w):
                    old[ln] = 0.0
            if j % 2 == 0:
                _lanes_step(a, b, old, new, prev, k, w)
                cur = b
            else:
                _lanes_step(b, a, old, new, prev, k, w)
                cur = a
            if j >= k - 1:
                t = j - k + 1
                for ln in range(nl):
                    out[t, c0 + ln] = cur[mid * w + ln]


@numba.njit(cache=True, nogil=True, inline="always")
def _lane_tile(x, r0, nl, tile):  # pragma: no cover - compiled
    """tile[c * LANES + ln] = x[r0 + ln, c]: rows r0 .. r0 + nl as lanes (idle lanes zero)."""
    w = LANES
    n_cols = x.shape[1]
    for ln in range(nl):
        for c in range(n_cols):
            tile[c * w + ln] = x[r0 + ln, c]
    if nl < w:
        for c in range(n_cols):
            for ln in range(nl, w):
                tile[c * w + ln] = 0.0


def _median_axis1(x, cols, out, k):  # pragma: no cover - compiled
    """out[r, t] = median of x[r, cols[t : t + k]]: one lane per row, LANES rows per tile."""
    n_rows, n_cols = x.shape
    n_out = out.shape[1]
    w = LANES
    for chunk in numba.prange((n_rows + w - 1) // w):
        r0 = chunk * w
        nl = min(w, n_rows - r0)
        a = np.empty((k + 1) * w, dtype=np.float32)
        b = np.empty((k + 1) * w, dtype=np.float32)
        old = np.empty(w, dtype=np.float32)
        new = np.empty(w, dtype=np.float32)
        prev = np.empty(w, dtype=np.float32)
        tile = np.empty(n_cols * w, dtype=np.float32)
        sink = np.empty(n_out * w, dtype=np.float32)
        _lane_tile(x, r0, nl, tile)
        _median_lanes(tile, w, 0, w, cols, n_out, k, a, b, old, new, prev, sink, w, 0)
        for ln in range(nl):
            for t in range(n_out):
                out[r0 + ln, t] = sink[t * w + ln]


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
    return (s * _softmask(h, p * margin_h, power, split_zeros), s * _softmask(p, h * margin_p, power, split_zeros))


_mask_pair_jit = numba.njit(cache=True, nogil=True, inline="always")(_mask_pair)


def _apply_masks(S, Hm, Pm, H, P, margin_h, margin_p, power, split_zeros):  # pragma: no cover
    """Element-wise soft masks over 2-D arrays of the same shape."""
    for r in numba.prange(S.shape[0]):
        for c in range(S.shape[1]):
            hv, pv = _mask_pair_jit(S[r, c], Hm[r, c], Pm[r, c], margin_h, margin_p, power, split_zeros)
            H[r, c] = hv
            P[r, c] = pv


@numba.njit(cache=True, nogil=True)
def _masks_into(s, h, p, margin_h, margin_p, power, split_zeros):  # pragma: no cover - compiled
    """In place: ``h <- s * M_H``, ``p <- s * M_P`` from the medians ``h`` and ``p`` (1-D, same length).

    ``power == 2`` (the default) takes a branch-free path: librosa's ``softmask``
    divides by ``z = max(x, ref)`` only to keep ``x ** 2`` in float32 range, and
    float64 squares of float32 values need no such guard, so each bin costs one
    division (two with unequal margins) and vectorises.
    """
    n = s.shape[0]
    if power == 2.0 and margin_h == 1.0 and margin_p == 1.0:
        for i in range(n):
            hv = h[i]
            pv = p[i]
            z = hv if hv > pv else pv
            if z < _TINY32:
                half = s[i] * np.float32(0.5) if split_zeros else np.float32(0.0)
                h[i] = half
                p[i] = half
            else:
                h2 = np.float64(hv) * np.float64(hv)
                p2 = np.float64(pv) * np.float64(pv)
                r = np.float64(s[i]) / (h2 + p2)
                h[i] = np.float32(h2 * r)
                p[i] = np.float32(p2 * r)
    elif power == 2.0:
        for i in range(n):
            hv = np.float64(h[i])
            pv = np.float64(p[i])
            sv = np.float64(s[i])
            rh = pv * margin_h  # harmonic mask: h vs margin_h * p
            rp = hv * margin_p  # percussive mask: p vs margin_p * h
            zh = hv if hv > rh else rh
            zp = pv if pv > rp else rp
            fill = 0.5 * sv if split_zeros else 0.0
            h[i] = np.float32(fill if zh < _TINY32 else sv * (hv * hv) / (hv * hv + rh * rh))
            p[i] = np.float32(fill if zp < _TINY32 else sv * (pv * pv) / (pv * pv + rp * rp))
    else:
        for i in range(n):
            hv, pv = _mask_pair_jit(s[i], h[i], p[i], margin_h, margin_p, power, split_zeros)
            h[i] = hv
            p[i] = pv


def _hpss_mel(S, harm, cols, lo, hi, W, out, kp, margin_h, margin_p, power, split_zeros, squared):  # pragma: no cover
    """Percussive median, both soft masks and both mel projections, LANES frames at a time.

    S, harm: (L, B) frames-major magnitude and its median along time; cols:
    (B + kp - 1,) bin indices of the reflected frequency axis; W: (n_mels, B) with
    band m non-zero on [lo[m], hi[m]); out: (2, n_mels, L). Per tile of frames the
    intermediates are (B, LANES) buffers: no block-sized H, P or median array.
    """
    L, B = S.shape
    n_mels = W.shape[0]
    w = LANES
    for chunk in numba.prange((L + w - 1) // w):
        t0 = chunk * w
        nl = min(w, L - t0)
        a = np.empty((kp + 1) * w, dtype=np.float32)
        b = np.empty((kp + 1) * w, dtype=np.float32)
        old = np.empty(w, dtype=np.float32)
        new = np.empty(w, dtype=np.float32)
        prev = np.empty(w, dtype=np.float32)
        sbuf = np.empty(B * w, dtype=np.float32)
        hbuf = np.empty(B * w, dtype=np.float32)  # the harmonic median, then the masked H
        pbuf = np.empty(B * w, dtype=np.float32)  # the percussive median, then the masked P
        # Bins-major tiles of S and the harmonic median (rows read in order, small writes);
        # the percussive median then reads each bin's LANES frames contiguously.
        _lane_tile(S, t0, nl, sbuf)
        _lane_tile(harm, t0, nl, hbuf)
        _median_lanes(sbuf, w, 0, w, cols, B, kp, a, b, old, new, prev, pbuf, w, 0)
        _masks_into(sbuf, hbuf, pbuf, margin_h, margin_p, power, split_zeros)
        if squared:
            for i in range(B * w):
                hbuf[i] = hbuf[i] * hbuf[i]
                pbuf[i] = pbuf[i] * pbuf[i]
        acc_h = np.empty(w, dtype=np.float32)
        acc_p = np.empty(w, dtype=np.float32)
        for m in range(n_mels):
            for ln in range(w):
                acc_h[ln] = 0.0
                acc_p[ln] = 0.0
            for bb in range(lo[m], hi[m]):
                wv = W[m, bb]
                base = bb * w
                for ln in range(w):
                    acc_h[ln] += wv * hbuf[base + ln]
                    acc_p[ln] += wv * pbuf[base + ln]
            for ln in range(nl):
                out[0, m, t0 + ln] = acc_h[ln]
                out[1, m, t0 + ln] = acc_p[ln]


def _frame_window(ypad, win, first, hop, frames):  # pragma: no cover - compiled
    """frames[t] = ypad[(first + t) * hop:][:n_fft] * win."""
    n_fft = win.shape[0]
    for t in numba.prange(frames.shape[0]):
        base = (first + t) * hop
        for j in range(n_fft):
            frames[t, j] = ypad[base + j] * win[j]


def _abs_complex(z, out, r0):  # pragma: no cover - compiled
    """out[r0 + r] = |z[r]|."""
    for r in numba.prange(z.shape[0]):
        for c in range(z.shape[1]):
            v = z[r, c]
            out[r0 + r, c] = np.sqrt(v.real * v.real + v.imag * v.imag)


def _compile(fn):
    return (
        numba.njit(cache=True, nogil=True)(fn),
        numba.njit(cache=True, nogil=True, parallel=True)(fn),
    )


_MEDIAN_AXIS0 = _compile(_median_axis0)
_MEDIAN_AXIS1 = _compile(_median_axis1)
_APPLY_MASKS = _compile(_apply_masks)
_HPSS_MEL = _compile(_hpss_mel)
_FRAME_WINDOW = _compile(_frame_window)
_ABS_COMPLEX = _compile(_abs_complex)


def _kernel(pair, parallel: bool):
    return pair[1] if parallel else pair[0]


def reflect_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices of positions ``start .. stop - 1`` of a length-``n`` axis under scipy's ``reflect``.

    Returns
    -------
    np.ndarray [shape=(stop - start,), dtype=int64]
    """
    v = np.arange(start, stop, dtype=np.int64)
    if n == 1:
        return np.zeros_like(v)
    period = 2 * n
    r = np.mod(v, period)
    return np.where(r >= n, period - 1 - r, r)


def median_axis0_into(x: np.ndarray, rows: np.ndarray, out: np.ndarray, k: int, *, parallel: bool = False) -> None:
    """Running median down the rows of ``x`` into ``out``: the frontend's median along time, unchecked.

    ``out[t, c]`` is the median of ``x[rows[t : t + k], c]``. The caller resolves
    edges and context into ``rows``, so a streamed block reads its neighbours'
    frames in place (no padded copy, no transpose).

    Parameters
    ----------
    x : np.ndarray [shape=(N, C), dtype=float32, C-contiguous]
        Frames-major magnitudes (rows are frames).
    rows : np.ndarray [shape=(T + k - 1,), dtype=int64]
        Row of ``x`` at each position of the padded time axis.
    out : np.ndarray [shape=(T, C), dtype=float32]
        Written in place.
    k : int
        Odd median length (validated by the public filters, not here).
    parallel : bool
        Use the ``prange`` build.
    """
    _kernel(_MEDIAN_AXIS0, parallel)(x, rows, out, k)


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
    out = np.empty_like(x)
    h = k // 2
    if axis in (1, -1):
        _kernel(_MEDIAN_AXIS1, parallel)(x, reflect_indices(-h, x.shape[1] + h, x.shape[1]), out, k)
    else:
        _kernel(_MEDIAN_AXIS0, parallel)(x, reflect_indices(-h, x.shape[0] + h, x.shape[0]), out, k)
    return out


def stft_magnitude(y: np.ndarray, n_fft: int = 2048, hop_length: int = 512, *, parallel: bool = False) -> np.ndarray:
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
    return np.ascontiguousarray(stft_frames(ypad, hann_window(n_fft), hop_length, 0, n_frames, parallel).T)


def stft_frames(ypad, window, hop_length, first, n_frames, parallel=False) -> np.ndarray:
    """Frames-major STFT magnitude (n_frames, 1 + n_fft // 2) of an already padded signal.

    Frame ``t`` covers ``ypad[(first + t) * hop_length:][:n_fft]``.
    """
    n_fft = window.shape[0]
    mag = np.empty((n_frames, 1 + n_fft // 2), dtype=np.float32)
    # A few frames at a time: the frames and their spectra stay in the L2 cache
    # (float32 rfft of a whole 1,024-frame block runs 2-4x slower from memory).
    frames = np.empty((min(n_frames, STFT_SUB_FRAMES), n_fft), dtype=np.float32)
    for t0 in range(0, n_frames, STFT_SUB_FRAMES):
        sub = frames[: min(STFT_SUB_FRAMES, n_frames - t0)]
        _kernel(_FRAME_WINDOW, parallel)(ypad, window, first + t0, hop_length, sub)
        _kernel(_ABS_COMPLEX, parallel)(np.fft.rfft(sub, axis=1), mag, t0)
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
    _kernel(_APPLY_MASKS, parallel)(S, harm, perc, H, P, np.float32(mh), np.float32(mp), np.float32(power), split)
    return H, P


def _hz_to_mel(f):
    # Slaney's auditory toolbox scale: linear below 1 kHz, logarithmic above.
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mels = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, mels)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sr: float, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
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


def _band_limits(mel_basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last non-zero bin of every mel band (0, 0 for an empty band)."""
    nz = mel_basis > 0
    any_nz = nz.any(axis=1)
    lo = np.where(any_nz, nz.argmax(axis=1), 0).astype(np.int64)
    hi = np.where(any_nz, nz.shape[1] - nz[:, ::-1].argmax(axis=1), 0).astype(np.int64)
    return lo, hi


def hpss_mel(
    S: np.ndarray,
    harm_median: np.ndarray,
    mel_basis: np.ndarray,
    *,
    perc_kernel: int = 31,
    power: float = 2.0,
    margin=1.0,
    mel_power: float = 1.0,
    parallel: bool = False,
) -> np.ndarray:
    """The fused tail of the frontend: percussive median, soft masks and both mel projections.

    ``M @ (S * M_H)`` and ``M @ (S * M_P)`` of a frames-major block, computed
    ``LANES`` frames at a time: the percussive median, H and P exist only as
    (n_bins, LANES) tiles.

    Parameters
    ----------
    S : np.ndarray [shape=(L, n_bins), float32, C-contiguous]
        Magnitude frames, frames-major.
    harm_median : np.ndarray [shape=(L, n_bins), float32, C-contiguous]
        Median along time of the same frames (:func:`median_axis0_into`).
    mel_basis : np.ndarray [shape=(n_mels, n_bins), float32]
    perc_kernel : int
        Odd median length along frequency, in bins (``reflect`` edges).
    power, margin : as in :func:`hpss`
    mel_power : 1.0 or 2.0
        Project the magnitudes (1) or their squares (2).
    parallel : bool
        Use the ``prange`` build.

    Returns
    -------
    np.ndarray [shape=(2, n_mels, L), dtype=float32]
        Harmonic and percussive mel spectrogram (amplitude).
    """
    mh, mp = (float(m) for m in _pair(margin, "margin"))
    n_bins = S.shape[1]
    h = perc_kernel // 2
    lo, hi = _band_limits(mel_basis)
    out = np.empty((2, mel_basis.shape[0], S.shape[0]), dtype=np.float32)
    _kernel(_HPSS_MEL, parallel)(
        S,
        harm_median,
        reflect_indices(-h, n_bins + h, n_bins),
        lo,
        hi,
        np.ascontiguousarray(mel_basis, dtype=np.float32),
        out,
        perc_kernel,
        np.float32(mh),
        np.float32(mp),
        np.float32(power),
        mh == 1.0 and mp == 1.0,
        mel_power == 2.0,
    )
    return out
