"""Benchmark: the Ray engine against the local engine on one machine, at 1 and 2 CPUs, in the same run.

    python benchmarks/ray_scan.py [--model PATH] [--library DIR] [--repeat N] [--quick]

What it shows is Ray's overhead, not a speed-up: on one machine both engines do the same decode, frontend and
inference work; Ray adds its start (a local Ray instance: GCS, raylet, workers), task scheduling per file and
the trip of every window through the object store.

Steps (one run, same model, same files, page cache warm):

1. Libraries, written once under ``--library`` (44.1 kHz stereo FLAC of ``tests/synth.music_like``):
   10 x 3.5-min tracks (per-file costs hardly matter) and 40 x 30-s clips (per-file costs show).
2. For CPUs = 1 and 2 (the processes pinned to that many cores with ``sched_setaffinity``), each library:
   ``mirtag scan LIB --workers N`` (local) and ``mirtag scan LIB --engine ray --workers N`` (a local Ray
   instance with N CPUs, started by the command), as subprocesses timed on the wall clock, noting when the
   first row reaches the output (start-up: Ray's instance, workers and actors; model load; first file).
   ``--repeat N`` interleaves N runs of each and keeps the fastest.
3. Table: wall seconds, Ray / local, Ray's extra seconds (if they stay about the same for 20 and 35 min of
   audio, they are a fixed start-up cost, not a per-file one), x real time, time to the first row. The rows of
   the two engines are compared: statuses equal, largest probability difference.

A failing scan prints its stderr and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirtag.runtime.card import load_card, resolve_model  # noqa: E402
from mirtag.runtime.errors import ModelLoadError  # noqa: E402
from tests.synth import music_like  # noqa: E402

TINY_MODEL = ROOT / "tests" / "fixtures" / "tiny"
N_CLIPS = 40
N_TRACKS = 10
DEFAULT_LIBRARY = Path("/tmp/mirtag-bench-library/ray")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def mirtag_command() -> list[str]:
    beside = Path(sys.executable).with_name("mirtag")
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "mirtag.cli.main"]


def run_scan(label: str, path: Path, out: Path, model: str, cpus: int, engine: str) -> tuple[float, float, list[dict]]:
    """(wall s, s to the first row on disk, rows) of ``mirtag scan`` pinned to ``cpus`` cores."""
    cmd = [
        *mirtag_command(),
        "scan",
        str(path),
        "--out",
        str(out),
        "--workers",
        str(cpus),
        "--model",
        model,
        "--device",
        "cpu",
        "--force",
        "--quiet",
        "--engine",
        engine,
    ]
    core_set = set(sorted(os.sched_getaffinity(0))[:cpus])
    out.unlink(missing_ok=True)
    first = None
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=lambda: os.sched_setaffinity(0, core_set)
        )
        while proc.poll() is None:
            if first is None and out.exists() and b"\n" in out.read_bytes()[: 1 << 16]:
                first = time.perf_counter() - t0
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            log(f"FAILED: {label}: `{' '.join(cmd)}` exited with {proc.returncode}\n{err.read().decode()[-4000:]}")
            sys.exit(1)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    first = wall if first is None else first
    log(f"  {label}: {len(rows)} rows in {wall:.2f} s (first row after {first:.2f} s)")
    return wall, first, rows


def max_diff(a: list[dict], b: list[dict]) -> tuple[bool, float]:
    """(statuses all equal, largest probability difference) between two engines' rows."""
    by_a = {r["path"]: r for r in a}
    by_b = {r["path"]: r for r in b}
    same = by_a.keys() == by_b.keys() and all(by_a[p]["status"] == by_b[p]["status"] for p in by_a)
    worst = 0.0
    for p, ra in by_a.items():
        rb = by_b.get(p)
        if rb is None or ra["status"] != "ok" or rb["status"] != "ok":
            continue
        for head, info in ra["heads"].items():
            for label, v in info["probs"].items():
                worst = max(worst, abs(v - rb["heads"][head]["probs"][label]))
    return same, worst


