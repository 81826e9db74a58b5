"""Benchmark: ``mirtag similar`` query latency on 10k, 100k and 1M stored 256-d vectors.

    python benchmarks/similar.py [--sizes 10000,100000,1000000] [--queries 20] [--dir /tmp/mirtag-similar]

For each size N an embeddings file of N random unit vectors (float16, 256-d, as
``mirtag scan --embeddings`` writes them) is built once in ``--dir`` and kept.
Then, in the same run:

- **mirtag**: ``Embeddings.open(file).nearest(q, n=20)``: the exact, blocked
  cosine search over the memory-mapped float16 matrix (the page cache warm after
  the first query; the first query's time is shown apart as "cold-ish": the
  file was just written, so it is in the page cache anyway unless evicted).
- **reference**: the same search done the naive way on a float32 matrix already
  in RAM (``X @ q`` then ``argpartition``), which needs 4N x 256 bytes resident.

Printed: median latency per query of each, their ratio, the file size, and the
memory of a fresh process that opens the file and runs five queries: its
anonymous (private) resident memory, which is what the queries cost in RAM,
and its file-backed resident pages (the memory map: page cache the OS may drop
at any time). The reference holds its whole float32 matrix privately (4N x 256
bytes). An approximate index is only worth adding if the 1M latency is beyond
interactive use (> ~1 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mirtag.runtime.embeddings import Embeddings


def build(path: Path, n: int, dim: int = 256, chunk: int = 100_000) -> None:
    if path.exists():
        try:
            if len(Embeddings.open(path)) == n:
                return
        except Exception:  # noqa: BLE001 - rebuild anything unreadable
            pass
    rng = np.random.default_rng(n)
    emb = Embeddings.create(path, dim, {"model": "benchmark@0", "model_sha256": "0" * 64})
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        keys = [
            {"path": f"/music/artist{(s + i) // 100:05d}/track{s + i:07d}.flac", "size": 1, "mtime_ns": 1}
            for i in range(m)
        ]
        emb.add_many(keys, rng.standard_normal((m, dim)).astype(np.float32))
    emb.close()


_PROBE = """
import sys, numpy as np
from mirtag.runtime.embeddings import Embeddings
emb = Embeddings.open(sys.argv[1])
for q in np.random.default_rng(1).standard_normal((5, emb.dim)).astype(np.float32):
    emb.nearest(q, n=20)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if line.startswith(("RssAnon", "RssFile")))
print(int(status["RssAnon"].split()[0]) / 1024, int(status["RssFile"].split()[0]) / 1024)
"""


def probe_memory(path: Path) -> tuple[float, float]:
    """(anonymous MB, file-backed MB) resident in a fresh process after five queries."""
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, check=True)
    anon, files = out.stdout.split()
    return float(anon), float(files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--dir", default="/tmp/mirtag-similar")
    args = ap.parse_args()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    print(
        "| vectors | file MB | mirtag first query ms | mirtag median ms | reference (float32 in RAM) median ms | ratio "
        "| query process: private MB / mapped file MB | reference matrix MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        path = out / f"vec{n}.emb"
        build(path, n)
        queries = rng.standard_normal((args.queries, 256)).astype(np.float32)
        emb = Embeddings.open(path)
        times = []
        for q in queries:
            t = time.perf_counter()
            hits = emb.nearest(q, n=20)
            times.append(time.perf_counter() - t)
        assert len(hits) == 20
        # The reference: the whole matrix as float32 in RAM (loading it is not timed).
        x = np.asarray(emb.vectors, dtype=np.float32)
        ref = []
        for q in queries:
            t = time.perf_counter()
            qn = q / np.linalg.norm(q)
            scores = x @ qn
            top = np.argpartition(-scores, 19)[:20]
            top = top[np.argsort(-scores[top])]
            ref.append(time.perf_counter() - t)
        assert [h.index for h in emb.nearest(queries[-1], n=20)] == list(top)  # same answer
        del x
        mine, theirs = statistics.median(times[1:] or times), statistics.median(ref)
        size_mb = (os.path.getsize(path) + os.path.getsize(str(path) + ".keys")) / 1e6
        anon, mapped = probe_memory(path)
        print(
            f"| {n:,} | {size_mb:,.0f} | {times[0] * 1e3:,.1f} | **{mine * 1e3:,.1f}** | {theirs * 1e3:,.1f} | "
            f"{mine / theirs:.2f}x | {anon:,.0f} / {mapped:,.0f} | {n * 256 * 4 / 2**20:,.0f} |",
            flush=True,
        )
        emb.close()


if __name__ == "__main__":
    main()
