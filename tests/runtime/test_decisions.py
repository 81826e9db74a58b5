"""The decision rules: calibration, thresholds, order, caps, and no labels for what is not music."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mirtag.runtime import Tagger
from mirtag.runtime.card import FrontendConfig, Head, ModelCard, TensorSpec, load_card
from mirtag.runtime.decisions import calibrate, decide, is_music
from mirtag.runtime.errors import ModelLoadError
from mirtag.runtime.tagger import WARN_SILENT, TagResult
from tests.conftest import music_like

TINY = Path(__file__).parents[1] / "fixtures" / "tiny"

GENRE = Head(
    "genre",
    "sigmoid",
    ("Pop/Rock", "Electronic", "Classical", "Jazz"),
    thresholds={"Pop/Rock": 0.4, "Electronic": 0.4, "Classical": 0.4, "Jazz": 0.4},
    max_labels=2,
)
QUAD = Head("quadrant", "softmax", ("Q1", "Q2", "Q3", "Q4"))
MUSIC = Head("music", "sigmoid", ("music",), thresholds={"music": 0.6})


def _card(*heads: Head) -> ModelCard:
    fe = FrontendConfig()
    return ModelCard(
        model_type="classifier",
        name="t",
        version="0",
        sha256="0" * 64,
        onnx_file="t.onnx",
        frontend=fe,
        heads=heads,
        inputs=(TensorSpec("features", ("batch", *fe.input_shape)),),
        outputs=tuple(TensorSpec(h.name, ("batch", len(h.labels))) for h in heads),
    )


def _result(heads: dict, warnings=()) -> TagResult:
    return TagResult(
        heads=heads, votes={h: None for h in heads}, duration_s=30.0, n_windows=19, warnings=list(warnings)
    )


def test_sigmoid_top_may_be_empty():
    assert decide({"Pop/Rock": 0.1, "Electronic": 0.2, "Classical": 0.39, "Jazz": 0.0}, GENRE) == []


def test_top_is_best_first_and_keeps_the_best_label_that_passes():
    probs = {"Pop/Rock": 0.45, "Electronic": 0.41, "Classical": 0.9, "Jazz": 0.1}
    assert decide(probs, GENRE) == ["Classical", "Pop/Rock"]


def test_per_label_thresholds_never_put_a_weaker_label_first():
    head = dataclasses.replace(GENRE, thresholds={"Pop/Rock": 0.3, "Electronic": 0.2, "Classical": 0.45, "Jazz": 0.3})
    top = decide({"Pop/Rock": 0.1, "Electronic": 0.25, "Classical": 0.5, "Jazz": 0.0}, head)
    assert top[0] == "Classical"


def test_cap_and_top_k_override():
    probs = {"Pop/Rock": 0.9, "Electronic": 0.8, "Classical": 0.7, "Jazz": 0.6}
    assert decide(probs, GENRE) == ["Pop/Rock", "Electronic"], "the head's max_labels"
    assert decide(probs, GENRE, k=3) == ["Pop/Rock", "Electronic", "Classical"], "--top-k overrides the cap"
    assert decide(probs, dataclasses.replace(GENRE, max_labels=None)) == list(probs), "no cap"


def test_min_confidence_replaces_every_threshold():
    probs = {"Pop/Rock": 0.35, "Electronic": 0.3, "Classical": 0.2, "Jazz": 0.1}
    assert decide(probs, GENRE) == []
    assert decide(probs, GENRE, min_confidence=0.25) == ["Pop/Rock", "Electronic"]


def test_softmax_names_only_its_best_label_when_it_passes():
    probs = {"Q1": 0.1, "Q2": 0.5, "Q3": 0.3, "Q4": 0.1}
    assert decide(probs, QUAD) == ["Q2"]
    assert decide(probs, QUAD, min_confidence=0.6) == []
    assert decide(probs, dataclasses.replace(QUAD, thresholds={"Q2": 0.55})) == []


def test_music_only_above_its_threshold():
    card = _card(GENRE, MUSIC)
    genre = {"Pop/Rock": 0.9, "Electronic": 0.1, "Classical": 0.1, "Jazz": 0.1}
    quiet = _result({"genre": genre, "music": {"music": 0.008}})
    assert quiet.top("music", card) == []
    loud = _result({"genre": genre, "music": {"music": 0.61}})
    assert loud.top("music", card) == ["music"]
    assert loud.top("genre", card) == ["Pop/Rock"]


def test_not_music_gets_no_genre_or_mood():
    card = _card(GENRE, QUAD, MUSIC)
    r = _result(
        {
            "genre": {"Pop/Rock": 0.9, "Electronic": 0.8, "Classical": 0.1, "Jazz": 0.1},
            "quadrant": {"Q1": 0.7, "Q2": 0.1, "Q3": 0.1, "Q4": 0.1},
            "music": {"music": 0.3},
        }
    )
    assert not r.is_music(card)
    assert [r.top(h.name, card) for h in card.heads] == [[], [], []]


def test_silence_is_not_music_even_with_a_high_music_score():
    card = _card(GENRE, MUSIC)
    r = _result(
        {"genre": {"Pop/Rock": 0.9, "Electronic": 0.1, "Classical": 0.1, "Jazz": 0.1}, "music": {"music": 0.99}},
        warnings=[WARN_SILENT],
    )
    assert not is_music(r.heads, card, silent=True)
    assert r.top("music", card) == [] and r.top("genre", card) == []


def test_without_a_music_head_every_loud_track_counts_as_music():
    assert is_music({"genre": {"Pop/Rock": 0.1}}, _card(GENRE))


def test_calibration_keeps_order_and_moves_towards_half_above_one():
    p = np.array([[0.05, 0.5, 0.9]])
    np.testing.assert_array_equal(calibrate(p, "sigmoid", None), p)
    np.testing.assert_allclose(calibrate(p, "sigmoid", 1.0), p)
    hot = calibrate(p, "sigmoid", 2.0)
    assert hot[0, 0] > 0.05 and hot[0, 2] < 0.9 and hot[0, 1] == pytest.approx(0.5)
    z = np.log(0.9 / 0.1) / 2.0
    assert hot[0, 2] == pytest.approx(1 / (1 + np.exp(-z)))
    cold = calibrate(p, "sigmoid", 0.5)
    assert cold[0, 0] < 0.05 and cold[0, 2] > 0.9


def test_softmax_calibration_is_a_power_renormalised():
    p = np.array([0.7, 0.2, 0.1])
    got = calibrate(p, "softmax", 2.0)
    want = np.sqrt(p) / np.sqrt(p).sum()
    np.testing.assert_allclose(got, want)
    assert got.sum() == pytest.approx(1.0) and np.argmax(got) == 0


def test_card_round_trips_temperature_and_cap(tmp_path):
    for name in ("tiny.onnx", "tiny.onnx.json", "registry.json"):
        shutil.copy(TINY / name, tmp_path / name)
    card = load_card(tmp_path / "tiny.onnx.json")
    heads = tuple(
        dataclasses.replace(h, temperature=2.0, max_labels=1 if h.kind == "sigmoid" else None) for h in card.heads
    )
    dataclasses.replace(card, heads=heads).save(tmp_path / "tiny.onnx.json")
    again = load_card(tmp_path / "tiny.onnx.json")
    assert again.head("genre").temperature == 2.0 and again.head("genre").max_labels == 1
    assert again.sha256 == card.sha256


@pytest.mark.parametrize(
    "field,value", [("temperature", 0.0), ("temperature", -1.0), ("max_labels", 0), ("max_labels", 1.5)]
)
def test_card_refuses_bad_decision_parameters(field, value):
    with pytest.raises(ModelLoadError, match=field):
        dataclasses.replace(GENRE, **{field: value})


def test_tagger_calibrates_with_the_card_temperature(tmp_path):
    for name in ("tiny.onnx", "tiny.onnx.json", "registry.json"):
        shutil.copy(TINY / name, tmp_path / name)
    data = json.loads((tmp_path / "tiny.onnx.json").read_text())
    y = music_like(22050, 8.0, seed=3)
    plain = Tagger.load(tmp_path, device="cpu", threads=1).tag_array(y, 22050)
    for h in data["heads"]:
        h["temperature"] = 3.0
    (tmp_path / "tiny.onnx.json").write_text(json.dumps(data))
    hot = Tagger.load(tmp_path, device="cpu", threads=1).tag_array(y, 22050)
    for head in ("genre", "quadrant"):
        kind = "softmax" if head == "quadrant" else "sigmoid"
        want = calibrate(np.array(list(plain.heads[head].values())), kind, 3.0)
        np.testing.assert_allclose(list(hot.heads[head].values()), want, rtol=1e-6)
    assert hot.votes == plain.votes, "window votes are not calibrated"
