"""Label audio with the musicnn teacher, one entry per runtime window (training only).

Run it with the teacher's own virtualenv, never mirtag's (docs/teacher.md)::

    TF_USE_LEGACY_KERAS=1 /work/teacher-venv/bin/python scripts/teacher_label.py \\
        --data $MIRTAG_DATA --debian /work/cache/debian-music --out /work/cache/teacher

mirtag and its tests never import this file: it needs TensorFlow, librosa and the
musicnn wheel, which are labelling tools only.

What it computes, per clip and per runtime window (the trainer's windows: frames
of hop 512 at 22,050 Hz, ``window_frames`` 128 every ``window_hop`` 64, plus the
end-aligned tail window of ``mirtag.runtime.frontend.window_starts``):

- the teacher's input in float32 (musicnn's own pipeline casts the log-mel to
  float16, which overflows to inf on loud masters): 16 kHz, n_fft 512, hop 256,
  96 mel bands (librosa Slaney, power 2), ``log10(1 + 10000 x)``, one 187-frame
  patch centred on the runtime window's centre (zero-padded past the ends);
- ``MTT_musicnn`` and ``MSD_musicnn``: 50 tag probabilities (sigmoid) and the
  200-d penultimate layer each.

Output (resumable: a clip whose entry exists is skipped; entries are written
atomically): ``<out>/<12 hex of sha256(spec)>/<32 hex>.npz`` with float16 arrays
``mtt``, ``msd`` ``(n_windows, 50)``, ``mtt_pen``, ``msd_pen`` ``(n_windows, 200)``
and int32 ``starts`` (runtime frame of each window). The 32-hex entry name is the
feature cache's name for the clean entry of the same clip:
``sha256(json.dumps([clip key, size, mtime_ns, "clean"]))[:32]``, clip key
``<dataset>/<file>``. ``manifest.jsonl`` in the spec folder has one line per
entry (key, dataset, split, file, entry, n_windows, seconds); ``spec.json`` the
spec and the tag names.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

_LOGGER = logging.getLogger("teacher_label")

# The runtime frontend (mirtag.runtime.card.FrontendConfig defaults of the shipped card).
RUNTIME = {"sample_rate": 22050, "hop_length": 512, "window_frames": 128, "window_hop": 64}
# The teacher's input (musicnn.configuration).
TEACHER = {"sr": 16000, "n_fft": 512, "hop": 256, "n_mels": 96, "patch": 187}
MODELS = ("MTT_musicnn", "MSD_musicnn")
SPEC = {"version": 1, "runtime": RUNTIME, "teacher": TEACHER, "models": list(MODELS), "float32_input": True}
DATASETS = ("4q", "emotify", "esc50")


def window_starts(n_frames: int, wf: int = RUNTIME["window_frames"], wh: int = RUNTIME["window_hop"]) -> np.ndarray:
    """A copy of ``mirtag.runtime.frontend.window_starts`` (this script cannot import mirtag)."""
    if n_frames < wf:
        return np.zeros(1, dtype=np.int64)
    n_full = 1 + (n_frames - wf) // wh
    starts = list(range(0, n_full * wh, wh))
    if n_frames - ((n_full - 1) * wh + wf) >= max(1, wh // 2):
        starts.append(n_frames - wf)
    return np.asarray(starts, dtype=np.int64)


def entry_name(key: str, path: Path) -> str:
    """The feature cache's entry name of the clean (clip, augment) pair."""
    st = os.stat(path)
    parts = [key, st.st_size, st.st_mtime_ns, "clean"]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def clips(data: Path | None, debian: Path | None, splits_dir: Path, only: set[str] | None):
    """(key, dataset, split, path) of every clip to label.

    Order (so a run cut short is most useful): labelled train clips, labelled test
    clips (gate, evaluation), labelled validation clips, Debian.
    """
    rows: list[tuple[str, str, str, Path]] = []
    if data is not None:
        for ds in DATASETS:
            if only and ds not in only:
                continue
            with open(splits_dir / f"{ds}.csv", newline="") as fh:
                # split files hold the clip's file (relative to the data root); its key is "<dataset>/<file>"
                rows += [(f"{ds}/{r['file']}", ds, r["split"], data / r["file"]) for r in csv.DictReader(fh)]
    deb: list[tuple[str, str, str, Path]] = []
    if debian is not None and (not only or "debian" in only):
        with open(debian / "corpus.csv", newline="") as fh:
            deb = [(f"debian/{r['file']}", "debian", "train", debian / r["file"]) for r in csv.DictReader(fh)]
    yield from (r for r in rows if r[2] == "train")
    yield from (r for r in rows if r[2] == "test")
    yield from (r for r in rows if r[2] not in ("train", "test"))
    yield from deb


