"""Calibrate a shipped classifier and tune its decisions on validation; report on test.

    python scripts/tune_decisions.py [--model exported/mirtag-tagger.onnx] [--data $MIRTAG_DATA] \\
        [--beta 0.5] [--min-precision P] [--write]

Tags the validation and test clips of the committed splits with the runtime
itself (the track-level probabilities users get; calibration switched off),
fits one temperature per head and one precision-weighted threshold per sigmoid
head on validation (:mod:`mirtag.trainer.calibrate`), caps the lists (top-2
genres, top-3 moods and emotions), and reports on test: negative log-likelihood
and ECE before and after calibration, reliability tables, and the precision,
recall and list lengths of the old and the new decisions.

``--write`` puts the temperatures, thresholds and caps into the card JSON (the
ONNX bytes, and so the card's sha256 and the genre map's tie to it, stay as they
are) and the report between the ``decisions`` markers of exported/MODEL_CARD.md.
Probabilities are cached in ``--work`` (default ``runs/decisions``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from mirtag.runtime.card import load_card
from mirtag.runtime.decisions import calibrate
from mirtag.runtime.frontend import Frontend
from mirtag.runtime.session import Session
from mirtag.runtime.tagger import Tagger
from mirtag.trainer import calibrate as C
from mirtag.trainer import data as D

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- decisions:begin -->", "<!-- decisions:end -->"


def split_clips(root: Path) -> dict[str, list]:
    clips = D.read_4q(root) + D.read_emotify(root) + D.read_esc50(root)
    split_of = {}
    for ds in ("4q", "emotify", "esc50"):
        split_of.update(D.read_splits(ds))
    return {s: [c for c in clips if split_of.get(c.key) == s] for s in ("validation", "test")}


def tag_split(tagger: Tagger, clips: list, root: Path, cache: Path) -> dict[str, np.ndarray]:
    """Uncalibrated track probabilities per head, ``(n_clips, n_labels)``, cached in ``cache``."""
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    out: dict[str, list] = {h.name: [] for h in tagger.card.heads}
    out["silent"] = []
    for i, c in enumerate(clips):
        r = tagger.tag_file(c.resolve(root))
        for h in tagger.card.heads:
            out[h.name].append([r.heads[h.name][lab] for lab in h.labels])
        out["silent"].append("silent" in r.warnings)
        if (i + 1) % 50 == 0:
            print(f"  tagged {i + 1}/{len(clips)}", file=sys.stderr)
    arrays = {k: np.asarray(v) for k, v in out.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **arrays)
    return arrays


def old_top(probs: dict, head, music_ok: bool) -> list[str]:
    """The 1.1.0 runtime's rule: per-label thresholds, at least one label, no cap, no music gate."""
    ranked = sorted(probs, key=lambda lab: (-probs[lab], head.labels.index(lab)))
    if head.kind == "softmax" and not head.thresholds:
        return ranked[:1]
    keep = [lab for lab in ranked if probs[lab] >= head.threshold(lab)]
    return keep or ranked[:1]


def old_stats(Y, P, mask, head) -> dict:
    Yb = C.binary_targets(Y)
    M = np.asarray(mask, bool)
    tp = fp = fn = 0
    lengths = []
    for i in range(len(Yb)):
        if not M[i].any():
            continue
        chosen = old_top(dict(zip(head.labels, map(float, P[i]))), head, True)
        pick = np.isin(np.asarray(head.labels), chosen)
        tp += int((pick & Yb[i] & M[i]).sum())
        fp += int((pick & ~Yb[i] & M[i]).sum())
        fn += int((~pick & Yb[i] & M[i]).sum())
        lengths.append(len(chosen))
    return {
        "tracks": len(lengths),
        "precision": round(tp / max(1, tp + fp), 4),
        "recall": round(tp / max(1, tp + fn), 4),
        "mean_labels": round(float(np.mean(lengths)), 3),
        "max_labels_seen": int(max(lengths, default=0)),
        "empty_share": 0.0,
    }


