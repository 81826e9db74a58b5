"""How good are mirtag's "tracks like this"? Nearest-neighbour label agreement on the labelled test split.

    MIRTAG_DATA=/path/to/shared/data python scripts/similar_quality.py [--model PATH] [--k 10] [--device cpu]

Scans the committed test split (4Q and Emotify clips; never used in training)
with the model (default: the shipped classifier) through the scan engine, keeps
each clip's embedding exactly as ``mirtag scan --embeddings`` stores it (float16,
unit length) and, within each dataset's test clips, asks for every clip its k
nearest neighbours by ``Embeddings.nearest`` (the clip itself left out):

- 4Q: the share of neighbours with the same quadrant (Q1-Q4);
- Emotify: the share of neighbours with the same genre (classical, electronic, pop, rock).

Chance is the share a random k other clips would have: sum_c n_c (n_c - 1) / (N (N - 1)).
For comparison, the same search on the rows alone: cosine of every head's
probabilities concatenated (what a host could do without the embeddings).
The interval is a 95% bootstrap over the query clips (2,000 resamples, seed 0).
Prints a Markdown table (stdout) for README.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from mirtag.runtime.embeddings import Embeddings, card_meta, embedding_dim
from mirtag.runtime.scan import Scanner, ScanSettings

REPO = Path(__file__).resolve().parents[1]


def test_clips(data: Path) -> dict[str, list[tuple[str, str]]]:
    """dataset -> [(absolute path, label)] of its test split."""
    out = {}
    for name, label_col in (("4q", "quadrant"), ("emotify", "genre")):
        with open(REPO / "trainer" / "splits" / f"{name}.csv", newline="") as fh:
            test = {r["file"] for r in csv.DictReader(fh) if r["split"] == "test"}
        with open(data / name / f"{name}.csv", newline="") as fh:
            out[name] = [(str(data / r["file"]), r[label_col]) for r in csv.DictReader(fh) if r["file"] in test]
    return out


def agreement(emb: Embeddings, labels: dict[str, str], k: int) -> np.ndarray:
    """Per query clip: the share of its k nearest neighbours (itself excluded) with its label."""
    shares = []
    for i in range(len(emb)):
        hits = emb.nearest(emb.vector(i), n=k, exclude=[i])
        own = labels[emb.key(i)["path"]]
        shares.append(np.mean([labels[h.key["path"]] == own for h in hits]))
    return np.array(shares)


def chance(labels: list[str]) -> float:
    n = len(labels)
    return sum(c * (c - 1) for c in Counter(labels).values()) / (n * (n - 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    data = Path(os.environ.get("MIRTAG_DATA") or REPO.parent / "shared" / "data")
    if not (data / "4q").is_dir():
        print(f"no data at {data}: set MIRTAG_DATA", file=sys.stderr)
        return 2
    clips = test_clips(data)
    settings = ScanSettings(model=args.model, device=args.device, workers=args.workers, embeddings=True)
    rng = np.random.default_rng(0)
    rows_md = []
    with Scanner(settings) as scanner, tempfile.TemporaryDirectory() as tmp:
        card = scanner.card
        for name, items in clips.items():
            labels = dict(items)
            emb = Embeddings.create(Path(tmp) / f"{name}.emb", embedding_dim(card), card_meta(card))
            width = sum(len(h.labels) for h in card.heads)
            probs = Embeddings.create(Path(tmp) / f"{name}.probs", width, card_meta(card))
            failed = 0
            for row in scanner.run([p for p, _ in items]):
                if row["status"] != "ok":
                    failed += 1
                    continue
                emb.add(row, row.pop("embedding"))
                probs.add(row, [row["heads"][h.name]["probs"][lab] for h in card.heads for lab in h.labels])
            emb.close()
            probs.close()
            emb = Embeddings.open(Path(tmp) / f"{name}.emb")
            shares = agreement(emb, labels, args.k)
            by_probs = agreement(Embeddings.open(Path(tmp) / f"{name}.probs"), labels, args.k).mean()
            boot = [rng.choice(shares, len(shares)).mean() for _ in range(2000)]
            lo, hi = np.percentile(boot, [2.5, 97.5])
            what = "quadrant" if name == "4q" else "genre"
            base = chance([labels[k["path"]] for k in emb.key_records()])
            rows_md.append(
                f"| {name} test ({len(emb)} clips{', %d failed' % failed if failed else ''}) | same {what} | "
                f"**{shares.mean():.1%}** [{lo:.1%}, {hi:.1%}] | {by_probs:.1%} | {base:.1%} | "
                f"{shares.mean() / base:.2f}x |"
            )
    print(f"{card.ref}, {args.k} nearest neighbours by cosine of the stored float16 embedding, within each test set:\n")
    print(
        f"| clips | neighbour shares the query's | share of the {args.k} nearest (95% CI) "
        "| same, by the heads' probabilities | chance | lift |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows_md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