def make_files(folder: Path, n: int, seconds: float, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"{int(seconds)}s_{i:02d}.flac"
        if not path.exists():
            tmp = path.with_name(".tmp.flac")
            sf.write(tmp, music_like(44100, seconds, seed=seed + i, channels=2), 44100, format="FLAC")
            tmp.rename(path)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="model .onnx/.onnx.json or folder (default: the shipped classifier)")
    ap.add_argument("--library", type=Path, default=DEFAULT_LIBRARY)
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine and library (interleaved; best kept)")
    ap.add_argument("--quick", action="store_true", help="3 long tracks instead of 10, and 1 CPU only")
    args = ap.parse_args()
    if args.model:
        model = args.model
    else:
        try:
            model = str(resolve_model().onnx_path)
        except ModelLoadError:
            model = str(TINY_MODEL)
    card = load_card(model)
    n_tracks = 3 if args.quick else N_TRACKS
    tracks = make_files(args.library / f"tracks{n_tracks}", n_tracks, 210.0, 1000)
    clips = make_files(args.library / "clips", N_CLIPS, 30.0, 2000)
    sets = [(f"{n_tracks} x 3.5-min", tracks, n_tracks * 210.0), (f"{N_CLIPS} x 30-s", clips, N_CLIPS * 30.0)]
    for _, folder, _ in sets:
        for p in folder.rglob("*"):
            if p.is_file():
                p.read_bytes()  # page cache warm for both engines
    cpus_list = [1] if args.quick else [1, 2]
    if len(os.sched_getaffinity(0)) < max(cpus_list):
        log(f"only {len(os.sched_getaffinity(0))} CPUs available")
        sys.exit(1)
    log(f"model: {card.ref}; ray {_ray_version()}; {os.cpu_count()} CPUs on this machine")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "mirtag-ray-bench"
    work.mkdir(exist_ok=True)
    run_scan("warm-up (numba cache)", clips / "30s_00.flac", work / "warm.jsonl", model, 1, "local")
    table = []
    for cpus in cpus_list:
        log(f"\n{cpus} CPU(s)")
        for name, folder, seconds in sets:
            best: dict[str, tuple[float, float, list[dict]]] = {}
            for i in range(args.repeat):  # interleaved, best of N: the machine is shared
                for engine in ("local", "ray"):
                    res = run_scan(f"{engine} {name} #{i + 1}", folder, work / f"{engine}.jsonl", model, cpus, engine)
                    if engine not in best or res[0] < best[engine][0]:
                        best[engine] = res
            (local_s, local_first, local_rows), (ray_s, ray_first, ray_rows) = best["local"], best["ray"]
            same, worst = max_diff(local_rows, ray_rows)
            table.append((cpus, name, seconds, local_s, ray_s, local_first, ray_first, same, worst))
    log(
        "\n| CPUs | library | local s | Ray s | Ray / local | Ray - local s | local xRT | Ray xRT "
        "| first row: local / Ray s | rows agree |"
    )
    log("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for cpus, name, seconds, local_s, ray_s, local_first, ray_first, same, worst in table:
        log(
            f"| {cpus} | {name} ({seconds / 60:.0f} min) | {local_s:.1f} | {ray_s:.1f} | {ray_s / local_s:.2f}x "
            f"| {ray_s - local_s:+.1f} | {seconds / local_s:.0f}x | {seconds / ray_s:.0f}x "
            f"| {local_first:.1f} / {ray_first:.1f} "
            f"| {'statuses equal' if same else 'STATUSES DIFFER'}, max abs dp {worst:.1e} |"
        )
    load = os.getloadavg()
    log(f"\nload average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs")
    if not all(row[7] and row[8] <= 1e-5 for row in table):
        log("\nFAILED: the engines' rows differ")
        sys.exit(1)


def _ray_version() -> str:
    try:
        import importlib.metadata

        return importlib.metadata.version("ray")
    except Exception:  # noqa: BLE001
        return "not installed"


if __name__ == "__main__":
    main()
