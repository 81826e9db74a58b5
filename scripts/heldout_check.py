"""Classifiers on music no training run has heard: Debian packages held out of the corpus, labelled by the teacher.

    python scripts/fetch_debian_music.py --cache /work/cache/heldout-music --packages $(python scripts/heldout_check.py --packages)
    TF_USE_LEGACY_KERAS=1 /work/teacher-venv/bin/python scripts/teacher_label.py --only debian \\
        --debian /work/cache/heldout-music --out /work/cache/teacher-heldout
    python scripts/heldout_check.py --teacher /work/cache/teacher-heldout OLD.onnx NEW.onnx [--out runs/heldout]

(or ``--teacher data/teacher-heldout``, the committed copy of those labels, after the fetch alone).

The held-out packages (``HELDOUT_PACKAGES`` of ``scripts/fetch_debian_music.py``) are in neither of its
training lists, so they are never in the training corpus; the teacher labels them for this evaluation only (up to 48 windows per track).
Every model tags each whole track through the runtime, as a scan does. For a model with a ``tags`` head:
per tag, its ROC-AUC against the teacher's decisions (track-mean merged probability >= 0.3 over the
labelled windows), on tags with >= 5 teacher positives and 1 negative; the macro value with a bootstrap
95 % interval over tracks. For every model: the share of tracks whose most probable genre is each genre.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

from mirtag.runtime.tagger import Tagger
from mirtag.trainer import distill
from mirtag.trainer import metrics as M
from mirtag.trainer.teacher_cache import TeacherCache

ROOT = Path(__file__).resolve().parents[1]
MIN_POS = 5

sys.path.insert(0, str(ROOT / "scripts"))
from fetch_debian_music import HELDOUT_PACKAGES as HELDOUT  # noqa: E402


def teacher_decisions(cache: TeacherCache, clips) -> np.ndarray:
    """(n_clips, n_vocabulary) float32: the teacher's decisions per track, in :data:`distill.VOCABULARY` order."""
    merge = distill.merge_matrix(cache.tags)
    return np.stack(
        [distill.track_decisions(distill.merged_probs(cache.load(cache.row(c, None)), merge)) for c in clips]
    ).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--teacher", help="teacher cache of the held-out packages")
    ap.add_argument("--out", default=str(ROOT / "runs" / "heldout"))
    ap.add_argument("--packages", action="store_true", help="print the held-out package names and stop")
    args = ap.parse_args(argv)
    if args.packages:
        print(" ".join(HELDOUT))
        return 0
    cache = TeacherCache(args.teacher)
    clips = sorted(cache.debian_clips(), key=lambda c: c.file)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(clips)} held-out tracks labelled by the teacher", file=sys.stderr)
    vocab = distill.tag_names()
    teacher = teacher_decisions(cache, clips)
    csv_rows = []
    for path in args.models:
        tagger = Tagger.load(path, device="cpu", threads=2)
        card = tagger.card
        npz = out / f"{card.sha256[:12]}.npz"
        if npz.is_file():
            with np.load(npz) as z:
                probs = {k: z[k] for k in z.files}
        else:
            acc = collections.defaultdict(list)
            for c in clips:
                r = tagger.tag_file(c.file)  # calibrated: per label a monotonic map, so AUCs are unchanged
                for h in card.heads:
                    acc[h.name].append([r.heads[h.name][lab] for lab in h.labels])
                acc["is_music"].append(r.is_music(card))
                acc["genre_top"].append(
                    [lab in r.top("genre", card) for lab in card.head("genre").labels] if "genre" in r.heads else []
                )
            probs = {k: np.asarray(v) for k, v in acc.items()}
            np.savez(npz, **probs)
        print(f"\n{card.ref} ({card.sha256[:8]}), {len(clips)} tracks")
        # what the teacher says each track is, for the genre head (its own tags, not the student's)
        if "genre" in probs:
            labels = list(card.head("genre").labels)
            best = collections.Counter(labels[j] for j in probs["genre"].argmax(1))
            print("most probable genre: " + ", ".join(f"{g} {n}" for g, n in best.most_common()))
            top = probs["genre_top"].astype(bool)
            for tag, genre in (("classical", "Classical"), ("electronic", "Electronic")):
                y = teacher[:, vocab.index(tag)]
                j = labels.index(genre)
                auc = M.roc_auc(y, probs["genre"][:, j])
                print(f"  {genre} vs the teacher's '{tag}' ({int(y.sum())} tracks): ROC-AUC {auc:.3f}")
            orch = teacher[:, vocab.index("classical")].astype(bool)
            for name, rows in (("all tracks", np.ones(len(clips), bool)), ("teacher says classical", orch)):
                n = int(rows.sum())
                e = int(top[rows, labels.index("Electronic")].sum())
                k = int(top[rows, labels.index("Classical")].sum())
                print(
                    f"  {name} ({n}): Electronic in the genre list {e} ({e / max(n, 1):.0%}), Classical {k} ({k / max(n, 1):.0%})"
                )
        if "tags" in probs:
            labels = card.head("tags").labels
            y = teacher[:, [vocab.index(lab) for lab in labels]]
            macro, per = M.macro_auc(y, probs["tags"], None, MIN_POS)
            v, lo, hi = M.bootstrap_ci(
                lambda i: M.macro_auc(y[i], probs["tags"][i], None, MIN_POS)[0], np.arange(len(clips)), seed=0
            )
            measured = [j for j in range(len(labels)) if not np.isnan(per[j])]
            print(f"tags macro ROC-AUC vs the teacher: {v:.3f} [{lo:.3f}, {hi:.3f}] over {len(measured)} tags")
            ranked = sorted(measured, key=lambda j: per[j])
            print(
                "per tag (teacher positives): "
                + ", ".join(f"{labels[j]} {per[j]:.3f} ({int(y[:, j].sum())})" for j in ranked)
            )
            csv_rows += [(card.ref, labels[j], int(y[:, j].sum()), per[j]) for j in range(len(labels))]
    if csv_rows:
        with open(out / "tags_auc.csv", "w") as fh:
            fh.write("model,tag,teacher_positives,roc_auc\n")
            for ref, lab, n, a in csv_rows:
                fh.write(f"{ref},{lab},{n},{'' if np.isnan(a) else f'{a:.4f}'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
