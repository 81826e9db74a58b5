"""Kill-and-resume torture: ``mirtag scan`` stopped at random moments, re-run until done, then checked.

Each cycle starts a fresh output (rotating ``.jsonl``, ``.csv`` and ``.json``) and runs the same
``mirtag scan`` over a generated library again and again; each run gets a seeded random signal
(SIGKILL, SIGINT or SIGTERM) after a seeded random delay between 0 and 1.2 times an uninterrupted
scan's wall time, until a run finishes on its own. Then the output must hold exactly one row per
file, with the status the uninterrupted reference scan gave it, no duplicate, no torn line, and no
lock, temporary or journal file left behind; no run may print a traceback.

Usage::

    python benchmarks/kill_resume.py --cycles 100 --files 40 --seed 0            # the README figures
    python benchmarks/kill_resume.py --cycles 3 --files 10 --json                 # the CI version

Prints one line per cycle and a summary (runs, kills by signal, rows expected/found, duplicates,
torn lines, leftovers, tracebacks); exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

TINY = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny"
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}


FAILURE_KEYS = (
    "missing",
    "unexpected",
    "duplicates",
    "torn_lines",
    "status_mismatches",
    "leftover_files",
    "tracebacks",
    "bad_exits",
)
"""Counters that must all stay 0 for a PASS."""


def make_library(root: Path, n: int, seed: int) -> None:
    """``n`` files: mostly short tones-and-noise tracks (wav/flac/ogg, 1-8 s), every 8th a bad one."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sub = root / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        if i % 8 == 7:
            (sub / f"bad{i:03d}.wav").write_bytes(b"RIFF not really" * (i + 1))
            continue
        sr = 22050
        seconds = float(rng.uniform(1.0, 8.0))
        t = np.arange(int(sr * seconds)) / sr
        y = 0.3 * np.sin(2 * np.pi * rng.uniform(110, 880) * t) + 0.05 * rng.standard_normal(len(t))
        fmt, ext = [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg")][i % 3]
        sf.write(sub / f"t{i:03d}.{ext}", y.astype(np.float32), sr, format=fmt)


def read_output(out: Path) -> tuple[list[dict], int]:
    """(rows, torn lines) of a finished output; a torn line is one that does not parse."""
    data = out.read_bytes()
    if out.suffix == ".json":
        try:
            return json.loads(data), 0
        except json.JSONDecodeError:
            return [], 1
    if out.suffix == ".jsonl":
        rows, torn = [], 0
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                torn += 1
        return rows, torn + (1 if data and not data.endswith(b"\n") else 0)
    reader = csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline=""))
    header = next(reader)
    rows, torn = [], 0
    for rec in reader:
        if len(rec) != len(header):
            torn += 1
            continue
        rows.append(dict(zip(header, rec)))
    return rows, torn + (1 if data and not data.endswith(b"\n") else 0)


