"""Distillation with a tiny stand-in teacher (no TensorFlow): cache, vocabulary, windows, an end-to-end run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirtag.runtime.card import FrontendConfig
from mirtag.runtime.frontend import window_starts
from mirtag.trainer import distill
from mirtag.trainer.data import Clip
from mirtag.trainer.teacher_cache import TeacherCache, TeacherWindows, entry_name
from tests.conftest import music_like
from tests.trainer.test_train import _config, data_root  # noqa: F401 - the shared synthetic data set

pytestmark = [pytest.mark.train]
torch = pytest.importorskip("torch", reason="the trainer tests need the train extra (torch)")

SR = 22050
MTT = sorted({s.split(":", 1)[1] for _, srcs in distill.VOCABULARY for s in srcs if s.startswith("mtt:")}) + ["80s"]
MSD = sorted({s.split(":", 1)[1] for _, srcs in distill.VOCABULARY for s in srcs if s.startswith("msd:")}) + ["00s"]


def standin_outputs(y: np.ndarray, starts: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """The stand-in teacher: fixed random maps of each window's loudness and brightness."""
    rng = np.random.default_rng(seed)
    wmtt, wmsd = rng.normal(size=(3, len(MTT))), rng.normal(size=(3, len(MSD)))
    vpen = rng.normal(size=(3, 400))
    rows = []
    for s in starts:
        seg = y[s * 512 : s * 512 + 128 * 512]
        seg = seg if len(seg) else np.zeros(1, np.float32)
        loud = np.log(np.mean(seg**2) + 1e-6) / 10
        bright = np.mean(np.abs(np.diff(np.sign(seg)))) if len(seg) > 1 else 0.0
        rows.append([loud, bright, 1.0])
    f = np.asarray(rows)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    pen = np.tanh(f @ vpen)
    return {"mtt": sig(f @ wmtt), "msd": sig(f @ wmsd), "mtt_pen": pen[:, :200], "msd_pen": pen[:, 200:]}


