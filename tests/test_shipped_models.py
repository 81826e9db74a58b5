"""The models in exported/ are the ones shipped: registry, hashes, golden outputs, and the map pair.

A broken or silently changed export fails here. After shipping a new classifier on
purpose, rewrite the golden outputs with ``python tests/fixtures/make_golden.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from mirtag.runtime import Tagger
from mirtag.runtime.card import exported_dir, load_card, read_registry, sha256_file
from mirtag.runtime.genremap import load_pair
from tests.fixtures.make_golden import CLIP, HERE, window_outputs

EXPORTED = exported_dir()
REGISTRY = read_registry(EXPORTED)


@pytest.mark.parametrize("name", sorted(REGISTRY["models"]))
def test_registry_entries_match_the_files_they_name(name):
    entry = REGISTRY["models"][name]
    onnx = EXPORTED / entry["file"]
    assert onnx.stat().st_size == entry["size_bytes"]
    assert sha256_file(onnx) == entry["sha256"]
    card = load_card(EXPORTED / entry["card"])  # checks the graph's hash against the card
    assert (card.name, card.sha256, card.model_type) == (name, entry["sha256"], entry["model_type"])
    state = card.provenance.get("state_dict")
    if state:  # the torch weights the generator's training reads
        assert sha256_file(EXPORTED / state["file"]) == state["sha256"]


def test_the_registry_has_a_default_classifier_and_generator_it_lists():
    assert set(REGISTRY["default"]) == {"classifier", "generator"}
    for kind, name in REGISTRY["default"].items():
        assert REGISTRY["models"][name]["model_type"] == kind


def test_the_shipped_tagger_reproduces_its_golden_outputs():
    tagger = Tagger.load(device="cpu")
    golden = np.load(HERE / f"{tagger.card.name}.npz")
    assert str(golden["model_sha256"]) == tagger.card.sha256, (
        "exported/ holds another classifier than the golden outputs: if on purpose, run tests/fixtures/make_golden.py"
    )
    outs = window_outputs(tagger, CLIP)
    assert set(outs) == set(golden.files) - {"model_sha256"}
    for name, value in outs.items():
        np.testing.assert_allclose(value, golden[name], rtol=0, atol=2e-5, err_msg=name)


def test_the_generator_and_classifier_pair_loads_and_belongs_together():
    gm = load_pair()
    classifier = Tagger.load(device="cpu").card
    assert gm.generator.generator.classifier_sha256 == classifier.sha256
    assert gm.classifier.sha256 == classifier.sha256
    x = gm.generate(np.random.default_rng(0).uniform(-1, 1, (2, gm.latent_size)).astype(np.float32))
    assert x.shape == (2, *classifier.frontend.input_shape) and np.isfinite(x).all()
