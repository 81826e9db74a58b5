"""Calibration and precision-tuned thresholds fitted on (synthetic) validation data."""

from __future__ import annotations

import numpy as np
import pytest

from mirtag.runtime.card import Head
from mirtag.runtime.decisions import calibrate
from mirtag.trainer import calibrate as C


def _calibrated_sample(n=4000, labels=3, seed=0):
    """Targets drawn from the true probabilities: those probabilities are calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, size=(n, labels))
    y = (rng.uniform(size=p.shape) < p).astype(np.float32)
    return y, p


def test_fit_temperature_undoes_a_known_distortion():
    y, p = _calibrated_sample()
    overconfident = calibrate(p, "sigmoid", 0.5)  # logits doubled
    t = C.fit_temperature(y, overconfident, None, "sigmoid")
    assert t == pytest.approx(2.0, rel=0.1)
    assert C.fit_temperature(y, p, None, "sigmoid") == pytest.approx(1.0, rel=0.1)


def test_fit_temperature_softmax_and_unsupervised_head():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3000, 4)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    idx = np.array([rng.choice(4, p=row) for row in p])
    y = np.eye(4)[idx]
    assert C.fit_temperature(y, calibrate(p, "softmax", 0.5), None, "softmax") == pytest.approx(2.0, rel=0.12)
    assert C.fit_temperature(y, p, np.zeros_like(y, bool), "softmax") == 1.0


def test_calibration_lowers_the_ece():
    y, p = _calibrated_sample()
    distorted = calibrate(p, "sigmoid", 0.4)
    before = C.reliability_table(y, distorted, None)
    after = C.reliability_table(
        y, calibrate(distorted, "sigmoid", C.fit_temperature(y, distorted, None, "sigmoid")), None
    )
    assert after["ece"] < before["ece"] / 3
    assert after["ece"] < 0.03
    assert sum(r["n"] for r in after["rows"]) == y.size == after["n"]


def test_f_half_threshold_is_higher_than_the_f1_one():
    y, p = _calibrated_sample(seed=2)
    t_half = C.tune_head_threshold(y, p, None, beta=0.5)
    t_one = C.tune_head_threshold(y, p, None, beta=1.0)
    assert t_half > t_one


def test_precision_floor():
    y, p = _calibrated_sample(seed=3)
    t = C.tune_head_threshold(y, p, None, beta=1.0, min_precision=0.9)
    pred = p >= t
    assert (y[pred] == 1).mean() >= 0.9
    assert C.tune_head_threshold(np.zeros((5, 2)), np.ones((5, 2)), None) == 0.5, "no positives: the default"


def test_masked_pairs_do_not_count():
    y = np.array([[1, 0], [0, 0], [1, 1]], np.float32)
    p = np.array([[0.9, 0.95], [0.2, 0.9], [0.8, 0.7]])
    mask = np.array([[1, 0], [1, 0], [1, 1]], bool)
    # unmasked, label 1's confident false positives would push the threshold above 0.9
    assert C.tune_head_threshold(y, p, mask, beta=1.0) <= 0.7


def test_soft_targets_count_from_a_share():
    y = np.array([[0.5, 0.1], [0.2, 0.35]])
    np.testing.assert_array_equal(C.binary_targets(y), [[True, False], [False, True]])


def test_decision_stats_use_the_runtime_rules():
    head = Head("genre", "sigmoid", ("a", "b", "c"), thresholds={"a": 0.5, "b": 0.5, "c": 0.5}, max_labels=1)
    y = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]], np.float32)
    p = np.array([[0.9, 0.8, 0.1], [0.6, 0.1, 0.2], [0.1, 0.1, 0.1]])
    s = C.decision_stats(y, p, None, head, head.labels)
    # track 0: a (tp; b dropped by the cap -> fn); track 1: a (fp), c missed (fn); track 2: nothing
    assert (s["precision"], s["recall"]) == (0.5, pytest.approx(1 / 3, abs=1e-4))
    assert s["mean_labels"] == pytest.approx(2 / 3, abs=1e-3) and s["empty_share"] == pytest.approx(1 / 3, abs=1e-4)
    gated = C.decision_stats(y, p, None, head, head.labels, music=np.array([True, False, True]))
    assert gated["precision"] == 1.0


def test_fit_decisions_sets_one_threshold_per_sigmoid_head_and_caps():
    y, p = _calibrated_sample(n=600, labels=3, seed=4)
    heads = {"genre": Head("genre", "sigmoid", ("a", "b", "c")), "quadrant": Head("quadrant", "softmax", ("x", "y"))}
    q = np.tile([[0.7, 0.3]], (600, 1))
    qy = np.eye(2)[(np.random.default_rng(5).uniform(size=600) > 0.7).astype(int)]
    out = C.fit_decisions(
        heads,
        {"genre": y, "quadrant": qy},
        {"genre": p, "quadrant": q},
        {"genre": np.ones_like(y, bool), "quadrant": np.ones_like(qy, bool)},
    )
    g = out["genre"]
    assert len(set(g.thresholds.values())) == 1 and g.max_labels == 2 and g.temperature > 0
    assert out["quadrant"].max_labels is None and out["quadrant"].thresholds is None