def write_standin_cache(out: Path, clips: list[tuple[str, str, str, Path]], sparse: set[str] = frozenset()) -> Path:
    """A teacher cache in scripts/teacher_label.py's layout, from the stand-in teacher."""
    folder = out / "0123456789ab"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps({"version": 1, "tags": {"mtt": MTT, "msd": MSD}}))
    with open(folder / "manifest.jsonl", "w") as man:
        for key, ds, split, path in clips:
            y, sr = sf.read(path, dtype="float32")
            y = y.mean(axis=1) if y.ndim == 2 else y
            starts = window_starts(1 + len(y) // 512, FrontendConfig())
            if key in sparse:
                starts = starts[::2]
            name = entry_name(key, path)
            arrays = {k: v.astype(np.float16) for k, v in standin_outputs(y, starts).items()}
            np.savez_compressed(folder / f"{name}.npz", starts=starts.astype(np.int32), **arrays)
            man.write(
                json.dumps(
                    {
                        "key": key,
                        "dataset": ds,
                        "split": split,
                        "file": str(path),
                        "entry": name,
                        "n_windows": len(starts),
                    }
                )
                + "\n"
            )
    return folder


def test_vocabulary_merges_synonyms_by_their_maximum():
    tags = {"mtt": MTT, "msd": MSD}
    merge = distill.merge_matrix(tags)
    n = 3
    probs = {"mtt": np.full((n, len(MTT)), 0.1, np.float32), "msd": np.full((n, len(MSD)), 0.1, np.float32)}
    probs["mtt"][1, MTT.index("singing")] = 0.9
    probs["mtt"][2, MTT.index("no vocals")] = 0.7
    got = distill.merged_probs(TeacherWindows(np.arange(n), probs, np.zeros((n, 400))), merge)
    names = distill.tag_names()
    assert got.shape == (n, len(names))
    assert got[1, names.index("vocals")] == pytest.approx(0.9)
    assert got[0, names.index("vocals")] == pytest.approx(0.1)
    assert got[2, names.index("instrumental")] == pytest.approx(0.7)


def test_vocabulary_is_50_to_60_distinct_tags_without_decades():
    names = distill.tag_names()
    assert 50 <= len(names) <= 60 and len(set(names)) == len(names)
    sources = [s for _, srcs in distill.VOCABULARY for s in srcs]
    assert not any(s.split(":")[1][:1].isdigit() for s in sources), "no decades (00s, 80s...)"
    with pytest.raises(Exception, match="no 'mtt:guitar'"):
        distill.merge_matrix({"mtt": ["piano"], "msd": MSD})


def test_cache_reads_entries_and_skips_changed_files_and_cut_lines(tmp_path):
    audio = tmp_path / "a.ogg"
    sf.write(audio, music_like(SR, 5.0, seed=1), SR, format="OGG", subtype="VORBIS")
    clip = Clip(file=str(audio), dataset="debian")
    folder = write_standin_cache(tmp_path / "teacher", [("debian/pkg/a.ogg", "debian", "train", audio)])
    with open(folder / "manifest.jsonl", "a") as fh:
        fh.write('{"key": "cut sh')  # a labelling run killed mid-line
    cache = TeacherCache(tmp_path / "teacher")
    assert len(cache) == 1 and cache.debian_clips()[0].file == str(audio)
    tw = cache.load(cache.row(clip, None))
    assert tw.features.shape == (len(tw.starts), 400) and tw.probs["mtt"].shape == (len(tw.starts), len(MTT))
    os.utime(audio, ns=(0, 10**9))  # the file changed: its old labels must not be read
    assert cache.row(clip, None) is None


def test_a_copied_cache_matches_by_key_and_size(tmp_path):
    audio = tmp_path / "data" / "x" / "a.ogg"
    audio.parent.mkdir(parents=True)
    sf.write(audio, music_like(SR, 4.0, seed=2), SR, format="OGG", subtype="VORBIS")
    clip = Clip(file="x/a.ogg", dataset="x")
    folder = write_standin_cache(tmp_path / "teacher", [(clip.key, "x", "train", audio)])
    row = json.loads((folder / "manifest.jsonl").read_text())
    os.utime(audio, ns=(0, 10**9))  # another machine: same file, other mtime
    assert TeacherCache(tmp_path / "teacher").row(clip, tmp_path / "data") is None, "no size recorded: no match"
    (folder / "manifest.jsonl").write_text(json.dumps({**row, "size": audio.stat().st_size}) + "\n")
    assert TeacherCache(tmp_path / "teacher").row(clip, tmp_path / "data") is not None
    (folder / "manifest.jsonl").write_text(json.dumps({**row, "size": 1}) + "\n")
    assert TeacherCache(tmp_path / "teacher").row(clip, tmp_path / "data") is None, "other size: no match"


def test_nearest_window_and_sparse_epochs(tmp_path):
    t = distill.TeacherTargets(
        starts=[np.array([0, 64, 128]), np.array([0, 256])],
        tags=[np.zeros((3, 2)), np.zeros((2, 2))],
        features=[None, None],
        sparse=np.array([False, True]),
    )
    assert t.nearest(0, 70, 32) == 1 and t.nearest(0, 100, 32) == 2 and t.nearest(1, 128, 32) is None

    class S:
        teacher = t
        mels = [[np.zeros((2, 4, 300))], [np.zeros((2, 4, 600))]]

    class Cfg:
        frontend = FrontendConfig()
        debian_windows = 8

    def base(split, cfg, rng):
        return [(0, 0, 0), (0, 0, 64), (1, 0, 64), (1, 0, 128)]

    items = distill.epoch_windows(S(), Cfg(), np.random.default_rng(0), base)
    sparse = [s for i, _, s in items if i == 1]
    assert len(sparse) == 2, "both labelled windows of the sparse clip, nothing else of it"
    assert all(min(abs(s - 0), abs(s - 256)) <= 16 for s in sparse)
    assert sorted(s for i, _, s in items if i == 0) == [0, 64]


@pytest.mark.slow
def test_distilled_run_exports_a_tags_head(data_root, tmp_path):  # noqa: F811
    from mirtag.runtime import Tagger
    from mirtag.runtime.card import load_card
    from mirtag.trainer.data import read_4q, read_emotify, read_esc50
    from mirtag.trainer.export import load_classifier
    from mirtag.trainer.train import train_classifier

    clips = read_4q(data_root) + read_emotify(data_root) + read_esc50(data_root)
    debian = []
    for k in range(2):
        path = tmp_path / "debian" / "pkg" / f"track{k}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, music_like(SR, 9.0, seed=50 + k), SR, format="OGG", subtype="VORBIS")
        debian.append((f"debian/pkg/track{k}.ogg", "debian", "train", path))
    write_standin_cache(
        tmp_path / "teacher",
        [(c.key, c.dataset, "?", c.resolve(data_root)) for c in clips] + debian,
        sparse={d[0] for d in debian},
    )
    cfg = _config(tmp_path, teacher_dir=str(tmp_path / "teacher"), epochs=2, debian_windows=2)
    run = train_classifier(cfg, data_root)

    card = load_card(run / "export" / "tiny-trained.onnx")
    assert [h.name for h in card.heads][-1] == "tags"
    assert list(card.head("tags").labels) == distill.tag_names()
    assert card.head("genre").labels and card.head("quadrant").labels == ("Q1", "Q2", "Q3", "Q4"), "old heads kept"
    assert card.head("tags").max_labels == 5 and card.head("tags").temperature > 0
    report = json.loads((run / "report.json").read_text())
    assert "tags_macro_roc_auc" in report["test"]
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 2 and all(np.isfinite(r["loss"]) for r in history)
    model = load_classifier(run / "export" / "tiny-trained.pt")
    assert not any(k.startswith("teacher_proj") for k in model.state_dict())
    result = Tagger.load(run / "export" / "tiny-trained.onnx", device="cpu").tag_file(debian[0][3])
    assert set(result.heads["tags"]) == set(distill.tag_names())


def test_teacher_genres_supervise_only_the_debian_clips_on_the_genres_the_teacher_has_tags_for(tmp_path):
    from mirtag.trainer.train import Split

    genres = ["Pop/Rock", "Electronic", "Classical", "Latin", "New Age"]
    paths = {}
    for k, name in enumerate(("debian/pkg/a.wav", "4q/b.wav")):
        paths[name] = tmp_path / name
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        sf.write(paths[name], music_like(SR, 6.0, seed=k), SR)
    debian = Clip(file=str(paths["debian/pkg/a.wav"]), dataset="debian", music=True)
    labelled = Clip(file="b.wav", dataset="4q", music=True)
    write_standin_cache(
        tmp_path / "teacher",
        [(debian.key, "debian", "train", paths["debian/pkg/a.wav"]), (labelled.key, "4q", "train", paths["4q/b.wav"])],
    )
    cache = TeacherCache(tmp_path / "teacher")
    mels = [[np.zeros((2, 84, 260), np.float16)]] * 2
    targets = {"genre": np.array([[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], np.float32)}
    split = Split([debian, labelled], targets, {"genre": np.array([[0] * 5, [1] * 5], np.float32)}, mels)

    distill.attach(split, cache, tmp_path / "4q", FrontendConfig(), genre_labels=genres)

    tw = cache.load(cache.row(debian, None))
    sources = dict(distill.GENRES_FROM_TEACHER)
    expect = {
        g: distill.merged_probs(tw, distill.merge_matrix(cache.tags, [(g, sources[g])]))[:, 0].mean() for g in sources
    }
    for j, g in enumerate(genres):
        if g in sources:
            assert split.masks["genre"][0, j] == 1.0
            assert split.targets["genre"][0, j] == pytest.approx(expect[g], abs=1e-6)
        else:  # no teacher tag for Latin: unsupervised
            assert split.masks["genre"][0, j] == 0.0 and split.targets["genre"][0, j] == 0.0
    np.testing.assert_array_equal(split.targets["genre"][1], [1, 0, 0, 0, 0])  # labelled clips keep their labels
    np.testing.assert_array_equal(split.masks["genre"][1], [1] * 5)


def test_without_teacher_genres_debian_clips_leave_the_genre_head_alone(tmp_path):
    from mirtag.trainer.train import Split

    path = tmp_path / "a.wav"
    sf.write(path, music_like(SR, 6.0, seed=3), SR)
    debian = Clip(file=str(path), dataset="debian", music=True)
    write_standin_cache(tmp_path / "teacher", [(debian.key, "debian", "train", path)])
    split = Split(
        [debian],
        {"genre": np.zeros((1, 3), np.float32)},
        {"genre": np.zeros((1, 3), np.float32)},
        [[np.zeros((2, 84, 260), np.float16)]],
    )
    distill.attach(split, TeacherCache(tmp_path / "teacher"), None, FrontendConfig())
    assert not split.masks["genre"].any()
