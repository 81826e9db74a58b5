"""Shared test fixtures and the MIRTAG_REQUIRE_TRAIN policy.

With ``MIRTAG_REQUIRE_TRAIN=1`` (as CI sets it), a test marked ``train`` that
skips (for instance because torch is missing) is reported as a failure: trainer
tests cannot pass by not running.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.synth import music_like  # noqa: F401 - re-exported: tests import it from here


def _require_train() -> bool:
    return os.environ.get("MIRTAG_REQUIRE_TRAIN", "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _require_train() and item.get_closest_marker("train") is not None:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"MIRTAG_REQUIRE_TRAIN=1 but this trainer test skipped: {reason}"


@pytest.fixture
def rng():
    """A seeded generator, so every test is deterministic."""
    return np.random.default_rng(440)
