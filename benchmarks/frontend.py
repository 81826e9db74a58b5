"""Benchmark: mirtag's frontend against the librosa pipeline, same run, one thread each.

    python benchmarks/frontend.py [--repeat 3]

Times waveform -> windows (decode excluded; resampling 44.1 -> 22.05 kHz
included) for 30-s and 210-s inputs with:

- mirtag: ``Frontend.analyze`` (numba kernels, serial);
- librosa: ``tests/oracle.py`` (librosa.stft + librosa.decompose.hpss, i.e. 2-D
  ``scipy.ndimage.median_filter``), the pipeline a user would write;
- floor: the same librosa pipeline with the medians done by scipy's faster 1-D
  median filter row by row (the floor performance.md says to beat).

Prints seconds (best of --repeat), x-real-time and the ratios as a Markdown table,
plus the same ratios in CPU time (``time.process_time``, best of --repeat): on a
shared machine wall-clock ratios swing with other people's load (the librosa
pipeline, with its large temporaries, suffers more from it than ours), while CPU
time stays close to what an idle machine would show.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import scipy.ndimage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mirtag.runtime.card import FrontendConfig  # noqa: E402
from mirtag.runtime.frontend import Frontend  # noqa: E402
from tests.synth import music_like  # noqa: E402
from tests.oracle import oracle_windows  # noqa: E402

SR_IN = 44100


def floor_pipeline(y: np.ndarray, sr: int, c: FrontendConfig) -> np.ndarray:
    """librosa pipeline with scipy's 1-D median filter applied row by row."""
    y = librosa.resample(y, orig_sr=sr, target_sr=c.sample_rate, res_type="soxr_hq")
    S = np.abs(librosa.stft(y, n_fft=c.n_fft, hop_length=c.hop_length, center=True, pad_mode="constant"))
    kh, kp = c.hpss_kernel
    harm = np.empty_like(S)
    for i in range(S.shape[0]):
        harm[i] = scipy.ndimage.median_filter(S[i], size=kh, mode="reflect")
    perc = np.empty_like(S)
    for j in range(S.shape[1]):
        perc[:, j] = scipy.ndimage.median_filter(S[:, j], size=kp, mode="reflect")
    mh = librosa.util.softmask(harm, perc, power=c.hpss_power, split_zeros=True)
    mp = librosa.util.softmask(perc, harm, power=c.hpss_power, split_zeros=True)
    M = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels)
    mel = np.stack([M @ (S * mh), M @ (S * mp)])
    wf, wh = c.window_frames, c.window_hop
    starts = range(0, mel.shape[2] - wf + 1, wh)
    w = np.stack([mel[:, :, s : s + wf] for s in starts])
    return w / np.maximum(w.max(axis=(2, 3), keepdims=True), 1e-8)


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    ap.add_argument("--lengths", type=float, nargs="+", default=[30.0, 210.0], help="input lengths in seconds")
    args = ap.parse_args()

    print(f"load average at the start: {' '.join(open('/proc/loadavg').read().split()[:3])}\n")
    c = FrontendConfig()
    fe = Frontend(c)
    fe.analyze(music_like(SR_IN, 5.0), SR_IN)  # compile / load the numba cache outside the timing
    rows = []
    for seconds in args.lengths:
        y = music_like(SR_IN, seconds, seed=1)
        ours = best_time(lambda: fe.analyze(y, SR_IN), args.repeat)
        ref = best_time(lambda: oracle_windows(y, SR_IN, c), args.repeat)
        floor = best_time(lambda: floor_pipeline(y, SR_IN, c), args.repeat)
        rows.append((seconds, ours, ref, floor))
        print(f"{seconds:.0f} s done", file=sys.stderr)

    print(
        "| input | mirtag | librosa | scipy 1-D floor | mirtag xRT | librosa xRT | floor xRT | vs librosa | vs floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for seconds, (ours, _), (ref, _), (floor, _) in rows:
        print(
            f"| {seconds:.0f} s | {ours * 1e3:.0f} ms | {ref * 1e3:.0f} ms | {floor * 1e3:.0f} ms "
            f"| {seconds / ours:.0f}x | {seconds / ref:.0f}x | {seconds / floor:.0f}x "
            f"| **{ref / ours:.1f}x** | {floor / ours:.1f}x |"
        )
    print("\nCPU time (time.process_time):\n")
    print("| input | mirtag CPU | librosa CPU | floor CPU | mirtag xRT per core | vs librosa | vs floor |")
    print("|---|---|---|---|---|---|---|")
    for seconds, (_, ours), (_, ref), (_, floor) in rows:
        print(
            f"| {seconds:.0f} s | {ours * 1e3:.0f} ms | {ref * 1e3:.0f} ms | {floor * 1e3:.0f} ms "
            f"| {seconds / ours:.0f}x | **{ref / ours:.1f}x** | {floor / ours:.1f}x |"
        )
    print(f"\nload average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(
        f"\none thread each (NUMBA_NUM_THREADS=OMP_NUM_THREADS=1), best of {args.repeat}; "
        f"input {SR_IN} Hz mono, resampled to {c.sample_rate} Hz; decode excluded",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
