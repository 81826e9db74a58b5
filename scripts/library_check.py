"""What a classifier says about a folder of music: which genres and moods its ``top`` lists name, how often.

    python scripts/library_check.py FOLDER... [--model exported/mirtag-tagger.onnx] [--old-card OLD.onnx.json]
        [--limit 40] [--seconds 30]

Tags up to ``--limit`` audio files (sorted, evenly picked) from ``--seconds`` in the
middle of each, and prints per head the share of tracks whose ``top`` names each
label, under the card's decision rules (:mod:`mirtag.runtime.decisions`); with
``--old-card``, also under 1.1.0's rule (that card's per-label thresholds, at least
one label, no cap, no music gate) for the same probabilities.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

from mirtag.runtime import Tagger
from mirtag.runtime.card import ModelCard
from mirtag.runtime.decisions import calibrate

AUDIO = {".ogg", ".mp3", ".flac", ".wav", ".opus", ".m4a"}


def old_top(probs: dict, head) -> list[str]:
    ranked = sorted(probs, key=lambda lab: (-probs[lab], head.labels.index(lab)))
    if head.kind == "softmax" and not head.thresholds:
        return ranked[:1]
    keep = [lab for lab in ranked if probs[lab] >= head.threshold(lab)]
    return keep or ranked[:1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--model", default=None)
    ap.add_argument("--old-card", default=None)
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--heads", nargs="*", default=["genre", "moods", "quadrant", "tags"])
    args = ap.parse_args(argv)
    files = sorted(p for f in args.folders for p in Path(f).rglob("*") if p.suffix.lower() in AUDIO and p.is_file())
    if len(files) > args.limit:
        step = len(files) / args.limit
        files = [files[int(i * step)] for i in range(args.limit)]
    tagger = Tagger.load(args.model, device="cpu", threads=2)
    card = tagger.card
    old = None
    if args.old_card:
        old = ModelCard.from_dict(json.loads(Path(args.old_card).read_text()))
    new_counts = {h: collections.Counter() for h in args.heads}
    old_counts = {h: collections.Counter() for h in args.heads}
    best = collections.Counter()
    lengths = collections.defaultdict(list)
    n = not_music = 0
    for f in files:
        import soundfile as sf

        try:
            dur = sf.info(str(f)).duration
        except Exception:  # noqa: BLE001 - a file soundfile cannot read is skipped
            continue
        r = tagger.tag_file(f, offset=max(0.0, dur / 2 - args.seconds / 2), duration=args.seconds)
        n += 1
        not_music += not r.is_music(card)
        for h in args.heads:
            if h not in r.heads:
                continue
            top = r.top(h, card)
            new_counts[h].update(top)
            lengths[h].append(len(top))
            if old is not None and h in {x.name for x in old.heads}:
                # 1.1.0 read uncalibrated probabilities
                spec = card.head(h)
                raw = calibrate(
                    list(r.heads[h].values()), spec.kind, 1 / spec.temperature if spec.temperature else None
                )
                old_counts[h].update(old_top(dict(zip(spec.labels, map(float, raw))), old.head(h)))
        if "genre" in r.heads:
            best[max(r.heads["genre"], key=r.heads["genre"].get)] += 1
    print(f"{n} tracks ({args.seconds:g} s from the middle of each), model {card.ref}")
    print(f"not music under the new rules (no labels from any head): {not_music}/{n}")
    print("most probable genre: " + ", ".join(f"{g} {c}" for g, c in best.most_common()))
    for h in args.heads:
        if not lengths[h]:
            continue
        line = ", ".join(f"{lab} {c / n:.0%}" for lab, c in new_counts[h].most_common(8))
        print(f"{h} (new rules, mean {sum(lengths[h]) / n:.2f} labels): {line}")
        if old_counts[h]:
            line = ", ".join(f"{lab} {c / n:.0%}" for lab, c in old_counts[h].most_common(8))
            print(f"{h} (1.1.0 rule, mean {sum(old_counts[h].values()) / n:.2f} labels): {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
