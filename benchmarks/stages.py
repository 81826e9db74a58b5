"""Where a scan's time goes: each stage of one file, timed alone on one thread.

    python benchmarks/stages.py FILE [--model PATH] [--repeat 3]

Runs the stages of the scan's per-file path one after another on ``FILE`` (a
3.5-min 44.1 kHz stereo MP3 in benchmarks/scan.py), each timed on its own, best
of ``--repeat``, with one numba / BLAS / onnxruntime thread:

- decode: libsndfile blocks mixed to mono at the native rate (``audio.stream``
  without resampling): the decode-only floor;
- resample: soxr HQ stream to the card's rate;
- STFT: framing + float32 rfft + magnitude (``dsp.stft_frames``);
- medians: the median along time (``dsp.median_axis0_into``) and the median
  along frequency (timed alone with ``dsp.median_filter``; in the frontend it
  runs inside the fused pass);
- masks + mel: the fused pass (``dsp.hpss_mel``) less its percussive median;
- windows: cut, compress, max-normalise (``frontend.cut_windows``);
- inference: the model on the windows, batches of 64, one onnxruntime thread;
- IPC: the windows pickled through a pipe to another process and back as the
  scan workers send them (``multiprocessing.Pipe``; measured as a round trip,
  halved);
- output: the row encoded as a JSON line and written.

Prints a Markdown table: seconds, share of the sum, x-real-time of each stage
alone, and the implied full-file x-real-time per core next to the decode-only
floor.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mirtag.runtime import audio, dsp  # noqa: E402
from mirtag.runtime.card import ModelCard, load_card  # noqa: E402
from mirtag.runtime.frontend import Frontend, cut_windows, window_starts  # noqa: E402

BATCH = 64


@dataclass
class Stage:
    name: str
    seconds: float
    note: str = ""


def best(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of ``repeat`` calls, and the last result."""
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    return t_best, out


def _echo(conn) -> None:  # pragma: no cover - runs in a child
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg)


