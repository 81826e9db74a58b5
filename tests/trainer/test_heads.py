"""The heads table: one description of each head drives kinds, metrics, selection, confusions and the card."""

from __future__ import annotations

import numpy as np

from mirtag.trainer import heads as H
from mirtag.trainer.data import Clip
from mirtag.trainer.evaluate import head_metrics, selection_score
from mirtag.trainer.train import Split


def test_built_in_heads_have_their_kinds_and_a_manifest_single_label_head_is_softmax():
    kinds = H.head_kinds(
        ["genre", "quadrant", "moods", "music", "emotions", "instrument", "era"],
        H.manifest_head_kinds([{"labels": {"inst": ["instrument", "single"], "era": ["era", "multi"]}}]),
    )
    assert kinds == {
        "genre": "sigmoid",
        "quadrant": "softmax",
        "moods": "sigmoid",
        "music": "sigmoid",
        "emotions": "sigmoid",
        "instrument": "softmax",
        "era": "sigmoid",
    }


def test_a_head_labelled_single_in_one_manifest_and_multi_in_another_is_multi_label():
    specs = [{"labels": {"a": ["mood2", "single"]}}, {"labels": {"b": ["mood2", "multi"]}}]
    assert H.manifest_head_kinds(specs) == {"mood2": "multi"}


def test_selection_averages_the_tables_targets():
    m = {
        "quadrant_accuracy": {"value": 0.5, "low": 0.4, "high": 0.6},
        "genre_macro_roc_auc": 0.9,
        "music_roc_auc": float("nan"),
        "quadrant_macro_f1": 0.0,
    }
    assert H.selection_targets() == [
        "quadrant_accuracy",
        "genre_macro_roc_auc",
        "moods_macro_roc_auc",
        "emotify_genre_accuracy",
        "music_roc_auc",
    ]
    assert selection_score(m) == 0.7


def test_every_card_row_and_confusion_belongs_to_a_view():
    names = {s.name for s in H.HEADS}
    assert all(any(row.key.startswith(f"{n}_") for n in names) for row in H.card_rows())
    assert H.confusion_title("music") == "Music vs not music" and H.confusion_title("mine") == "mine"
    assert H.spec_for("quadrant").descriptions["Q3"] == "sad/depressed"


def test_a_manifest_softmax_head_gets_accuracy_and_a_confusion_matrix():
    rng = np.random.default_rng(0)
    clips = [Clip(f"{i}.wav", "mine") for i in range(12)]
    y = np.arange(12) % 3
    targets = {"instrument": np.eye(3, dtype=np.float32)[y]}
    masks = {"instrument": np.ones((12, 3), np.float32)}
    split = Split(clips, targets, masks, [[] for _ in clips])
    probs = np.eye(3)[np.where(np.arange(12) < 9, y, (y + 1) % 3)] * 0.8 + 0.2 * rng.random((12, 3))
    res = head_metrics(
        split,
        {"instrument": probs},
        {"instrument": probs},
        np.arange(12),
        {"instrument": ["bass", "drums", "piano"]},
        thresholds={},
        kinds={"instrument": "softmax"},
    )
    assert res["instrument_accuracy"] == 0.75
    assert res["instrument_confusion"]["labels"] == ["bass", "drums", "piano"]
    assert selection_score(res, H.views(["instrument"], {"instrument": "softmax"})) == 0.75
