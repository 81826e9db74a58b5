"""The Frontend against the librosa oracle, and its streaming engine against itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mirtag.runtime.card import FrontendConfig
from mirtag.runtime.errors import ParameterError
from mirtag.runtime.frontend import Frontend
from tests.conftest import music_like
from tests.oracle import oracle_windows

TOL = 1e-4


@pytest.fixture(scope="module")
def frontend():
    return Frontend(FrontendConfig())


def assert_matches_oracle(fe, y, sr):
    feats = fe.analyze(y, sr)
    ref, ref_silent, n_frames = oracle_windows(y, sr, fe.config)
    assert feats.windows.dtype == np.float32
    assert feats.windows.shape == ref.shape
    assert feats.n_frames == n_frames
    np.testing.assert_array_equal(feats.silent, ref_silent)
    assert np.max(np.abs(feats.windows - ref)) <= TOL * max(ref.max(), 1e-30)
    return feats


@pytest.mark.parametrize(
    "sr,seconds",
    [(22050, 30.0), (44100, 7.3), (48000, 4.0), (22050, 2.9), (22050, 0.5), (22050, 0.02)],
)
def test_frontend_matches_the_librosa_oracle(frontend, sr, seconds):
    y = music_like(sr, seconds, seed=int(seconds * 10))
    assert_matches_oracle(frontend, y, sr)


def test_thirty_seconds_give_nineteen_windows_of_the_model_input_shape(frontend):
    x = frontend(music_like(22050, 30.0), 22050)
    assert x.shape == (19, 2, 84, 128)
    assert np.allclose(x.max(axis=(2, 3)), 1.0)
    assert x.min() >= 0.0


def test_short_clip_gives_one_zero_padded_window(frontend):
    feats = frontend.analyze(music_like(22050, 1.0), 22050)
    assert feats.windows.shape == (1, 2, 84, 128)
    assert feats.n_frames == 44
    assert np.all(feats.windows[0, :, :, 44:] == 0.0)


def test_tail_window_is_end_aligned_when_enough_frames_are_uncovered(frontend):
    # 128 + 64 * 3 + 40 frames: 4 full windows leave 40 uncovered frames (>= 32) -> tail.
    n_frames = 128 + 64 * 3 + 40
    y = music_like(22050, (n_frames - 1) * 512 / 22050 + 1e-3)
    feats = frontend.analyze(y, 22050)
    assert feats.n_frames == n_frames
    assert list(feats.starts) == [0, 64, 128, 192, n_frames - 128]
    # 20 uncovered frames (< 32): no tail.
    n_frames = 128 + 64 * 3 + 20
    feats = frontend.analyze(music_like(22050, (n_frames - 1) * 512 / 22050 + 1e-3), 22050)
    assert list(feats.starts) == [0, 64, 128, 192]


def test_silence_gives_zero_windows_marked_silent(frontend):
    y = np.zeros(22050 * 8, np.float32)
    y[22050 * 5 :] = music_like(22050, 3.0)
    feats = frontend.analyze(y, 22050)
    assert feats.silent[0] and not feats.silent[-1]
    assert np.all(feats.windows[feats.silent] == 0.0)
    assert_matches_oracle(frontend, y, 22050)


@pytest.mark.parametrize(
    "config",
    [
        FrontendConfig(compression="log1p"),
        FrontendConfig(hpss_kernel=(17, 9), hpss_margin=(2.0, 1.5), hpss_power=1.0),
        FrontendConfig(n_mels=128, window_frames=64, window_hop=32, mel_power=2.0),
        FrontendConfig(sample_rate=16000, n_fft=1024, hop_length=256, fmin=30.0, fmax=7600.0),
    ],
)
def test_every_card_field_is_honoured(config):
    fe = Frontend(config)
    feats = assert_matches_oracle(fe, music_like(44100, 6.0, seed=9), 44100)
    assert feats.windows.shape[1:] == config.input_shape


@pytest.mark.parametrize("sr", [22050, 44100])
def test_streamed_chunks_give_the_same_windows_as_the_whole_array(frontend, rng, sr):
    y = music_like(sr, 75.0, seed=5)  # several internal blocks
    whole = frontend.analyze(y, sr)
    stream = frontend.stream(sr)
    parts, i = [], 0
    while i < y.size:
        n = int(rng.integers(1, 60000))
        parts.append(stream.push(y[i : i + n]))
        i += n
    parts.append(stream.finish())
    streamed = np.concatenate([p.windows for p in parts])
    assert streamed.shape == whole.windows.shape
    np.testing.assert_allclose(streamed, whole.windows, atol=1e-5)
    assert np.concatenate([p.starts for p in parts]).tolist() == whole.starts.tolist()


def test_stream_state_stays_bounded(frontend):
    stream = frontend.stream(22050)
    chunk = music_like(22050, 10.0)
    sizes = []
    for _ in range(30):  # five minutes
        stream.push(chunk)
        sizes.append(stream._S.nbytes + stream._mel.nbytes + stream._samples.nbytes)
    assert max(sizes[10:]) <= 1.5 * max(sizes[:10])


def test_parallel_kernels_give_the_same_windows(rng):
    y = music_like(22050, 20.0)
    a = Frontend(FrontendConfig())(y, 22050)
    b = Frontend(FrontendConfig(), parallel=True)(y, 22050)
    np.testing.assert_array_equal(a, b)


def test_bad_input_is_rejected(frontend):
    with pytest.raises(ParameterError, match="NaN"):
        frontend(np.array([0.0, np.nan, 0.1], np.float32), 22050)
    with pytest.raises(ParameterError):
        frontend(np.zeros((10, 2), np.float32), 22050)
    with pytest.raises(ParameterError, match="empty"):
        frontend(np.zeros(0, np.float32), 22050)


def test_from_card_uses_the_card_fields():
    from mirtag.runtime.card import load_card
    from pathlib import Path

    card = load_card(Path(__file__).parents[1] / "fixtures" / "tiny" / "tiny.onnx")
    fe = Frontend.from_card(card)
    assert fe.config == card.frontend
    assert dataclasses.asdict(fe.config)["n_mels"] == 84


def test_windows_cut_from_the_mel_equal_the_frontend_windows(frontend):
    from mirtag.runtime.frontend import cut_windows, window_starts

    y = music_like(22050, 17.0, seed=4)
    feats = frontend.analyze(y, 22050)
    mel = frontend.mel(y, 22050)
    assert mel.shape == (2, 84, feats.n_frames)
    starts = window_starts(feats.n_frames, frontend.config)
    assert starts.tolist() == feats.starts.tolist()
    windows, silent = cut_windows(mel, starts, frontend.config)
    np.testing.assert_array_equal(windows, feats.windows)
    np.testing.assert_array_equal(silent, feats.silent)