def leftovers(out: Path) -> list[str]:
    names = [p.name for p in out.parent.iterdir()]
    bad = [n for n in names if n.endswith(".tmp") or n.endswith(".lock")]
    if out.suffix == ".json":
        bad += [n for n in names if n.endswith(".partial.jsonl")]
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--files", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", default=str(TINY), help="model for the scans (default: the tiny test model)")
    ap.add_argument("--max-runs", type=int, default=60, help="runs per cycle before giving up")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the library and outputs here")
    ap.add_argument("--json", action="store_true", help="print the summary as one JSON line too")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mirtag-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    lib = work / "lib"
    if not lib.exists():
        make_library(lib, args.files, args.seed)
    base = [
        sys.executable,
        "-m",
        "mirtag.cli.main",
        "scan",
        str(lib),
        "--model",
        args.model,
        "--workers",
        str(args.workers),
        "--device",
        "cpu",
        "-q",
    ]

    # The reference: one uninterrupted scan (its wall time scales the kill delays).
    ref_out = work / "reference.jsonl"
    ref_out.unlink(missing_ok=True)
    t0 = time.monotonic()
    ref = subprocess.run([*base, "--out", str(ref_out)], capture_output=True, text=True, check=False)
    full_s = time.monotonic() - t0
    if ref.returncode != 0:
        print(f"reference scan failed ({ref.returncode}): {ref.stderr.strip()}", file=sys.stderr)
        return 1
    expected = {r["path"]: r["status"] for r in read_output(ref_out)[0]}
    print(f"library: {len(expected)} files; uninterrupted scan {full_s:.1f} s", flush=True)

    keys = (
        "runs",
        "kills",
        "kills_KILL",
        "kills_INT",
        "kills_TERM",
        "cycles_done",
        "rows_expected",
        "rows_found",
        *FAILURE_KEYS,
    )
    total = Counter(dict.fromkeys(keys, 0))
    exit_codes: Counter = Counter()
    t_start = time.monotonic()
    for cycle in range(args.cycles):
        ext = ["jsonl", "csv", "json"][cycle % 3]
        out = work / f"c{cycle:04d}.{ext}"
        runs = kills = 0
        done = False
        while runs < args.max_runs and not done:
            runs += 1
            name = rng.choice(sorted(SIGNALS))
            delay = rng.uniform(0.0, 1.2 * full_s)
            proc = subprocess.Popen([*base, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            signalled = False
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(SIGNALS[name])
                signalled = True
            err = proc.communicate(timeout=300)[1].decode("utf-8", "replace")
            if signalled and proc.returncode != 0:  # a signal that came as the scan finished stopped nothing
                kills += 1
                total[f"kills_{name}"] += 1
            exit_codes[proc.returncode] += 1
            if "Traceback" in err:
                total["tracebacks"] += 1
                print(f"  traceback in cycle {cycle} run {runs}:\n{err}", file=sys.stderr)
            if proc.returncode == 1:  # a signal should give 130/143 (or death by it): say what was printed
                print(
                    f"  exit 1 in cycle {cycle} run {runs} ({name} after {delay:.2f} s): {err.strip()[-300:]}",
                    file=sys.stderr,
                )
            if proc.returncode not in (0, 1, 130, 143, -9, -2, -15):
                total["bad_exits"] += 1
            done = proc.returncode == 0
        rows, torn = read_output(out) if out.exists() else ([], 0)
        paths = Counter(r["path"] for r in rows)
        found = {p: r["status"] for p, r in ((r["path"], r) for r in rows)}
        total["runs"] += runs
        total["kills"] += kills
        total["cycles_done"] += done
        total["rows_expected"] += len(expected)
        total["rows_found"] += len(paths)
        total["missing"] += len(set(expected) - set(paths))
        total["unexpected"] += len(set(paths) - set(expected))
        total["duplicates"] += sum(n - 1 for n in paths.values())
        total["torn_lines"] += torn
        total["status_mismatches"] += sum(1 for p, s in found.items() if p in expected and expected[p] != s)
        left = leftovers(out)
        total["leftover_files"] += len(left)
        print(
            f"cycle {cycle:3d} {ext:5s}: {runs:2d} runs, {kills:2d} kills, {len(paths)}/{len(expected)} rows, "
            f"{sum(n - 1 for n in paths.values())} duplicates, {torn} torn"
            + (f", leftovers {left}" if left else "")
            + ("" if done else ", NOT FINISHED"),
            flush=True,
        )
    total["wall_s"] = round(time.monotonic() - t_start, 1)
    ok = (
        total["cycles_done"] == args.cycles
        and total["rows_found"] == total["rows_expected"]
        and not any(total[k] for k in FAILURE_KEYS)
    )
    print(
        f"summary: {args.cycles} cycles, {total['runs']} runs, {total['kills']} kills "
        f"(KILL {total['kills_KILL']}, INT {total['kills_INT']}, TERM {total['kills_TERM']}), "
        f"rows expected {total['rows_expected']}, found {total['rows_found']}, missing {total['missing']}, "
        f"duplicates {total['duplicates']}, torn lines {total['torn_lines']}, "
        f"status mismatches {total['status_mismatches']}, leftover files {total['leftover_files']}, "
        f"tracebacks {total['tracebacks']}; exit codes {dict(sorted(exit_codes.items()))}; "
        f"{total['wall_s']} s: {'PASS' if ok else 'FAIL'}",
        flush=True,
    )
    if args.json:
        print(
            json.dumps(
                {
                    **total,
                    "cycles": args.cycles,
                    "seed": args.seed,
                    "files": len(expected),
                    "exit_codes": {str(k): v for k, v in exit_codes.items()},
                    "pass": ok,
                }
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
