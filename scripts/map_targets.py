"""Check the genre-map targets on the shipped generator + classifier (runtime only, no torch).

    python scripts/map_targets.py [--generator PATH] [--model CLASSIFIER] [--grid 41] [--samples 10000]

- For seeds 0-9, how many (dims 0 1) grids show >= 3 genres, a genre showing when it
  owns >= 3 % of the cells (target: at least 8 of 10).
- The genre distribution of N generated samples against the classifier's
  distribution on real windows (stored in the generator card at training time):
  total variation distance (target <= 0.3), and every genre that is >= 3 % of real
  predictions gets >= 1 % of the generated samples.
"""

from __future__ import annotations

import argparse

import numpy as np

from mirtag.runtime.genremap import (
    COVERAGE_GENERATED_SHARE,
    COVERAGE_REAL_SHARE,
    MAP_SEEDS,
    MAPS_TARGET,
    MIN_LABELS_SHOWN,
    SHOWN_SHARE,
    TV_TARGET,
    cell_shares,
    load_pair,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator")
    ap.add_argument("--model", help="the classifier (default: the one the generator's folder or exported/ names)")
    ap.add_argument("--grid", type=int, default=41)
    ap.add_argument("--samples", type=int, default=10000)
    args = ap.parse_args()
    gm = load_pair(args.generator, args.model)
    shown = []
    print(f"| seed | genres with >= {SHOWN_SHARE:.0%} of the cells |")
    print("|---|---|")
    for seed in MAP_SEEDS:
        g = gm.grid("genre", (0, 1), args.grid, seed)
        share = cell_shares(g["argmax"], len(g["labels"]))
        present = [f"{g['labels'][i]} {share[i]:.0%}" for i in np.argsort(-share) if share[i] >= SHOWN_SHARE]
        shown.append(len(present))
        print(f"| {seed} | {len(present)}: {', '.join(present)} |")
    n_ok = sum(k >= MIN_LABELS_SHOWN for k in shown)
    verdict = "PASS" if n_ok >= MAPS_TARGET else "FAIL"
    print(f"\ngrids with >= {MIN_LABELS_SHOWN} genres: {n_ok}/{len(MAP_SEEDS)} (target >= {MAPS_TARGET}): {verdict}")
    dist = gm.distribution("genre", args.samples, seed=0)
    labels = list(dist["counts"])
    gen = np.array([dist["counts"][k] for k in labels], float)
    gen /= gen.sum()
    real_map = gm.generator.provenance.get("real_distribution") or {}
    real = np.array([real_map.get(k, 0.0) for k in labels], float)
    real /= max(real.sum(), 1e-12)
    tv = 0.5 * np.abs(gen - real).sum()
    covered = bool(np.all(gen[real >= COVERAGE_REAL_SHARE] >= COVERAGE_GENERATED_SHARE))
    print("\n| genre | real windows | generated |\n|---|---|---|")
    for k, r, g in zip(labels, real, gen):
        print(f"| {k} | {r:.3f} | {g:.3f} |")
    print(
        f"\nTV distance over {args.samples} samples: {tv:.3f} (target <= {TV_TARGET}): {'PASS' if tv <= TV_TARGET else 'FAIL'}"
    )
    print(
        f"every genre >= {COVERAGE_REAL_SHARE:.0%} of real gets >= {COVERAGE_GENERATED_SHARE:.0%} generated: "
        f"{'PASS' if covered else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