def markdown(rep: dict) -> str:
    lines = [
        BEGIN,
        "## Decisions and calibration (`python scripts/tune_decisions.py --write`)",
        "",
        f"Fitted on the {rep['n_validation']} validation clips, judged on the {rep['n_test']} test clips, with the "
        "runtime's own track-level probabilities. Rules (`mirtag.runtime.decisions`): probabilities are "
        "calibrated by one temperature per head (lowest validation NLL); a sigmoid head's `top` holds the labels "
        f"at or above the head's threshold (one per head, best F{rep['beta']:g} on validation, F1 for the music gate"
        + (f", precision >= {rep['min_precision']}" if rep["min_precision"] else "")
        + "), best first, at most `max_labels` (`--top-k` overrides), and may be empty; a track under the "
        "`music` threshold (or silent) gets no label from any head.",
        "",
    ]
    if rep.get("kept"):
        lines += [
            "Heads no labelled clip supervises keep the decisions the trainer fitted on validation against the "
            "teacher's decisions: " + ", ".join(f"`{h}`" for h in rep["kept"]) + " (see the distillation section).",
            "",
        ]
    lines += [
        "| head | temperature | threshold | max labels | test NLL before -> after | test ECE before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for h, r in rep["heads"].items():
        thr = "" if r["threshold"] is None else f"{r['threshold']:.3f}"
        lines.append(
            f"| {h} | {r['temperature']:.3f} | {thr} | {r['max_labels'] or ''} | "
            f"{r['nll_before']:.4f} -> {r['nll_after']:.4f} | {r['ece_before']:.4f} -> {r['ece_after']:.4f} |"
        )
    lines += [
        "",
        (
            "Decisions on test, 1.1.0's rule (per-label best-F1 thresholds, at least one label, no cap, "
            "no music gate) against the new one (supervised labels only; tracks without any supervised label "
            "of the head are left out):"
        ),
        "",
        "| head | tracks | precision old -> new | recall old -> new | mean labels old -> new | most labels old -> new | empty (new) |",
        "|---|---|---|---|---|---|---|",
    ]
    for h, r in rep["heads"].items():
        o, n = r["test_old"], r["test_new"]
        lines.append(
            f"| {h} | {n['tracks']} | {o['precision']:.3f} -> {n['precision']:.3f} | {o['recall']:.3f} -> "
            f"{n['recall']:.3f} | {o['mean_labels']:.2f} -> {n['mean_labels']:.2f} | {o['max_labels_seen']} -> "
            f"{n['max_labels_seen']} | {n['empty_share']:.0%} |"
        )
    m = rep["music_gate"]
    lines += [
        "",
        (
            f"Music gate on test: {m['nonmusic_flagged']}/{m['nonmusic']} non-music clips (ESC-50) are "
            f"flagged not music and get no genre or mood; {m['music_flagged']}/{m['music']} music clips are "
            "wrongly flagged."
        ),
        "",
    ]
    for h, r in rep["heads"].items():
        lines += [
            f"Reliability on test, `{h}` (calibrated; pairs of track and supervised label; ECE {r['ece_after']:.4f}):",
            "",
            "| predicted | pairs | mean predicted | observed |",
            "|---|---|---|---|",
        ]
        lines += [f"| {b['bin']} | {b['n']} | {b['mean_p']:.3f} | {b['observed']:.3f} |" for b in r["reliability_test"]]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "exported" / "mirtag-tagger.onnx"))
    ap.add_argument("--data", default=None, help="data root (default: MIRTAG_DATA)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "decisions"))
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--min-precision", type=float, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="update the card JSON and MODEL_CARD.md")
    ap.add_argument("--model-card", default=str(ROOT / "exported" / "MODEL_CARD.md"))
    args = ap.parse_args(argv)

    root = D.data_root(args.data)
    card = load_card(args.model)
    raw = dataclasses.replace(card, heads=tuple(dataclasses.replace(h, temperature=None) for h in card.heads))
    tagger = Tagger(raw, Session(raw, "cpu", args.threads), Frontend.from_card(raw))
    taxonomy = {h.name: list(h.labels) for h in card.heads}
    work = Path(args.work) / card.sha256[:12]
    data = {}
    for split, clips in split_clips(root).items():
        print(f"{split}: {len(clips)} clips", file=sys.stderr)
        probs = tag_split(tagger, clips, root, work / f"{split}.npz")
        targets, masks = D.encode_targets(clips, taxonomy)
        data[split] = (clips, probs, targets, masks)

    _, vp, vt, vm = data["validation"]
    _, tp, tt, tm = data["test"]
    heads = {h.name: h for h in raw.heads}
    # a head no validation clip supervises (the distilled ``tags`` head learns from the teacher, not from the
    # labelled data) keeps the decisions the trainer fitted against the teacher's decisions
    supervised = {name for name in heads if name in vm and np.asarray(vm[name]).any()}
    tuned = C.fit_decisions(
        heads,
        vt,
        {k: v for k, v in vp.items() if k in supervised},
        vm,
        beta=args.beta,
        min_precision=args.min_precision,
    )
    tuned = {name: (h if name in supervised else card.head(name)) for name, h in tuned.items()}
    music_head = tuned.get("music")
    # the runtime's music decision on test (calibrated music probability; silence is never music)
    if music_head is not None:
        pm = calibrate(tp["music"], "sigmoid", music_head.temperature)[:, 0]
        music_ok = (pm >= music_head.threshold("music")) & ~tp["silent"].astype(bool)
    else:
        music_ok = ~tp["silent"].astype(bool)
    is_music_clip = np.array([c.music for c in data["test"][0]])
    rep = {
        "model": card.ref,
        "sha256": card.sha256,
        "beta": args.beta,
        "min_precision": args.min_precision,
        "n_validation": len(data["validation"][0]),
        "n_test": len(data["test"][0]),
        "heads": {},
        "kept": sorted(set(tuned) - supervised),
        "music_gate": {
            "music": int(is_music_clip.sum()),
            "music_flagged": int((is_music_clip & ~music_ok).sum()),
            "nonmusic": int((~is_music_clip).sum()),
            "nonmusic_flagged": int((~is_music_clip & ~music_ok).sum()),
        },
    }
    for name, h in tuned.items():
        if name not in supervised:
            print(f"{name}: no supervised labels on validation; the card's decisions are kept", file=sys.stderr)
            continue
        cal = calibrate(tp[name], h.kind, h.temperature)
        entry = {
            "temperature": h.temperature,
            "threshold": None if h.kind == "softmax" else h.threshold(h.labels[0]),
            "max_labels": h.max_labels,
            "nll_before": C.nll(tt[name], tp[name], tm[name], h.kind),
            "nll_after": C.nll(tt[name], cal, tm[name], h.kind),
            "ece_before": C.reliability_table(tt[name], tp[name], tm[name])["ece"],
            "ece_after": C.reliability_table(tt[name], cal, tm[name])["ece"],
            "reliability_test": C.reliability_table(tt[name], cal, tm[name])["rows"],
            "test_old": old_stats(tt[name], tp[name], tm[name], heads[name]),
            "test_new": C.decision_stats(
                tt[name], cal, tm[name], h, h.labels, music=None if name == "music" else music_ok
            ),
        }
        rep["heads"][name] = entry
        print(
            f"{name}: T={h.temperature} thr={entry['threshold']} cap={h.max_labels} "
            f"NLL {entry['nll_before']:.4f}->{entry['nll_after']:.4f} ECE {entry['ece_before']:.4f}->{entry['ece_after']:.4f} "
            f"old {entry['test_old']} new {entry['test_new']}",
            file=sys.stderr,
        )
    (work / "report.json").write_text(json.dumps(rep, indent=1))
    md = markdown(rep)
    (work / "decisions.md").write_text(md + "\n")
    print(md)
    if args.write:
        new_card = dataclasses.replace(card, heads=tuple(tuned[h.name] for h in card.heads))
        new_card.save(card.path)
        mc = Path(args.model_card)
        text = mc.read_text()
        if BEGIN in text:
            text = text[: text.index(BEGIN)] + md + text[text.index(END) + len(END) :]
        else:
            anchor = "## Ablations"
            text = text.replace(anchor, md + "\n\n" + anchor, 1) if anchor in text else text + "\n" + md + "\n"
        mc.write_text(text)
        print(f"wrote {card.path} and {mc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
