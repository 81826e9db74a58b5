"""Benchmark: classifier windows per second on one onnxruntime CPU thread.

    python benchmarks/model.py [MODEL] [--batch 32] [--windows 2048] [--repeat 5]

MODEL is a .onnx, .onnx.json or model folder (default: the shipped default
classifier). The shipped classifier must run >= 1,000 windows/s here: a 210-s
track is 141 windows, so that is >= 1,490x real time for the CNN alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mirtag.runtime.card import load_card, resolve_model  # noqa: E402
from mirtag.runtime.session import Session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="model path (default: the shipped classifier)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--windows", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    card = resolve_model(None) if args.model is None else load_card(args.model)
    wps = windows_per_second(card, batch=args.batch, windows=args.windows, repeat=args.repeat)
    c = card.frontend
    window_s = c.window_hop * c.hop_length / c.sample_rate  # new audio per window at the window hop
    print("| model | batch | windows/s (1 thread) | x real time (CNN only) |")
    print("|---|---|---|---|")
    print(f"| {card.ref} | {args.batch} | **{wps:,.0f}** | {wps * window_s:,.0f}x |")
    print(f"target >= 1,000 windows/s: {'met' if wps >= 1000 else 'NOT met'}", file=sys.stderr)


def windows_per_second(card, batch: int = 32, windows: int = 2048, repeat: int = 5) -> float:
    """Classifier windows per second on one onnxruntime CPU thread: the best of ``repeat`` runs over
    ``windows`` random windows (after one warm-up batch)."""
    sess = Session(card, device="cpu", threads=1, batch_size=batch)
    x = np.random.default_rng(0).random((windows, *card.frontend.input_shape), dtype=np.float32)
    sess.run(x[:batch])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(x)
        best = min(best, time.perf_counter() - t0)
    return windows / best


if __name__ == "__main__":
    main()
