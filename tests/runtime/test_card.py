"""Model cards: schema, validation, hash check, registry resolution."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from mirtag.runtime.card import FrontendConfig, ModelCard, load_card, resolve_model, sha256_file
from mirtag.runtime.errors import ModelLoadError

TINY = Path(__file__).parents[1] / "fixtures" / "tiny"


@pytest.fixture
def tiny(tmp_path):
    """A writable copy of the tiny model folder."""
    dst = tmp_path / "tiny"
    shutil.copytree(TINY, dst)
    return dst


def card_json(folder: Path) -> dict:
    return json.loads((folder / "tiny.onnx.json").read_text())


def write_card(folder: Path, data: dict) -> None:
    (folder / "tiny.onnx.json").write_text(json.dumps(data))


def test_card_round_trips_through_json(tiny):
    card = load_card(tiny / "tiny.onnx")
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card
    assert card.ref == "tiny@0.0.1"
    assert card.head("quadrant").descriptions["Q2"] == "angry/tense"
    assert card.head("genre").threshold("jazz") == 0.4


@pytest.mark.parametrize("target", ["tiny.onnx", "tiny.onnx.json", "."])
def test_card_loads_from_graph_card_or_folder(tiny, target):
    card = load_card(tiny / target)
    assert card.name == "tiny"
    assert card.onnx_path == (tiny / "tiny.onnx").resolve()


def test_hash_mismatch_is_refused(tiny):
    with open(tiny / "tiny.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelLoadError, match="sha256"):
        load_card(tiny / "tiny.onnx")
    assert load_card(tiny / "tiny.onnx", check_hash=False).name == "tiny"


def test_missing_card_names_the_file(tiny):
    (tiny / "tiny.onnx.json").unlink()
    with pytest.raises(ModelLoadError, match=r"tiny\.onnx\.json: model card not found"):
        load_card(tiny / "tiny.onnx")


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d.pop("heads"), "at least one head"),
        (lambda d: d.pop("frontend"), "missing"),
        (lambda d: d["heads"][0].update(name="Bad-Name"), "must match"),
        (lambda d: d["heads"][0].update(kind="relu"), "kind"),
        (lambda d: d["heads"][0].update(labels=["a", "a", "b"]), "unique"),
        (lambda d: d["heads"][0].update(thresholds={"nope": 0.5}), "unknown labels"),
        (lambda d: d["frontend"].update(n_mels=64), "does not match the frontend"),
        (lambda d: d["frontend"].update(compression="sqrt"), "compression"),
        (lambda d: d["frontend"].update(hpss_kernel=[31, 30]), "odd"),
        (lambda d: d["outputs"].pop(0), "no output tensor"),
        (lambda d: d["outputs"][1].update(shape=["batch", 5]), "shape"),
    ],
)
def test_invalid_cards_are_refused_with_a_reason(tiny, edit, message):
    data = card_json(tiny)
    edit(data)
    write_card(tiny, data)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_card(tiny / "tiny.onnx")
    assert "\n" not in str(info.value)


def test_unknown_keys_warn_but_load(tiny, caplog):
    data = card_json(tiny)
    data["from_the_future"] = 1
    data["frontend"]["new_knob"] = 2
    write_card(tiny, data)
    with caplog.at_level(logging.WARNING):
        card = load_card(tiny / "tiny.onnx")
    assert card.name == "tiny"
    assert "from_the_future" in caplog.text and "new_knob" in caplog.text


def test_registry_resolves_the_default(tiny):
    assert resolve_model(tiny).name == "tiny"
    reg = json.loads((tiny / "registry.json").read_text())
    reg["default"] = {}
    (tiny / "registry.json").write_text(json.dumps(reg))
    with pytest.raises(ModelLoadError, match="no default classifier"):
        resolve_model(tiny)


def test_save_writes_what_load_reads(tiny, tmp_path):
    card = load_card(tiny)
    moved = tmp_path / "copy"
    moved.mkdir()
    shutil.copy(tiny / "tiny.onnx", moved / "tiny.onnx")
    card.save(moved / "tiny.onnx.json")
    assert load_card(moved / "tiny.onnx") == card
    assert sha256_file(moved / "tiny.onnx") == card.sha256


def test_frontend_defaults_are_84_mels_and_128_frame_windows():
    c = FrontendConfig()
    assert (c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.hpss_kernel, c.hpss_power) == (
        22050,
        2048,
        512,
        84,
        (31, 31),
        2.0,
    )
    assert (c.window_frames, c.window_hop, c.compression, c.mel_power) == (128, 64, "none", 1.0)
    assert round(c.window_seconds, 2) == 2.97


def test_install_model_copies_the_model_and_registers_it_atomically(tmp_path):
    from mirtag.runtime.card import install_model, read_registry

    models = tmp_path / "models"
    card = install_model(TINY / "tiny.onnx", models)
    reg = read_registry(models)
    assert reg["default"] == {"classifier": "tiny"}
    assert reg["models"]["tiny"] == {
        "file": "tiny.onnx",
        "card": "tiny.onnx.json",
        "sha256": card.sha256,
        "size_bytes": (TINY / "tiny.onnx").stat().st_size,
        "model_type": "classifier",
    }
    assert load_card(models).sha256 == sha256_file(TINY / "tiny.onnx")
    assert sorted(p.name for p in models.iterdir()) == ["registry.json", "tiny.onnx", "tiny.onnx.json"]


def test_install_model_keeps_the_registry_when_the_copy_does_not_match_its_card(tiny, tmp_path):
    from mirtag.runtime.card import install_model, read_registry

    models = tmp_path / "models"
    install_model(TINY, models)
    before = (models / "registry.json").read_text()
    data = card_json(tiny)
    data["name"] = "other"
    write_card(tiny, data)
    with (tiny / "tiny.onnx").open("ab") as fh:
        fh.write(b"\0")  # the graph no longer matches the sha256 its card states
    with pytest.raises(ModelLoadError, match="sha256"):
        install_model(tiny / "tiny.onnx.json", models)
    assert (models / "registry.json").read_text() == before
    assert "other" not in read_registry(models)["models"]


def test_asking_a_card_for_a_head_it_lacks_is_a_mirtag_error():
    from mirtag.runtime.errors import MirtagError

    with pytest.raises(MirtagError, match="has no head 'mood'"):
        load_card(TINY).head("mood")