def ipc_round_trip(windows: np.ndarray, silent: np.ndarray, repeat: int) -> float:
    """Seconds to send the windows one way, as the worker does (('win', id, w, silent) per 24-s batch)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_echo, args=(child,), daemon=True)
    proc.start()
    child.close()
    # The frontend sends what each block completes: about 16 windows at a time.
    step = 16
    batches = [(windows[i : i + step], silent[i : i + step]) for i in range(0, len(windows), step)]

    def trip():
        # A reader thread keeps the pipe draining, as the scan's parent does.
        got = []
        reader = threading.Thread(target=lambda: got.extend(parent.recv() for _ in batches))
        reader.start()
        for i, (w, s) in enumerate(batches):
            parent.send(("win", i, w, s))
        reader.join()
        return got

    try:
        seconds, _ = best(trip, repeat)
    finally:
        parent.send(None)
        proc.join(5)
        parent.close()
    return seconds / 2


def stage_profile(path: str | os.PathLike[str], card: ModelCard, repeat: int = 3) -> tuple[list[Stage], float]:
    """The stages of one file; returns them and the file's duration in seconds."""
    from mirtag.runtime.session import Session
    from mirtag.runtime.tagger import WindowAccumulator, warmup

    warmup()
    c = card.frontend
    fe = Frontend(c)
    stages: list[Stage] = []

    t, blocks = best(lambda: list(audio.stream(path, None, block_seconds=10.0)), repeat)
    y_native = np.concatenate(blocks)
    native = audio.info(path).samplerate
    seconds = y_native.size / native
    stages.append(Stage("decode + mono (libsndfile, native rate)", t, "the decode-only floor"))

    def resample():
        import soxr

        rs = soxr.ResampleStream(native, c.sample_rate, 1, dtype="float32", quality="HQ")
        parts = [rs.resample_chunk(b) for b in blocks] + [rs.resample_chunk(np.zeros(0, np.float32), last=True)]
        return np.concatenate(parts)

    t, y = best(resample, repeat)
    stages.append(Stage(f"resample {native} -> {c.sample_rate} Hz (soxr HQ)", t))

    pad = c.n_fft // 2
    ypad = np.zeros(y.size + 2 * pad, np.float32)
    ypad[pad : pad + y.size] = y
    n_frames = 1 + (ypad.size - c.n_fft) // c.hop_length
    t, S = best(lambda: dsp.stft_frames(ypad, fe.window, c.hop_length, 0, n_frames), repeat)
    stages.append(Stage("STFT (framing, float32 rfft, magnitude)", t))

    kh, kp = c.hpss_kernel
    rows = dsp.reflect_indices(-(kh // 2), n_frames + kh // 2, n_frames)
    harm = np.empty_like(S)
    t_h, _ = best(lambda: dsp.median_axis0_into(S, rows, harm, kh), repeat)
    t_p, _ = best(lambda: dsp.median_filter(S, kp, axis=1), repeat)
    stages.append(Stage(f"median along time ({kh} frames)", t_h))
    stages.append(Stage(f"median along frequency ({kp} bins)", t_p, "runs inside the fused pass"))
    t_f, mel = best(
        lambda: dsp.hpss_mel(
            S, harm, fe.mel_basis, perc_kernel=kp, power=c.hpss_power, margin=c.hpss_margin, mel_power=c.mel_power
        ),
        repeat,
    )
    stages.append(
        Stage("soft masks + mel projections", max(t_f - t_p, 0.0), f"fused pass {t_f * 1e3:.0f} ms less the median")
    )

    starts = window_starts(n_frames, c)
    t, (windows, silent) = best(lambda: cut_windows(mel, starts, c), repeat)
    stages.append(Stage(f"windows ({len(starts)}: cut, compress, normalise)", t))

    session = Session(card, "cpu", 1, BATCH)
    session.run(windows[:1])

    def infer():
        acc = WindowAccumulator(card)
        for i in range(0, len(windows), BATCH):
            acc.add(session.run(windows[i : i + BATCH]), silent[i : i + BATCH])
        return acc.result(seconds)

    t, result = best(infer, repeat)
    stages.append(Stage("inference (onnxruntime, 1 thread)", t))

    t = ipc_round_trip(windows, silent, repeat)
    stages.append(Stage(f"IPC: windows to the parent ({windows.nbytes / 1e6:.1f} MB float32, pickled)", t))

    row = {"path": str(path), "status": "ok", "duration_s": seconds, "heads": {k: v for k, v in result.heads.items()}}

    def output():
        buf = io.StringIO()
        buf.write(json.dumps(row) + "\n")
        return buf

    t, _ = best(output, repeat)
    stages.append(Stage("output (JSON line)", t))
    return stages, seconds


def stage_table(stages: list[Stage], seconds: float, name: str) -> str:
    total = sum(s.seconds for s in stages)
    lines = [
        f"| stage ({name}, {seconds:.0f} s of audio, one thread) | ms | share | xRT alone | |",
        "|---|---:|---:|---:|---|",
    ]
    for s in stages:
        xrt = seconds / s.seconds if s.seconds > 0 else float("inf")
        lines.append(f"| {s.name} | {s.seconds * 1e3:.1f} | {s.seconds / total:.1%} | {xrt:,.0f}x | {s.note} |")
    lines.append(f"| **sum** | **{total * 1e3:.0f}** | 100% | **{seconds / total:,.0f}x** per core | |")
    floor = stages[0].seconds
    lines.append(
        f"\nSum of stages: {seconds / total:,.0f}x real time per core, so about {2 * seconds / total:,.0f}x on 2 cores "
        f"if nothing else ran; the decode-only floor is {seconds / floor:,.0f}x per core "
        f"({2 * seconds / floor:,.0f}x on 2)."
    )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path, help="an audio file (benchmarks/scan.py uses a 3.5-min MP3)")
    ap.add_argument("--model", help="model path (default: the shipped classifier)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per stage (best is kept)")
    args = ap.parse_args()
    from mirtag.runtime.card import resolve_model

    card = load_card(args.model) if args.model else resolve_model(None)
    stages, seconds = stage_profile(args.file, card, args.repeat)
    print(stage_table(stages, seconds, args.file.name))


if __name__ == "__main__":
    main()