class Teacher:
    """Both musicnn graphs, each in its own tf.Graph and Session."""

    def __init__(self, threads: int):
        import tensorflow as tf
        from musicnn import configuration as config
        from musicnn import models

        tf.compat.v1.disable_eager_execution()
        self.tf = tf
        self.labels = {"MTT_musicnn": list(config.MTT_LABELS), "MSD_musicnn": list(config.MSD_LABELS)}
        pkg = Path(models.__file__).parent
        self.nets = {}
        for name in MODELS:
            graph = tf.Graph()
            with graph.as_default():
                # the checkpoint's variables live under the "model" scope, as in musicnn.extractor
                with tf.name_scope("model"):
                    x = tf.compat.v1.placeholder(tf.float32, [None, TEACHER["patch"], TEACHER["n_mels"]])
                    is_training = tf.compat.v1.placeholder(tf.bool)
                    out = models.define_model(x, is_training, name, len(self.labels[name]))
                    y, penultimate = out[0], out[-1]
                    prob = tf.nn.sigmoid(y)
                cfg = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1)
                sess = tf.compat.v1.Session(graph=graph, config=cfg)
                sess.run(tf.compat.v1.global_variables_initializer())
                tf.compat.v1.train.Saver().restore(sess, str(pkg / name) + "/")
            self.nets[name] = (sess, x, is_training, prob, penultimate)
            _LOGGER.info("teacher %s: %s -> %s, %s", name, x.name, prob.name, penultimate.name)

    def __call__(self, patches: np.ndarray, batch: int = 128) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        for name, (sess, x, is_training, prob, pen) in self.nets.items():
            short = name.split("_")[0].lower()
            for i in range(0, len(patches), batch):
                p, e = sess.run([prob, pen], feed_dict={x: patches[i : i + batch], is_training: False})
                out.setdefault(short, []).append(p)
                out.setdefault(short + "_pen", []).append(e.reshape(len(p), -1))
        return {k: np.concatenate(v).astype(np.float16) for k, v in out.items()}


