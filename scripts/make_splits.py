"""Write the committed split CSVs (trainer/splits/<dataset>.csv) from the real manifests.

Usage::

    python scripts/make_splits.py --data-root /path/to/data [--seed 0] [--out trainer/splits]

Prints per-split counts per quadrant (4Q), genre (Emotify) and category (ESC-50)
and checks that no 4Q artist spans two splits.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from mirtag.trainer.data import (
    SPLITS,
    data_root,
    leaking_groups,
    make_splits,
    read_4q,
    read_emotify,
    read_esc50,
    write_splits,
)


def _table(clips, splits, label) -> None:
    counts = Counter((splits[c.key], label(c)) for c in clips)
    labels = sorted({label(c) for c in clips})
    width = max(12, *(len(s) for s in labels))
    print(f"  {'':{width}} " + " ".join(f"{s:>10}" for s in SPLITS))
    for lab in labels:
        print(f"  {lab:{width}} " + " ".join(f"{counts[(s, lab)]:>10}" for s in SPLITS))
    totals = Counter(splits[c.key] for c in clips)
    print(f"  {'total':{width}} " + " ".join(f"{totals[s]:>10}" for s in SPLITS))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="data folder (default: $MIRTAG_DATA)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "trainer" / "splits")
    args = ap.parse_args(argv)
    root = data_root(args.data_root)
    readers = {"4q": read_4q, "emotify": read_emotify, "esc50": read_esc50}
    clips = {name: read(root) for name, read in readers.items()}
    splits = make_splits([c for cs in clips.values() for c in cs], seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    print("4Q by quadrant:")
    _table(clips["4q"], splits, lambda c: c.quadrant)
    print("Emotify by genre:")
    _table(clips["emotify"], splits, lambda c: c.stratum)
    print("ESC-50 categories per split:")
    for s in SPLITS:
        cats = sorted({c.category for c in clips["esc50"] if splits[c.key] == s})
        n = sum(splits[c.key] == s for c in clips["esc50"])
        print(f"  {s:>10}: {len(cats)} categories, {n} clips" + (f": {', '.join(cats)}" if s != "train" else ""))

    leaks = leaking_groups(clips["4q"] + clips["esc50"], splits)
    artists = {c.group for c in clips["4q"]}
    if leaks:
        print(f"ERROR: groups in more than one split: {leaks}", file=sys.stderr)
        return 1
    print(f"OK: {len(artists)} 4Q artist groups, none spans two splits; ESC-50 categories disjoint")
    for name in readers:
        n = write_splits(splits, args.out / f"{name}.csv", dataset=name)
        print(f"wrote {args.out / f'{name}.csv'} ({n} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
