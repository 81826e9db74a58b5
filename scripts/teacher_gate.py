"""The gate: linear probes on the teacher's pooled features against the shipped model, per head.

    MIRTAG_DATA=... python scripts/teacher_gate.py --teacher /work/cache/teacher [--write]

For every clip of the committed splits that the teacher labelled
(``scripts/teacher_label.py``), the teacher's features are pooled over the
clip's windows: the mean of both 200-d penultimate layers and of both 50-tag
probability vectors (500 values). One linear layer per head (the trainer's
masked losses, weight decay picked on validation by the trainer's selection
score) is fitted on the training clips; the test clips are judged with the
trainer's own metrics, next to the shipped classifier's track probabilities on
the same clips (through the runtime, as ``scripts/tune_decisions.py`` computes
them). A probe that beats the shipped model on a head says distillation can lift
that head; where it does not, the teacher can only add breadth (new tags).

``--write`` puts the table between the ``gate`` markers of exported/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mirtag.runtime.card import load_card
from mirtag.runtime.frontend import Frontend
from mirtag.runtime.session import Session
from mirtag.runtime.tagger import Tagger
from mirtag.trainer import data as D
from mirtag.trainer.evaluate import head_metrics, selection_score
from mirtag.trainer.heads import head_kinds, views
from mirtag.trainer.teacher_cache import TeacherCache
from mirtag.trainer.train import Split, masked_loss

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from tune_decisions import tag_split  # noqa: E402

BEGIN, END = "<!-- gate:begin -->", "<!-- gate:end -->"
KEYS = [
    ("quadrant_accuracy", "Quadrant accuracy"),
    ("genre_macro_roc_auc", "Genre macro ROC-AUC"),
    ("moods_macro_roc_auc", "Mood macro ROC-AUC"),
    ("emotify_genre_accuracy", "Emotify genre accuracy (3-way)"),
    ("music_roc_auc", "Music vs not-music ROC-AUC"),
    ("emotions_mae", "Emotion shares MAE (lower is better)"),
]


def pooled(cache: TeacherCache, clips, root) -> tuple[np.ndarray, np.ndarray]:
    """(n, 500) pooled teacher features and a (n,) bool of the clips the teacher labelled."""
    x = np.zeros((len(clips), 500), np.float32)
    have = np.zeros(len(clips), bool)
    for i, c in enumerate(clips):
        row = cache.row(c, root)
        if row is None:
            continue
        tw = cache.load(row)
        x[i] = np.concatenate([tw.features.mean(0), tw.probs["mtt"].mean(0), tw.probs["msd"].mean(0)])
        have[i] = True
    return x, have


def fit_probe(x, targets, masks, kinds, weight_decay: float, epochs: int = 400, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    heads = torch.nn.ModuleDict({h: torch.nn.Linear(x.shape[1], t.shape[1]) for h, t in targets.items()})
    opt = torch.optim.Adam(heads.parameters(), lr=0.01, weight_decay=weight_decay)
    xt = torch.from_numpy(x)
    tt = {h: torch.from_numpy(v) for h, v in targets.items()}
    mt = {h: torch.from_numpy(v) for h, v in masks.items()}
    for _ in range(epochs):
        opt.zero_grad()
        loss, _ = masked_loss({h: m(xt) for h, m in heads.items()}, tt, mt, kinds, {})
        loss.backward()
        opt.step()
    return heads


def probe_probs(heads, x, kinds) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        xt = torch.from_numpy(x)
        return {
            h: (torch.softmax(m(xt), 1) if kinds[h] == "softmax" else torch.sigmoid(m(xt))).numpy()
            for h, m in heads.items()
        }


def judged(split: Split, probs, taxonomy, kinds) -> dict:
    return head_metrics(split, probs, probs, np.arange(len(split.clips)), taxonomy, ci=True, kinds=kinds)


def fmt(v) -> str:
    if isinstance(v, dict):
        return f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
    return "n/a" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True, help="teacher cache (scripts/teacher_label.py --out)")
    ap.add_argument("--model", default=str(ROOT / "exported" / "mirtag-tagger.onnx"))
    ap.add_argument("--data", default=None)
    ap.add_argument("--work", default=str(ROOT / "runs" / "decisions"))
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--model-card", default=str(ROOT / "exported" / "MODEL_CARD.md"))
    args = ap.parse_args(argv)

    root = D.data_root(args.data)
    cache = TeacherCache(args.teacher)
    card = load_card(args.model)
    taxonomy = {h.name: list(h.labels) for h in card.heads}
    kinds = head_kinds(taxonomy)
    clips = D.read_4q(root) + D.read_emotify(root) + D.read_esc50(root)
    split_of = {}
    for ds in ("4q", "emotify", "esc50"):
        split_of.update(D.read_splits(ds))
    sets = {}
    for name in ("train", "validation", "test"):
        members = [c for c in clips if split_of.get(c.key) == name]
        x, have = pooled(cache, members, root)
        sets[name] = (members, x, have)
        print(f"{name}: teacher labelled {int(have.sum())}/{len(members)} clips", file=sys.stderr)

    def split_of_members(name, keep):
        members = [c for c, k in zip(sets[name][0], keep) if k]
        t, m = D.encode_targets(members, taxonomy)
        return Split(members, t, m, [])

    tr = split_of_members("train", sets["train"][2])
    va = split_of_members("validation", sets["validation"][2])
    te = split_of_members("test", sets["test"][2])
    mu, sd = sets["train"][1][sets["train"][2]].mean(0), sets["train"][1][sets["train"][2]].std(0) + 1e-4
    xs = {n: ((sets[n][1][sets[n][2]] - mu) / sd).astype(np.float32) for n in sets}
    specs = views(taxonomy, kinds)
    best = None
    for wd in (1e-4, 1e-3, 1e-2, 3e-2, 1e-1):
        heads = fit_probe(xs["train"], tr.targets, tr.masks, kinds, wd)
        vp = probe_probs(heads, xs["validation"], kinds)
        score = selection_score(head_metrics(va, vp, vp, np.arange(len(va.clips)), taxonomy, kinds=kinds), specs)
        print(f"weight decay {wd:g}: validation score {score:.4f}", file=sys.stderr)
        if best is None or score > best[0]:
            best = (score, wd, heads)
    _, wd, heads = best
    probe = judged(te, probe_probs(heads, xs["test"], kinds), taxonomy, kinds)

    # the shipped classifier on the same test clips (runtime track probabilities, uncalibrated)
    import dataclasses

    raw = dataclasses.replace(card, heads=tuple(dataclasses.replace(h, temperature=None) for h in card.heads))
    tagger = Tagger(raw, Session(raw, "cpu", 2), Frontend.from_card(raw))
    all_test = sets["test"][0]
    shipped_all = tag_split(tagger, all_test, root, Path(args.work) / card.sha256[:12] / "test.npz")
    keep = sets["test"][2]
    shipped = judged(te, {h: shipped_all[h][keep] for h in taxonomy}, taxonomy, kinds)

    rows = []
    for key, name in KEYS:
        if key in probe or key in shipped:
            rows.append((name, fmt(shipped.get(key)), fmt(probe.get(key))))
    rep = {"weight_decay": wd, "test_clips": len(te.clips), "probe": probe, "shipped": shipped}
    out = Path(args.work) / "gate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rep, indent=1, default=str))
    md = [
        BEGIN,
        "## The gate: linear probes on the teacher's features (`python scripts/teacher_gate.py`)",
        "",
        (
            f"musicnn's pooled features (both 200-d penultimate layers and both 50-tag outputs, mean over the "
            f"clip's windows) with one linear layer per head, trained on the training clips (weight decay {wd:g} "
            f"picked on validation), against {card.ref} on the same {len(te.clips)} test clips (track level, "
            "bootstrap 95 % intervals):"
        ),
        "",
        f"| head | {card.ref} | linear probe on the teacher |",
        "|---|---|---|",
    ]
    md += [f"| {n} | {a} | {b} |" for n, a, b in rows]
    md += ["", END]
    text = "\n".join(md)
    print(text)
    if args.write:
        mc = Path(args.model_card)
        body = mc.read_text()
        if BEGIN in body:
            body = body[: body.index(BEGIN)] + text + body[body.index(END) + len(END) :]
        else:
            anchor = "<!-- decisions:begin -->"
            body = body.replace(anchor, text + "\n\n" + anchor, 1) if anchor in body else body + "\n" + text + "\n"
        mc.write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
