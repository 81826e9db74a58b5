"""Tagger on the tiny fixture model: exact outputs, files of every format, warnings, threads."""

from __future__ import annotations

import concurrent.futures
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirtag.runtime import Frontend, Tagger, warmup
from mirtag.runtime.errors import DecodeError, ModelLoadError
from tests.conftest import music_like
from tests.fixtures.make_tiny_model import GENRE_LABELS, expected_outputs

TINY = Path(__file__).parents[1] / "fixtures" / "tiny"


@pytest.fixture(scope="module")
def tagger():
    return Tagger.load(TINY, device="cpu", threads=1)


def test_tag_array_is_the_mean_of_the_window_outputs(tagger):
    y = music_like(44100, 20.0, seed=1)
    result = tagger.tag_array(y, 44100)
    feats = Frontend.from_card(tagger.card).analyze(y, 44100)
    want = expected_outputs(feats.windows)
    assert result.n_windows == len(feats) == 12
    assert list(result.heads) == ["genre", "quadrant"]
    assert list(result.heads["genre"]) == list(GENRE_LABELS)
    np.testing.assert_allclose(list(result.heads["genre"].values()), want["genre"].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(list(result.heads["quadrant"].values()), want["quadrant"].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(result.embedding, want["embedding"].mean(axis=0), rtol=1e-5)
    votes = np.bincount(want["quadrant"].argmax(axis=1), minlength=4)
    assert result.votes["quadrant"] == ("Q1", "Q2", "Q3", "Q4")[int(votes.argmax())]
    assert result.votes["genre"] is None
    assert result.warnings == []
    assert result.duration_s == pytest.approx(20.0)


@pytest.mark.parametrize(
    "fmt,subtype,ext",
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("MP3", "MPEG_LAYER_III", "mp3"), ("OGG", "VORBIS", "ogg")],
)
def test_tag_file_agrees_with_tag_array(tagger, tmp_path, fmt, subtype, ext):
    y = music_like(44100, 12.0, seed=2, channels=2)
    path = tmp_path / f"song.{ext}"
    sf.write(path, y, 44100, format=fmt, subtype=subtype)
    from_file = tagger.tag_file(path)
    decoded, sr = sf.read(path, dtype="float32")
    from_array = tagger.tag_array(decoded.mean(axis=1), sr)
    assert from_file.n_windows == from_array.n_windows
    assert abs(from_file.duration_s - 12.0) < 0.1
    for head in from_file.heads:
        np.testing.assert_allclose(
            list(from_file.heads[head].values()), list(from_array.heads[head].values()), atol=2e-3
        )


def test_top_uses_card_thresholds_best_first_and_may_be_empty(tagger):
    result = tagger.tag_array(music_like(22050, 8.0), 22050)
    probs = result.heads["genre"]
    top = result.top("genre", tagger.card)
    assert top == sorted(top, key=lambda lab: -probs[lab])
    thresholds = tagger.card.head("genre").thresholds
    assert all(probs[lab] >= thresholds[lab] for lab in top)
    assert result.top("genre", tagger.card, min_confidence=1.01) == [], "nothing passes: nothing is said"
    assert len(result.top("genre", tagger.card, min_confidence=0.0, k=2)) == 2
    assert result.top("quadrant", tagger.card) == [max(result.heads["quadrant"], key=result.heads["quadrant"].get)]


def test_silence_gets_no_decisions(tagger):
    silent = tagger.tag_array(np.zeros(22050 * 5, np.float32), 22050)
    assert not silent.is_music(tagger.card)
    assert all(silent.top(h.name, tagger.card, min_confidence=0.0) == [] for h in tagger.card.heads)


def test_silence_and_short_clips_get_warnings(tagger):
    silent = tagger.tag_array(np.zeros(22050 * 5, np.float32), 22050)
    assert silent.warnings == ["silent"]
    short = tagger.tag_array(music_like(22050, 1.0), 22050)
    assert short.warnings == ["shorter than one window"]
    assert short.n_windows == 1


def test_silent_windows_are_left_out_of_the_mean(tagger):
    music = music_like(22050, 6.0)
    padded = np.concatenate([np.zeros(22050 * 12, np.float32), music])
    feats = Frontend.from_card(tagger.card).analyze(padded, 22050)
    assert feats.silent.any() and not feats.silent.all()
    want = expected_outputs(feats.windows[~feats.silent])["genre"].mean(axis=0)
    got = tagger.tag_array(padded, 22050).heads["genre"]
    np.testing.assert_allclose(list(got.values()), want, rtol=1e-5)


def test_bad_files_raise_errors_that_name_them(tagger, tmp_path):
    bad = tmp_path / "not audio.mp3"
    bad.write_text("this is not audio at all")
    with pytest.raises(DecodeError, match="not audio.mp3"):
        tagger.tag_file(bad)


def test_tagger_is_thread_safe(tagger):
    signals = [music_like(22050, 6.0, seed=s) for s in range(6)]
    serial = [tagger.tag_array(y, 22050).heads for y in signals]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda y: tagger.tag_array(y, 22050).heads, signals))
    assert threaded == serial


def test_load_refuses_generators_and_missing_defaults(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(TINY, folder)
    reg = json.loads((folder / "registry.json").read_text())
    reg["default"] = {}
    (folder / "registry.json").write_text(json.dumps(reg))
    with pytest.raises(ModelLoadError, match="no default classifier"):
        Tagger.load(folder)


def test_warmup_compiles_the_kernels():
    warmup()  # must not raise; second call hits numba's cache
    warmup()


def test_huge_samples_are_one_clear_error_never_nan_probabilities(tagger, tmp_path):
    # Finite but huge float samples overflow float32 in the power spectrum: an embedder calling the
    # Tagger directly gets the scan's one-line reason (naming the file), not NaN in its results.
    from mirtag.runtime import NonFiniteError

    y = music_like(22050, 5.0) * np.float32(1e30)
    with pytest.raises(NonFiniteError, match="non-finite values in the features"):
        tagger.tag_array(y, 22050)
    path = tmp_path / "loud.wav"
    sf.write(path, y.astype(np.float64), 22050, subtype="DOUBLE")
    with pytest.raises(NonFiniteError, match=f"^{path}: non-finite"):
        tagger.tag_file(path)
