"""Tests for mirtag.trainer.metrics against hand-computed small cases (no torch, no sklearn)."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from mirtag.trainer import metrics as M


def _pairwise_auc(y, s):
    """Brute-force AUC: P(score_pos > score_neg) + 0.5 P(tie), the definition itself."""
    y = np.asarray(y, dtype=bool)
    pos, neg = s[y][:, None], s[~y][None, :]
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


# --------------------------------------------------------------------------- #
# classification
# --------------------------------------------------------------------------- #


def test_accuracy_and_confusion_matrix():
    y_true = np.array([0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 2, 0, 2])
    assert M.accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    cm = M.confusion_matrix(y_true, y_pred, 4)
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm, expected)
    assert cm.dtype == np.int64
    with pytest.raises(ValueError):
        M.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    assert np.isnan(M.accuracy(np.array([], int), np.array([], int)))


def test_precision_recall_f1_by_hand():
    cm = np.array([[4, 0, 0], [2, 2, 0], [1, 1, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # class 2 is never predicted: no warning allowed
        r = M.precision_recall_f1(cm)
    np.testing.assert_allclose(r["precision"], [4 / 7, 2 / 3, 0.0])
    np.testing.assert_allclose(r["recall"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(r["f1"], [8 / 11, 4 / 7, 0.0])
    np.testing.assert_array_equal(r["support"], [4, 4, 2])
    assert r["macro_f1"] == pytest.approx((8 / 11 + 4 / 7) / 3)
    assert r["weighted_precision"] == pytest.approx((4 * 4 / 7 + 4 * 2 / 3) / 10)
    assert r["weighted_recall"] == pytest.approx((4 * 1.0 + 4 * 0.5) / 10)
    assert r["weighted_f1"] == pytest.approx((4 * 8 / 11 + 4 * 4 / 7) / 10)


def test_precision_recall_f1_empty_matrix_is_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = M.precision_recall_f1(np.zeros((2, 2), dtype=np.int64))
    assert r["macro_f1"] == 0.0 and r["weighted_f1"] == 0.0


# --------------------------------------------------------------------------- #
# ranking metrics
# --------------------------------------------------------------------------- #


def test_roc_auc_hand_cases():
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert M.roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    # one tied positive/negative pair counts one half: (0.5 + 1 + 1 + 1) / 4
    assert M.roc_auc([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9]) == pytest.approx(0.875)
    assert np.isnan(M.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(M.roc_auc([0, 0], [0.1, 0.2]))


def test_roc_auc_matches_pairwise_definition_with_ties(rng):
    y = rng.integers(0, 2, size=200)
    s = np.round(rng.random(200), 1)  # coarse rounding: many ties
    assert M.roc_auc(y, s) == pytest.approx(_pairwise_auc(y, s))


def test_average_precision_hand_cases():
    assert M.average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(5 / 6)
    # tie at 0.5 (one pos, one neg) enters as one threshold: 0.5 * 0.5 + 0.5 * 2/3
    assert M.average_precision([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.25 + 1 / 3)
    assert M.average_precision([0, 1, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.25 + 1 / 3)
    assert M.average_precision([1, 1], [0.1, 0.9]) == pytest.approx(1.0)
    assert np.isnan(M.average_precision([0, 0, 0], [0.1, 0.2, 0.3]))


def test_average_precision_independent_of_order(rng):
    y = rng.integers(0, 2, size=100)
    s = np.round(rng.random(100), 1)
    perm = rng.permutation(100)
    assert M.average_precision(y, s) == pytest.approx(M.average_precision(y[perm], s[perm]))


# --------------------------------------------------------------------------- #
# macro AUC
# --------------------------------------------------------------------------- #


def _separable(rng, n=40):
    y = (np.arange(n) % 2).astype(np.int64)
    s = np.where(y == 1, 0.6 + 0.4 * rng.random(n), 0.4 * rng.random(n))
    return y, s


def test_macro_auc_honours_mask(rng):
    y, s = _separable(rng)
    Y = np.stack([y, y], axis=1)
    S = np.stack([s, s], axis=1)
    # Label 1: flip the scores on the second half of the rows and mask them out.
    S[20:, 1] = 1.0 - S[20:, 1]
    mask = np.ones_like(Y, dtype=bool)
    mask[20:, 1] = False
    value, per = M.macro_auc(Y, S, mask=mask, min_positives=5)
    np.testing.assert_allclose(per, [1.0, 1.0])
    assert value == pytest.approx(1.0)
    unmasked, per_unmasked = M.macro_auc(Y, S, mask=None, min_positives=5)
    assert per_unmasked[1] < 0.9 and unmasked < 1.0


def test_macro_auc_min_positives_and_single_class_skipped(rng):
    y, s = _separable(rng)
    few = np.zeros_like(y)
    few[:2] = 1  # only 2 positives
    allpos = np.ones_like(y)
    Y = np.stack([y, few, allpos], axis=1)
    S = np.stack([s, s, s], axis=1)
    value, per = M.macro_auc(Y, S, min_positives=5)
    assert per[0] == pytest.approx(1.0)
    assert np.isnan(per[1]) and np.isnan(per[2])
    assert value == pytest.approx(1.0)
    # With min_positives=2 the sparse label counts; the all-positive one still cannot.
    _, per2 = M.macro_auc(Y, S, min_positives=2)
    assert not np.isnan(per2[1]) and np.isnan(per2[2])
    # Nothing qualifies: nan, not an error or a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, _ = M.macro_auc(Y[:, 1:], S[:, 1:], min_positives=5)
    assert np.isnan(v)


def test_macro_auc_pr_kind():
    Y = np.array([[0], [0], [1], [1]])
    S = np.array([[0.1], [0.4], [0.35], [0.8]])
    v, per = M.macro_auc(Y, S, min_positives=1, kind="pr")
    assert v == pytest.approx(5 / 6) and per[0] == pytest.approx(5 / 6)
    with pytest.raises(ValueError):
        M.macro_auc(Y, S, kind="bogus")


# --------------------------------------------------------------------------- #
# bootstrap
# --------------------------------------------------------------------------- #


def test_bootstrap_ci_contains_point_and_is_deterministic(rng):
    y = rng.integers(0, 2, size=60)
    s = 0.5 * y + rng.random(60)
    point, low, high = M.bootstrap_ci(M.roc_auc, y, s, n_boot=300, seed=3)
    assert point == pytest.approx(M.roc_auc(y, s))
    assert low <= point <= high and low < high
    assert M.bootstrap_ci(M.roc_auc, y, s, n_boot=300, seed=3) == (point, low, high)
    assert M.bootstrap_ci(M.roc_auc, y, s, n_boot=300, seed=4) != (point, low, high)


def test_bootstrap_ci_skips_nan_resamples_and_accepts_tuple_metrics():
    # 1 positive in 8 rows: about a third of resamples have no positive (nan AUC).
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    point, low, high = M.bootstrap_ci(M.roc_auc, y, s, n_boot=200, seed=0)
    assert point == 1.0 and np.isfinite(low) and np.isfinite(high)
    Y, S = y[:, None], s[:, None]
    p2, lo2, hi2 = M.bootstrap_ci(lambda a, b: M.macro_auc(a, b, min_positives=1), Y, S, n_boot=200, seed=0)
    assert (p2, lo2, hi2) == (point, low, high)


# --------------------------------------------------------------------------- #
# track aggregation
# --------------------------------------------------------------------------- #


def test_track_level_mean():
    p = np.array([[0.2, 0.8], [0.4, 0.6], [1.0, 0.0]])
    out = M.track_level(p, np.array([0, 0, 2]), 3)
    np.testing.assert_allclose(out[0], [0.3, 0.7])
    assert np.isnan(out[1]).all()
    np.testing.assert_allclose(out[2], [1.0, 0.0])


def test_track_votes_majority_and_tie_break():
    p = np.array(
        [
            # track 0: classes 0, 0, 1 -> majority 0 although class 1 has the higher mean
            [0.51, 0.49, 0.0],
            [0.51, 0.49, 0.0],
            [0.0, 1.0, 0.0],
            # track 1: one vote each for 0 and 1; mean prob 0.35 vs 0.65 -> 1
            [0.6, 0.4, 0.0],
            [0.1, 0.9, 0.0],
            # track 2: one vote each for 0 and 1; mean prob 0.675 vs 0.325 -> 0
            [0.9, 0.1, 0.0],
            [0.45, 0.55, 0.0],
        ]
    )
    idx = np.array([0, 0, 0, 1, 1, 2, 2])
    votes = M.track_votes(p, idx, 4)
    np.testing.assert_array_equal(votes, [0, 1, 0, -1])  # track 3 has no windows
    perm = np.array([6, 2, 4, 0, 5, 1, 3])
    np.testing.assert_array_equal(M.track_votes(p[perm], idx[perm], 4), votes)


# --------------------------------------------------------------------------- #
# thresholds
# --------------------------------------------------------------------------- #


def test_tune_thresholds_separable(rng):
    n = 50
    y = (np.arange(n) % 2).astype(np.int64)
    wide = np.where(y == 1, 0.72 + 0.28 * rng.random(n), 0.3 * rng.random(n))
    wide[0], wide[1] = 0.28, 0.72  # pin the gap: grid points 0.30..0.70 separate
    narrow = np.where(y == 1, 0.15 + 0.04 * rng.random(n), 0.1 + 0.04 * rng.random(n))
    Y = np.stack([y, y, np.zeros(n, np.int64)], axis=1)
    S = np.stack([wide, narrow, rng.random(n)], axis=1)
    t = M.tune_thresholds(Y, S)
    # wide gap: 0.30..0.70 all give F1 = 1; the middle of the tied range is taken
    assert wide[y == 0].max() < t[0] <= wide[y == 1].min()
    assert t[0] == pytest.approx(0.5)
    # narrow gap: only 0.15 separates
    assert t[1] == pytest.approx(0.15)
    assert t[2] == 0.5  # no positives


def test_tune_thresholds_honours_mask_and_min_positives():
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.05, 0.95])  # last two rows contradict
    mask = np.array([1, 1, 1, 1, 0, 0], dtype=bool)[:, None]
    grid = np.array([0.3, 0.5, 0.7, 0.9])
    t = M.tune_thresholds(y[:, None], s[:, None], mask=mask, grid=grid)
    assert 0.2 < t[0] <= 0.8
    assert M.tune_thresholds(y[:, None], s[:, None], mask=mask, grid=grid, min_positives=3)[0] == 0.5


# --------------------------------------------------------------------------- #
# outputs
# --------------------------------------------------------------------------- #


def test_confusion_png_and_csv(tmp_path):
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    labels = ["rock", "jazz", "hip|hop"]
    png = M.confusion_png(cm, labels, tmp_path / "sub" / "cm.png", "genre")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    path = M.confusion_csv(cm, labels, tmp_path / "cm.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == labels
    assert [r[0] for r in rows[1:]] == labels
    np.testing.assert_array_equal(np.array([[int(v) for v in r[1:]] for r in rows[1:]]), cm)


def test_write_report(tmp_path):
    report = {
        "model": "tiny",
        "genre": {
            "accuracy": {"value": 0.8123, "low": 0.7901, "high": 0.8334},
            "macro_f1": np.float32(0.5),
            "n_tracks": np.int64(120),
            "per_label_f1": {"rock": 0.9, "jazz": float("nan")},
        },
        "robustness": [
            {"perturbation": "mp3_64k", "accuracy": 0.75, "delta": -0.06},
            {"perturbation": "noise_20db", "accuracy": 0.7, "delta": -0.11},
        ],
        "domain_shift": {"auc": float("nan"), "per_label": np.array([0.5, np.nan])},
    }
    json_path, md_path = M.write_report(report, tmp_path / "out")
    assert json_path.name == "report.json" and md_path.name == "report.md"
    text = json_path.read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["genre"]["per_label_f1"]["jazz"] is None
    assert data["domain_shift"]["auc"] is None
    assert data["domain_shift"]["per_label"] == [0.5, None]
    assert data["genre"]["n_tracks"] == 120
    md = md_path.read_text()
    assert "0.812 [0.790, 0.833]" in md
    assert "## genre" in md and "## robustness" in md and "## domain_shift" in md
    assert "| rock | 0.900 |" in md
    assert "| perturbation | accuracy | delta |" in md
    assert "| noise_20db | 0.700 | -0.110 |" in md


def test_multilabel_prf_counts_only_supervised_decisions():
    Y = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 0]])
    B = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=bool)
    mask = np.ones_like(Y, dtype=bool)
    mask[3, 2] = False  # not labelled: its (wrong or right) decision does not count
    r = M.multilabel_prf(Y, B, mask, min_positives=1)
    assert r["tp"].tolist() == [2, 1, 0] and r["fp"].tolist() == [0, 1, 1] and r["fn"].tolist() == [1, 1, 1]
    assert r["tn"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(r["precision"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(r["recall"], [2 / 3, 0.5, 0.0])
    f1 = np.array([0.8, 0.5, 0.0])
    np.testing.assert_allclose(r["f1"], f1)
    assert r["macro_f1"] == pytest.approx(f1.mean())
    assert r["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 0.0) / 6)
    assert r["label_accuracy"] == pytest.approx((3 + 2 + 1) / 11)


def test_multilabel_prf_leaves_rare_labels_out_of_the_averages():
    Y = np.array([[1, 1], [1, 0], [0, 0]])
    B = np.array([[1, 0], [1, 0], [0, 0]], dtype=bool)
    r = M.multilabel_prf(Y, B, min_positives=2)
    assert r["evaluated"].tolist() == [True, False]
    assert r["macro_f1"] == 1.0 and r["weighted_recall"] == 1.0
    assert np.isnan(M.multilabel_prf(Y, B, min_positives=5)["macro_f1"])


def test_top1_accuracy_ignores_unsupervised_labels_and_rows_without_positives():
    Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    S = np.array([[0.2, 0.9, 0.1], [0.1, 0.8, 0.95], [0.9, 0.1, 0.1]])
    mask = np.array([[1, 0, 1], [1, 1, 1], [1, 1, 1]], dtype=bool)
    # Row 0: label 1 (0.9) is not supervised, so label 0 wins: a hit. Row 1: label 2 wins: a miss. Row 2: no positive.
    assert M.top1_accuracy(Y, S, mask) == 0.5
    assert M.top1_accuracy(Y, S) == 0.0
