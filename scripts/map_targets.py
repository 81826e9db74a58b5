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

from mirtag.runtime.genremap import SHOWN_SHARE, cell_shares, load_pair


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--generator")
    ap.add_argument("--model", help="the classifier (default: the one the generator's folder or exported/ names)")
    ap.add_argument("--grid", type=int, default=41)
    ap.add_argument("--samples", type=int, default=10000)
    args = ap.parse_args()
    gm = load_pair(args.generator, args.model)
    shown = []
    print("| seed | genres with >= 3 % of the cells |")
    print("|---|---|")
    for seed in range(10):
        g = gm.grid("genre", (0, 1), args.grid, seed)
        share = cell_shares(g["argmax"], len(g["labels"]))
        present = [f"{g['labels'][i]} {share[i]:.0%}" for i in np.argsort(-share) if share[i] >= SHOWN_SHARE]
        shown.append(len(present))
        print(f"| {seed} | {len(present)}: {', '.join(present)} |")
    n_ok = sum(k >= 3 for k in shown)
    print(f"\ngrids with >= 3 genres: {n_ok}/10 (target >= 8): {'PASS' if n_ok >= 8 else 'FAIL'}")
    dist = gm.distribution("genre", args.samples, seed=0)
    labels = list(dist["counts"])
    gen = np.array([dist["counts"][k] for k in labels], float)
    gen /= gen.sum()
    real_map = gm.generator.provenance.get("real_distribution") or {}
    real = np.array([real_map.get(k, 0.0) for k in labels], float)
    real /= max(real.sum(), 1e-12)
    tv = 0.5 * np.abs(gen - real).sum()
    covered = bool(np.all(gen[real >= 0.03] >= 0.01))
    print("\n| genre | real windows | generated |\n|---|---|---|")
    for k, r, g in zip(labels, real, gen):
        print(f"| {k} | {r:.3f} | {g:.3f} |")
    print(f"\nTV distance over {args.samples} samples: {tv:.3f} (target <= 0.3): {'PASS' if tv <= 0.3 else 'FAIL'}")
    print(f"every genre >= 3 % of real gets >= 1 % generated: {'PASS' if covered else 'FAIL'}")


if __name__ == "__main__":
    main()
