"""A tiny end-to-end run: synthetic clips -> features -> train one epoch -> export -> tag (needs torch)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import music_like

pytestmark = [pytest.mark.train, pytest.mark.slow]
torch = pytest.importorskip("torch", reason="the trainer tests need the train extra (torch)")
pytest.importorskip("onnx", reason="the trainer tests need the train extra (onnx)")

SR = 22050
QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
EMOTIONS = (
    "amazement",
    "solemnity",
    "tenderness",
    "nostalgia",
    "calmness",
    "power",
    "joyful_activation",
    "tension",
    "sadness",
)


def _csv(path: Path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _audio(path: Path, y):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, SR, format="OGG", subtype="VORBIS")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """4Q-, Emotify- and ESC-50-like data with real (synthetic) audio, in the real layouts."""
    root = tmp_path_factory.mktemp("data")
    rows = []
    for i in range(24):
        q = QUADRANTS[i % 4]
        f = f"4q/audio/{q}/MT{i:06d}.ogg"
        _audio(root / f, music_like(SR, 3.5, seed=i))
        rows.append(
            [
                f,
                f"MT{i:06d}",
                q,
                f"Artist {i}",
                f"Song {i}",
                "Pop/Rock;Jazz" if i % 3 else "Jazz",
                "calm;happy" if i % 2 else "tense",
            ]
        )
    _csv(root / "4q" / "4q.csv", ["file", "song_id", "quadrant", "artist", "title", "allmusic_genres", "moods"], rows)
    emo = []
    for i in range(8):
        g = ("classical", "electronic", "pop", "rock")[i % 4]
        f = f"emotify/audio/{g}/{i}.ogg"
        _audio(root / f, music_like(SR, 3.5, seed=100 + i))
        emo.append([f, i, g, 10, *[round(((i + k) % 10) / 10, 2) for k in range(9)]])
    _csv(
        root / "emotify" / "emotify.csv",
        ["file", "track_id", "genre", "n_annotators", *(f"frac_{e}" for e in EMOTIONS)],
        emo,
    )
    esc = []
    rng = np.random.default_rng(0)
    for c in range(10):
        for k in range(2):
            f = f"esc50/audio/{k}-{c}-A-{c}.ogg"
            _audio(root / f, (0.2 * rng.standard_normal(SR * 2)).astype(np.float32))
            esc.append([f, f"cat{c}", c, k + 1, "False"])
    _csv(root / "esc50" / "esc50.csv", ["file", "category", "target", "fold", "esc10"], esc)
    return root


def _config(tmp_path, **kw):
    from mirtag.trainer.train import TrainConfig

    base = dict(
        name="tiny-trained",
        version="0.1.0",
        out_dir=str(tmp_path / "run"),
        cache_dir=str(tmp_path / "cache"),
        workers=1,
        noise_variants=1,
        min_genre=1,
        min_mood=1,
        channels=(4, 8),
        epochs=1,
        batch_size=16,
        threads=1,
        patience=5,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_train_export_and_tag_end_to_end(data_root, tmp_path):
    from mirtag.runtime import Tagger
    from mirtag.runtime.card import load_card
    from mirtag.trainer.train import train_classifier

    run = train_classifier(_config(tmp_path), data_root)
    export = run / "export"
    assert sorted(p.name for p in export.iterdir()) == [
        "tiny-trained.onnx",
        "tiny-trained.onnx.json",
        "tiny-trained.pt",
    ]
    assert not list(run.rglob("*.onnx.data")), "weights must stay inside the .onnx"
    card = load_card(export / "tiny-trained.onnx")
    assert [h.name for h in card.heads] == ["genre", "quadrant", "moods", "music", "emotions"]
    assert card.head("quadrant").kind == "softmax" and card.head("quadrant").descriptions["Q3"] == "sad/depressed"
    assert set(card.head("genre").thresholds) == set(card.head("genre").labels)
    # decisions fitted on validation: a temperature per head, one threshold per sigmoid head, caps
    assert all(h.temperature and h.temperature > 0 for h in card.heads)
    assert len(set(card.head("moods").thresholds.values())) == 1
    assert (card.head("genre").max_labels, card.head("moods").max_labels, card.head("quadrant").max_labels) == (
        2,
        3,
        None,
    )
    decisions = json.loads((run / "decisions.json").read_text())
    assert decisions["genre"]["temperature"] == card.head("genre").temperature
    assert card.provenance["export"]["parity_max_abs_diff"] <= 1e-3
    assert card.provenance["state_dict"]["sha256"]
    report = json.loads((run / "report.json").read_text())
    assert "quadrant_accuracy" in report["test"] and "value" in report["test"]["quadrant_accuracy"]
    assert (run / "report.md").read_text().startswith("#")

    tagger = Tagger.load(export / "tiny-trained.onnx", device="cpu")
    result = tagger.tag_file(data_root / "4q/audio/Q1/MT000000.ogg")
    assert set(result.heads) == {"genre", "quadrant", "moods", "music", "emotions"}
    assert abs(sum(result.heads["quadrant"].values()) - 1.0) < 1e-4
    assert result.embedding is not None and result.embedding.shape == (16,)


def test_resume_continues_from_the_last_checkpoint(data_root, tmp_path):
    from mirtag.trainer.train import train_classifier

    run = train_classifier(_config(tmp_path, epochs=1), data_root)
    first = json.loads((run / "history.json").read_text())
    run = train_classifier(_config(tmp_path, epochs=2), data_root, resume=True)
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[0] == first[0], "epoch 0 was not redone"


def test_ema_weights_are_what_is_validated_checkpointed_and_resumed(data_root, tmp_path):
    import torch

    from mirtag.trainer.train import train_classifier

    run = train_classifier(_config(tmp_path, epochs=1, ema_decay=0.9), data_root)
    last = torch.load(run / "last.pt", weights_only=True)
    best = torch.load(run / "best.pt", weights_only=True)
    key = "blocks.0.conv.weight"
    assert torch.equal(best["model"][key], last["ema"]["module"][key])
    assert not torch.equal(best["model"][key], last["model"][key]), "best.pt must hold the averaged weights"
    run = train_classifier(_config(tmp_path, epochs=2, ema_decay=0.9), data_root, resume=True)
    resumed = torch.load(run / "last.pt", weights_only=True)
    assert resumed["ema"]["updates"] > last["ema"]["updates"] > 0


def test_plain_mel_ablation_trains_one_channel_and_evaluates_without_export(data_root, tmp_path):
    import torch

    from mirtag.trainer.evaluate import evaluate_run
    from mirtag.trainer.train import train_classifier

    run = train_classifier(_config(tmp_path, input="mel", export=False), data_root)
    assert not (run / "export").exists()
    assert torch.load(run / "best.pt", weights_only=True)["model"]["blocks.0.conv.weight"].shape[1] == 1
    report = evaluate_run(run, data_root)
    assert "quadrant_accuracy" in report["test"] and "domain_shift" not in report
    assert len(report["robustness"]) == 5


def test_export_cli_installs_into_a_model_folder(data_root, tmp_path):
    from typer.testing import CliRunner

    from mirtag.cli.main import app
    from mirtag.runtime import Tagger
    from mirtag.trainer.train import train_classifier

    run = train_classifier(_config(tmp_path), data_root)
    models = tmp_path / "models"
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(models)])
    assert result.exit_code == 0, result.output
    registry = json.loads((models / "registry.json").read_text())
    assert registry["default"]["classifier"] == "tiny-trained"
    assert Tagger.load(models, device="cpu").card.name == "tiny-trained"


@pytest.mark.parametrize("missing", ["torch", "onnxscript"])
def test_missing_train_packages_give_the_install_command(monkeypatch, missing):
    import sys

    from mirtag.runtime.errors import MissingDependencyError
    from mirtag.trainer import require_torch

    # onnx(script) is checked before training starts: the export at the end of a run needs it.
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(MissingDependencyError, match=rf"\({missing} missing\): run  pip install torch==2\.13\.0"):
        require_torch()


def test_training_runs_under_mixed_precision(data_root, tmp_path, monkeypatch, caplog):
    """The autocast + loss-scaling path of a CUDA run, forced on the CPU (bfloat16)."""
    from mirtag.trainer import device
    from mirtag.trainer.train import train_classifier

    class CpuMixedPrecision(device.MixedPrecision):
        def __init__(self, dev, enabled=True):
            super().__init__(dev, enabled, allow_cpu=True)

    monkeypatch.setattr(device, "MixedPrecision", CpuMixedPrecision)
    with caplog.at_level("INFO", logger="mirtag.trainer.train"):
        run = train_classifier(_config(tmp_path, epochs=2, export=False), data_root)
    assert "training on cpu (mixed precision bfloat16)" in caplog.text
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert np.isfinite(history[-1]["score"])


def test_evaluate_writes_robustness_and_domain_shift(data_root, tmp_path):
    from mirtag.trainer.evaluate import SNRS, evaluate_run
    from mirtag.trainer.train import train_classifier

    run = train_classifier(_config(tmp_path), data_root)
    report = evaluate_run(run, data_root, domain_limit=2)
    assert [row["snr_db"] for row in report["robustness"]] == ["clean", *SNRS]
    assert "quadrant_accuracy_drop_points" in report["robustness"][1]
    shift = report["domain_shift"]
    assert shift["clips"] == 2 and 0.0 <= shift["mp3_top1_agreement"]["quadrant"] <= 1.0
    assert (run / "confusion_quadrant.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "robustness" in (run / "report.md").read_text()
    # Every head's decisions, at the thresholds tuned on validation.
    test = report["test"]
    for key in (
        "quadrant_weighted_precision",
        "quadrant_weighted_recall",
        "quadrant_macro_roc_auc",
        "genre_top1_accuracy",
        "genre_macro_f1",
        "genre_weighted_f1",
        "moods_label_accuracy",
        "music_accuracy",
        "music_weighted_f1",
    ):
        assert key in test, key
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert [r["threshold"] for r in test["genre_per_label"]] == [round(t, 3) for t in thresholds["genre"]]
    assert test["music_confusion_files"] == "confusion_music.csv, confusion_music.png"
    rows = (run / "confusion_music.csv").read_text().splitlines()
    assert rows[0] == "true\\predicted,not music,music"
    assert sum(int(v) for r in rows[1:] for v in r.split(",")[1:]) == report["test_clips"]
    kinds = test["music_score_of_non_music"]
    assert kinds and all(0.0 <= k["mean_music_score"] <= 1.0 and k["category"].startswith("cat") for k in kinds)


def test_generator_trains_exports_and_matches_onnx(data_root, tmp_path):
    import onnxruntime as ort

    from mirtag.cli.main import app
    from mirtag.runtime.card import load_card
    from mirtag.trainer.gan import GanConfig, train_generator
    from mirtag.trainer.train import train_classifier
    from typer.testing import CliRunner

    run = train_classifier(_config(tmp_path), data_root)
    models = tmp_path / "models"
    assert CliRunner().invoke(app, ["export", str(run), "--out", str(models)]).exit_code == 0
    real = np.random.default_rng(0).random((64, 2, 84, 128)).astype(np.float16)
    cfg = GanConfig(
        out_dir=str(tmp_path / "gan"),
        classifier=str(models),
        gen_channels=(8, 8, 4, 4),
        critic_channels=(4, 4, 8, 8),
        batch_size=4,
        steps=4,
        eval_every=2,
        eval_samples=16,
        threads=1,
        dist_weight=1.0,
        diversity_weight=1.0,
        map_grid=3,
    )
    gan = train_generator(cfg, data_root, real=real)
    history = json.loads((gan / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    assert {"wasserstein", "mi_loss", "tv", "generated", "maps_3_genres"} <= set(history[0])
    assert 0.0 <= history[0]["diversity"] <= 1.0 and len(history[0]["genres_per_map"]) == 10
    card = load_card(gan / "export" / "mirtag-genremap.onnx")
    assert card.model_type == "generator" and card.generator.code_dims == 10
    assert card.generator.classifier_sha256 == load_card(models).sha256
    assert not list(gan.rglob("*.onnx.data"))
    sess = ort.InferenceSession(str(card.onnx_path), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(1).uniform(-1, 1, (3, 128)).astype(np.float32)
    (x,) = sess.run(["features"], {"z": z})
    assert x.shape == (3, 2, 84, 128)
    np.testing.assert_allclose(x.max(axis=(2, 3)), 1.0, atol=1e-4)
    # resume continues from the last checkpoint
    cfg.steps = 6
    train_generator(cfg, data_root, real=real, resume=True)
    assert [h["step"] for h in json.loads((gan / "history.json").read_text())] == [2, 4, 6]


def test_code_plane_diversity_rewards_genres_that_follow_the_code():
    import torch

    from mirtag.trainer.gan import code_plane_diversity

    class Stub(torch.nn.Module):
        """embed = identity; genre logits = a fixed linear map of z (latent 6, code = last 2 dims)."""

        def __init__(self, weight):
            super().__init__()
            self.heads = torch.nn.ModuleDict({"genre": torch.nn.Linear(6, 3, bias=False)})
            self.heads["genre"].weight.data = torch.as_tensor(weight, dtype=torch.float32)

        def embed(self, x):
            return x

    torch.manual_seed(0)
    z = torch.rand(64, 6) * 2 - 1
    reads_noise = Stub([[50, 0, 0, 0, 0, 0], [-50, 0, 0, 0, 0, 0], [0, 50, 0, 0, 0, 0]])
    reads_code = Stub([[0, 0, 0, 0, 50, 0], [0, 0, 0, 0, -50, 0], [0, 0, 0, 0, 0, 50]])
    flat, x = code_plane_diversity(lambda v: v, reads_noise, "genre", z, code_dims=2, points=4)
    varied, _ = code_plane_diversity(lambda v: v, reads_code, "genre", z, code_dims=2, points=4)
    assert x.shape == (64, 6)
    assert float(flat.detach()) < 1e-6 < 0.4 < float(varied.detach()) <= 1.0


def test_train_command_refuses_an_unknown_device_before_any_work(data_root, tmp_path):
    from typer.testing import CliRunner

    from mirtag.cli.main import app
    from mirtag.runtime.errors import ParameterError

    result = CliRunner().invoke(
        app,
        ["train", "classifier", "--data-root", str(data_root), "--device", "tpu", "--out-dir", str(tmp_path / "run")],
    )
    assert result.exit_code != 0 and isinstance(result.exception, ParameterError)
    assert "unknown device 'tpu'" in str(result.exception)
    assert not (tmp_path / "run").exists()
