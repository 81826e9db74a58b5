"""Benchmark: what ``mirtag write`` costs per file, against decoding the same files (measured in the same run).

    python benchmarks/tagwrite.py [--files N] [--seconds S] [--jobs J] [--dir DIR]

A write must decode each file twice (an md5 of the audio before, for the journal,
and after, for the check), so the floor is two decodes per file. The script makes
N files (half MP3, half FLAC, S seconds of stereo 44.1 kHz each, no tag: the first
write goes through a verified copy), then times, in one run:

1. the reference: ``audio_digest`` of every file, twice (one thread);
2. a dry run (``write_tags``, nothing written);
3. the first apply (copy path: copy, save, fsync, verify, replace);
4. a second apply with other values (in place: the tag now has padding);
5. ``untag`` of both writes;

and prints seconds per file and each step's ratio to the reference. Ratios, not
seconds, are what to compare across machines (this one is shared and noisy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--dir", type=Path, default=None, help="Work folder (default: a temporary one).")
    args = ap.parse_args()

    import soundfile as sf

    from mirtag.runtime.card import resolve_model
    from mirtag.runtime.tagwrite import WriteOptions, audio_digest, untag, write_tags
    from tests.synth import music_like
    from tests.tagfiles import scan_row, write_rows

    work = args.dir or Path(tempfile.mkdtemp(prefix="mirtag-tagwrite-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    card = resolve_model()
    y = music_like(44100, args.seconds, seed=1, channels=2)
    files = []
    for i in range(args.files):
        ext, fmt = ("mp3", "MP3") if i % 2 == 0 else ("flac", "FLAC")
        p = work / f"t{i:03d}.{ext}"
        sf.write(p, y, 44100, format=fmt)
        files.append(p)
    rows = write_rows(work / "rows.jsonl", [scan_row(p, card, genre={"Jazz": 0.9}, moods={"calm": 0.9}) for p in files])

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    ref = timed(lambda: [audio_digest(str(p)) for p in files for _ in range(2)])
    steps = {}
    steps["dry run"] = timed(lambda: list(write_tags(rows, WriteOptions(), jobs=args.jobs)))
    methods: list[str | None] = []

    def apply(opts: WriteOptions) -> None:
        res = list(write_tags(rows, opts, apply=True, jobs=args.jobs))
        bad = [r for r in res if r.status != "written"]
        if bad:
            raise SystemExit(f"write failed: {bad[0].path}: {bad[0].status} {bad[0].reason}")
        methods.extend(r.method for r in res)

    steps["apply (first write: copy)"] = timed(lambda: apply(WriteOptions()))
    steps["apply (second write: in place)"] = timed(
        lambda: apply(WriteOptions(policy="replace", min_confidence=0.005, top_k=3))
    )
    steps["untag"] = timed(lambda: list(untag(work / "rows.jsonl.tagjournal.jsonl", apply=True)))
    n = len(files)
    print(
        f"{n} files x {args.seconds:.0f} s (MP3 + FLAC), jobs={args.jobs}; in place: {methods.count('in place')}, "
        f"copy: {methods.count('copy')}"
    )
    print(f"{'step':36s} {'s/file':>8s} {'x reference':>12s}")
    print(f"{'reference: 2 decodes (audio md5)':36s} {ref / n:8.3f} {1.0:12.2f}")
    for name, sec in steps.items():
        print(f"{name:36s} {sec / n:8.3f} {sec / ref:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
