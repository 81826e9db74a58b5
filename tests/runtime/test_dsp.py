"""The numba DSP functions against librosa and scipy (test-only oracles)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.ndimage

from mirtag.runtime import dsp
from mirtag.runtime.errors import ParameterError
from tests.conftest import music_like

TOL = 1e-4  # max abs difference, relative to the reference's maximum


def close(actual, expected, tol=TOL):
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    return float(np.max(np.abs(actual - expected))) / scale <= tol


@pytest.fixture(scope="module")
def song():
    return music_like(22050, 12.0, seed=3)


@pytest.fixture(scope="module")
def spec(song):
    return np.abs(librosa.stft(song, n_fft=2048, hop_length=512, center=True, pad_mode="constant"))


@pytest.mark.parametrize("n", [1, 100, 511, 512, 513, 22050 * 3 + 17])
@pytest.mark.parametrize("n_fft,hop", [(2048, 512), (1024, 256), (512, 160)])
def test_stft_magnitude_matches_librosa(rng, n, n_fft, hop):
    y = (0.3 * rng.standard_normal(n)).astype(np.float32)
    ours = dsp.stft_magnitude(y, n_fft=n_fft, hop_length=hop)
    ref = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True, pad_mode="constant"))
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (1 + n_fft // 2, 1 + n // hop)
    assert close(ours, ref)


def test_stft_of_music_matches_librosa(song, spec):
    assert close(dsp.stft_magnitude(song), spec)


@pytest.mark.parametrize("size", [1, 3, 17, 31])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("shape", [(40, 300), (1025, 64), (5, 3), (31, 1), (33, 16)])
def test_median_filter_is_scipy_reflect(rng, size, axis, shape):
    x = rng.random(shape, dtype=np.float32)
    x[x < 0.2] = 0.0  # ties, as in real spectrograms
    footprint = [1, 1]
    footprint[axis] = size
    ref = scipy.ndimage.median_filter(x, size=tuple(footprint), mode="reflect")
    np.testing.assert_array_equal(dsp.median_filter(x, size, axis=axis), ref)
    np.testing.assert_array_equal(dsp.median_filter(x, size, axis=axis, parallel=True), ref)


def test_median_filter_rejects_even_sizes(rng):
    with pytest.raises(ParameterError, match="odd"):
        dsp.median_filter(rng.random((4, 4)), 4)


@pytest.mark.parametrize(
    "kernel,power,margin",
    [(31, 2.0, 1.0), ((31, 17), 2.0, 1.0), (31, 1.0, 1.0), (15, 2.0, (2.0, 3.0)), (31, np.inf, 1.0)],
)
def test_hpss_matches_librosa(spec, kernel, power, margin):
    H, P = dsp.hpss(spec, kernel_size=kernel, power=power, margin=margin)
    Hr, Pr = librosa.decompose.hpss(spec, kernel_size=kernel, power=power, margin=margin)
    assert H.dtype == P.dtype == np.float32
    assert close(H, Hr) and close(P, Pr)


def test_hpss_parts_sum_to_the_input_with_margin_one(spec):
    spec = spec.copy()
    spec[:, :20] = 0.0  # a silent stretch: both medians vanish there
    H, P = dsp.hpss(spec)
    np.testing.assert_allclose(H + P, spec, rtol=1e-6, atol=1e-7)
    assert close(H, librosa.decompose.hpss(spec)[0])


def test_hpss_edges_match_librosa_on_a_tiny_spectrogram(rng):
    S = rng.random((20, 9), dtype=np.float32)
    H, P = dsp.hpss(S, kernel_size=31)
    Hr, Pr = librosa.decompose.hpss(S, kernel_size=31)
    assert close(H, Hr) and close(P, Pr)


def test_hpss_validates_its_parameters(spec):
    with pytest.raises(ParameterError):
        dsp.hpss(spec, margin=0.5)
    with pytest.raises(ParameterError):
        dsp.hpss(spec, kernel_size=(31, 30))
    with pytest.raises(ParameterError):
        dsp.hpss(spec[0])


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax",
    [
        (22050, 2048, 84, 0.0, None),
        (22050, 2048, 128, 0.0, None),
        (16000, 512, 40, 50.0, 7000.0),
        (44100, 4096, 96, 20.0, None),
    ],
)
def test_mel_filterbank_matches_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = dsp.mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.shape == ref.shape == (n_mels, 1 + n_fft // 2)
    assert ours.dtype == np.float32
    assert close(ours, ref)


@pytest.mark.parametrize("parallel", [False, True])
def test_fused_hpss_mel_equals_mel_of_hpss(spec, parallel):
    H, P = dsp.hpss(spec)
    M = dsp.mel_filterbank(22050, 2048, 84)
    S = np.ascontiguousarray(spec.T)
    harm = dsp.median_filter(S, 31, axis=0)
    fused = dsp.hpss_mel(S, harm, M, parallel=parallel)
    assert close(fused[0], M @ H) and close(fused[1], M @ P)


def test_median_along_listed_rows_reads_context_in_place(rng):
    x = rng.random((50, 70), dtype=np.float32)
    rows = dsp.reflect_indices(10 - 15, 40 + 15, 50)
    out = np.empty((30, 70), np.float32)
    dsp.median_axis0_into(x, rows, out, 31)
    ref = scipy.ndimage.median_filter(x, size=(31, 1), mode="reflect")[10:40]
    np.testing.assert_array_equal(out, ref)
