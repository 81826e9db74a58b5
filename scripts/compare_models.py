"""Compare classifiers on the test split with a paired bootstrap (the ship rule of issue 10).

    MIRTAG_DATA=... python scripts/compare_models.py exported/mirtag-tagger.onnx runs/distill*/export/*.onnx \\
        [--teacher /work/cache/teacher] [--out runs/compare]

The first model is the reference. Every model tags the same test clips through the
runtime (track-level probabilities, calibration off, cached per model sha256 like
``scripts/tune_decisions.py``). Per head: quadrant accuracy, genre and mood macro
ROC-AUC (labels with >= 5 test positives), Emotify 3-way genre accuracy, music
ROC-AUC and, for a model with a ``tags`` head, its macro ROC-AUC against the
teacher's decisions on the test audio (track-mean merged probability >= 0.3; the
clips the teacher labelled). Differences to the reference come with paired
bootstrap 95 % intervals (1,000 resamples of the test clips, the same resample
for both models). Per-tag AUCs are written to ``<out>/tags_auc.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from mirtag.runtime.card import load_card
from mirtag.runtime.frontend import Frontend
from mirtag.runtime.session import Session
from mirtag.runtime.tagger import Tagger
from mirtag.trainer import data as D
from mirtag.trainer import metrics as M
from mirtag.trainer.data.datasets import EMOTIFY_GENRE_LABELS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from tune_decisions import split_clips, tag_split  # noqa: E402

MIN_POS = 5


def metric_fns(clips, card, targets, masks, teacher_tags):
    """name -> fn(probs, idx) for the heads the card has."""
    heads = {h.name: h for h in card.heads}
    fns = {}
    if "quadrant" in heads:

        def quad(p, i):
            rows = i[masks["quadrant"][i].max(1) > 0]
            return M.accuracy(targets["quadrant"][rows].argmax(1), p["quadrant"][rows].argmax(1))

        fns["quadrant accuracy"] = quad
    for h in ("genre", "moods"):
        if h in heads:
            fns[f"{h} macro ROC-AUC"] = lambda p, i, h=h: M.macro_auc(
                targets[h][i], p[h][i], masks[h][i], min_positives=MIN_POS
            )[0]
    if "genre" in heads:
        cols = [list(heads["genre"].labels).index(g) for g in EMOTIFY_GENRE_LABELS]
        emo = np.array([c.dataset == "emotify" for c in clips])

        def emotify(p, i):
            rows = i[emo[i]]
            return M.accuracy(targets["genre"][rows][:, cols].argmax(1), p["genre"][rows][:, cols].argmax(1))

        fns["Emotify genre accuracy"] = emotify
    if "music" in heads:
        fns["music ROC-AUC"] = lambda p, i: M.roc_auc(targets["music"][i, 0], p["music"][i, 0])
    if "tags" in heads and teacher_tags is not None:
        ty, tm = teacher_tags
        fns["tags macro ROC-AUC (vs teacher)"] = lambda p, i: M.macro_auc(ty[i], p["tags"][i], tm[i], MIN_POS)[0]
    return fns


def teacher_decisions(cache_dir, clips, root, labels):
    from mirtag.trainer import distill
    from mirtag.trainer.teacher_cache import TeacherCache

    cache = TeacherCache(cache_dir)
    merge = distill.merge_matrix(cache.tags)
    y = np.zeros((len(clips), len(labels)), np.float32)
    m = np.zeros_like(y)
    for i, c in enumerate(clips):
        row = cache.row(c, root)
        if row is None or not c.music:
            continue
        y[i] = distill.track_decisions(distill.merged_probs(cache.load(row), merge))
        m[i] = 1.0
    return y, m


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="reference first")
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--work", default=str(ROOT / "runs" / "decisions"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "compare"))
    args = ap.parse_args(argv)
    root = D.data_root(args.data)
    test = split_clips(root)["test"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, probs, cards = {}, {}, []
    for path in args.models:
        card = load_card(path)
        raw = dataclasses.replace(card, heads=tuple(dataclasses.replace(h, temperature=None) for h in card.heads))
        tagger = Tagger(raw, Session(raw, "cpu", 2), Frontend.from_card(raw))
        probs[card.sha256] = tag_split(tagger, test, root, Path(args.work) / card.sha256[:12] / "test.npz")
        cards.append(card)
    ref = cards[0]
    idx = np.arange(len(test))
    lines = [
        "| metric | " + " | ".join(c.ref + f" ({c.sha256[:8]})" for c in cards) + " |",
        "|---|" + "---|" * len(cards),
    ]
    table: dict[str, list[str]] = {}
    tag_rows = []
    for k, card in enumerate(cards):
        taxonomy = {h.name: list(h.labels) for h in card.heads if h.name != "tags"}
        targets, masks = D.encode_targets(test, taxonomy)
        tt = None
        if args.teacher and any(h.name == "tags" for h in card.heads):
            tt = teacher_decisions(args.teacher, test, root, card.head("tags").labels)
            aucs = M.macro_auc(tt[0], probs[card.sha256]["tags"], tt[1], MIN_POS)[1]
            tag_rows += [
                (card.ref, card.sha256[:8], lab, int(tt[0][:, j].sum()), aucs[j])
                for j, lab in enumerate(card.head("tags").labels)
            ]
        fns = metric_fns(test, card, targets, masks, tt)
        ref_fns = metric_fns(test, ref, *D.encode_targets(test, {h.name: list(h.labels) for h in ref.heads}), None)
        for name, fn in fns.items():
            p = probs[card.sha256]
            v, lo, hi = M.bootstrap_ci(lambda i: fn(p, i), idx, n_boot=1000, seed=0)
            cell = f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
            if k > 0 and name in ref_fns:
                pr = probs[ref.sha256]
                d, dlo, dhi = M.bootstrap_ci(lambda i: fn(p, i) - ref_fns[name](pr, i), idx, n_boot=1000, seed=0)
                cell += f"; diff {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}]"
            table.setdefault(name, [""] * len(cards))[k] = cell
            results.setdefault(card.sha256, {})[name] = cell
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in table.items()]
    md = "\n".join(lines)
    print(md)
    (out / "compare.md").write_text(md + "\n")
    (out / "compare.json").write_text(json.dumps(results, indent=1))
    if tag_rows:
        with open(out / "tags_auc.csv", "w") as fh:
            fh.write("model,sha256,tag,teacher_positives,roc_auc\n")
            for r in tag_rows:
                fh.write(f"{r[0]},{r[1]},{r[2]},{r[3]},{'' if r[4] is None else f'{r[4]:.4f}'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