def load_mono(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return y.mean(axis=1), sr


def teacher_patches(y: np.ndarray, sr: int, max_windows: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Runtime window starts and the teacher's float32 input patch of each window.

    ``max_windows`` > 0 keeps at most that many windows, evenly spaced over the
    track (long Debian tracks: neighbouring windows overlap by half and say
    nearly the same, and the teacher costs about 0.1 s of CPU per window).

    Returns
    -------
    starts : np.ndarray [shape=(n,), int]
    patches : np.ndarray [shape=(n, 187, 96), float32]
    """
    import librosa
    import soxr

    # the runtime's window count follows its 22,050 Hz length: soxr's output length, floor(n * ratio + 0.5)
    # (checked against soxr.resample for many lengths and rates; resampling a whole track only to count is slow)
    n22 = int(np.floor(len(y) * RUNTIME["sample_rate"] / sr + 0.5))
    n_frames = 1 + n22 // RUNTIME["hop_length"]
    starts = window_starts(n_frames)
    if 0 < max_windows < len(starts):
        starts = starts[np.unique(np.round(np.linspace(0, len(starts) - 1, max_windows)).astype(np.int64))]
    y16 = soxr.resample(y, sr, TEACHER["sr"], quality="HQ") if sr != TEACHER["sr"] else y
    mel = librosa.feature.melspectrogram(
        y=y16.astype(np.float32),
        sr=TEACHER["sr"],
        hop_length=TEACHER["hop"],
        n_fft=TEACHER["n_fft"],
        n_mels=TEACHER["n_mels"],
    ).T.astype(np.float32)
    rep = np.log10(10000.0 * mel + 1.0)  # float32 throughout: no overflow on loud audio
    n_patch = TEACHER["patch"]
    patches = np.zeros((len(starts), n_patch, TEACHER["n_mels"]), np.float32)
    for i, s in enumerate(starts):
        centre_s = (s + (RUNTIME["window_frames"] - 1) / 2.0) * RUNTIME["hop_length"] / RUNTIME["sample_rate"]
        j0 = round(centre_s * TEACHER["sr"] / TEACHER["hop"] - (n_patch - 1) / 2.0)
        j0 = max(0, min(j0, rep.shape[0] - n_patch))
        seg = rep[j0 : j0 + n_patch]
        patches[i, : len(seg)] = seg
    return starts, patches


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="labelled data root (MIRTAG_DATA)")
    ap.add_argument("--debian", help="Debian music cache (scripts/fetch_debian_music.py)")
    ap.add_argument("--out", required=True, help="teacher cache root")
    ap.add_argument("--only", nargs="*", help="datasets: 4q emotify esc50 debian")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--debian-max-windows", type=int, default=48, help="windows per Debian track at most, evenly spaced (0 = all)"
    )
    ap.add_argument(
        "--eval-max-windows",
        type=int,
        default=10,
        help="windows per validation/test clip at most, evenly spaced (0 = all)",
    )
    ap.add_argument(
        "--train-max-windows",
        type=int,
        default=0,
        help="windows per labelled training clip at most, evenly spaced (0 = all)",
    )
    ap.add_argument("--limit", type=int, default=0, help="stop after this many new entries (testing)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        sys.exit("teacher_label: set TF_USE_LEGACY_KERAS=1 (musicnn's graph uses Keras 2 layers)")

    spec_hash = hashlib.sha256(json.dumps(SPEC, sort_keys=True).encode()).hexdigest()[:12]
    out = Path(args.out) / spec_hash
    out.mkdir(parents=True, exist_ok=True)
    splits_dir = Path(__file__).resolve().parents[1] / "trainer" / "splits"
    teacher = Teacher(args.threads)
    (out / "spec.json").write_text(
        json.dumps(
            {**SPEC, "tags": {"mtt": teacher.labels["MTT_musicnn"], "msd": teacher.labels["MSD_musicnn"]}}, indent=1
        )
    )
    manifest = out / "manifest.jsonl"
    done = set()
    if manifest.is_file():
        done = {json.loads(line)["entry"] for line in manifest.read_text().splitlines() if line.strip()}
    data = Path(args.data) if args.data else None
    debian = Path(args.debian) if args.debian else None
    new = failed = 0
    t0, windows = time.time(), 0
    with open(manifest, "a") as man:
        for key, ds, split, path in clips(data, debian, splits_dir, set(args.only) if args.only else None):
            try:
                name = entry_name(key, path)
            except OSError as exc:
                _LOGGER.warning("%s: %s", key, exc)
                failed += 1
                continue
            target = out / f"{name}.npz"
            if name in done and target.is_file():
                continue
            try:
                y, sr = load_mono(path)
                cap = (
                    args.debian_max_windows
                    if ds == "debian"
                    else args.train_max_windows
                    if split == "train"
                    else args.eval_max_windows
                )
                starts, patches = teacher_patches(y, sr, cap)
                res = teacher(patches)
            except Exception as exc:  # noqa: BLE001 - one bad file must not end a long labelling run
                _LOGGER.warning("%s: failed: %s", key, " ".join(f"{type(exc).__name__}: {exc}".split()))
                failed += 1
                continue
            tmp = out / f".{name}.{os.getpid()}.tmp.npz"
            np.savez_compressed(tmp, starts=starts.astype(np.int32), **res)
            os.replace(tmp, target)
            man.write(
                json.dumps(
                    {
                        "key": key,
                        "dataset": ds,
                        "split": split,
                        "file": str(path),
                        "entry": name,
                        "size": os.stat(path).st_size,
                        "n_windows": len(starts),
                        "seconds": round(len(y) / sr, 3),
                    }
                )
                + "\n"
            )
            man.flush()
            new += 1
            windows += len(starts)
            if new % 25 == 0:
                _LOGGER.info(
                    "%d new entries (%d windows, %.1f windows/s), %d failed; last %s",
                    new,
                    windows,
                    windows / (time.time() - t0),
                    failed,
                    key,
                )
            if args.limit and new >= args.limit:
                break
    _LOGGER.info("done: %d new entries, %d windows, %d failed -> %s", new, windows, failed, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
