"""A synthetic library of real-format audio files for the scan benchmarks.

    python benchmarks/library.py [--library DIR] [--quick]

Builds (once; reused while its manifest matches) 44.1 kHz stereo MP3 and FLAC
files of ``music_like`` audio (tests/synth.py: chords with vibrato, kick,
hi-hats, noise). Files are written block by block (30 s at a time), so even the
60-minute file never sits in memory whole. Layout under ``DIR/<full|quick>/``::

    main/mp3_210/   the 3.5-min MP3s (also scanned alone, as a sub-library)
    main/mixed/     FLAC of 30 s - 2 min and the 10-min files (MP3 + FLAC)
    long/           one long MP3 (60 min; 10 min with --quick), for the memory check
    warmup/         one 30-s FLAC for a warm-up scan (fills numba's cache)
    manifest.json   each finished file's spec and size (files are rebuilt only when they differ)

Durations in the manifest are the nominal ones written (exact for FLAC; MP3
decoders may add or drop encoder padding, a few ms).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SR = 44100
CHANNELS = 2
BLOCK_S = 30.0  # a multiple of music_like's 0.5-s beat, so blocks join on the beat grid
LAYOUT_VERSION = 1
DEFAULT_LIBRARY = Path("/tmp/mirtag-bench-library")

FORMATS = {
    "mp3": dict(format="MP3", subtype="MPEG_LAYER_III"),
    "flac": dict(format="FLAC", subtype="PCM_16"),
}


@dataclass(frozen=True)
class TrackSpec:
    rel: str
    """Path relative to the library root."""
    seconds: float
    seed: int

    @property
    def ext(self) -> str:
        return self.rel.rsplit(".", 1)[1]


def library_spec(quick: bool) -> list[TrackSpec]:
    """The files of the full or the quick library."""
    specs: list[TrackSpec] = []
    seed = 1000
    if quick:
        n_210, flacs, tens, long_s = 3, [30.0, 75.0], [], 600.0
    else:
        n_210, flacs, tens, long_s = 12, [30.0, 60.0, 90.0, 120.0], [("mp3", 600.0), ("flac", 600.0)], 3600.0
    for i in range(n_210):
        specs.append(TrackSpec(f"main/mp3_210/track_{i:02d}.mp3", 210.0, seed))
        seed += 1
    for s in flacs:
        specs.append(TrackSpec(f"main/mixed/clip_{int(s):03d}s.flac", s, seed))
        seed += 1
    for ext, s in tens:
        specs.append(TrackSpec(f"main/mixed/long_{int(s // 60)}min.{ext}", s, seed))
        seed += 1
    specs.append(TrackSpec(f"long/long_{int(long_s // 60)}min.mp3", long_s, seed))
    specs.append(TrackSpec("warmup/warmup.flac", 30.0, seed + 1))
    return specs


@dataclass
class Library:
    root: Path
    tracks: list[TrackSpec]

    @property
    def main(self) -> Path:
        return self.root / "main"

    @property
    def mp3_210(self) -> Path:
        return self.root / "main" / "mp3_210"

    @property
    def long(self) -> Path:
        return self.root / "long"

    @property
    def warmup(self) -> Path:
        return self.root / "warmup"

    def under(self, folder: Path) -> list[TrackSpec]:
        """The tracks inside ``folder`` (a folder of this library)."""
        rel = folder.relative_to(self.root).as_posix().rstrip("/") + "/"
        return [t for t in self.tracks if t.rel.startswith(rel)]

    def seconds(self, folder: Path) -> float:
        return sum(t.seconds for t in self.under(folder))

    def paths(self, folder: Path) -> list[Path]:
        return [self.root / t.rel for t in self.under(folder)]


def write_track(path: Path, spec: TrackSpec) -> None:
    """Write one file block by block (atomically: temp name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial.{path.suffix.lstrip('.')}")
    from tests.synth import music_like

    n_total = int(round(spec.seconds * SR))
    block = int(BLOCK_S * SR)
    try:
        with sf.SoundFile(tmp, "w", samplerate=SR, channels=CHANNELS, **FORMATS[spec.ext]) as fh:
            done, b = 0, 0
            while done < n_total:
                n = min(block, n_total - done)
                y = music_like(SR, n / SR, seed=spec.seed * 1000 + b, channels=CHANNELS)
                fh.write(np.ascontiguousarray(y[:n]))
                done += n
                b += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _manifest(tracks: list[TrackSpec], quick: bool) -> dict:
    return {
        "layout_version": LAYOUT_VERSION,
        "quick": quick,
        "sample_rate": SR,
        "channels": CHANNELS,
        "tracks": [asdict(t) for t in tracks],
    }


def ensure_library(library: Path = DEFAULT_LIBRARY, quick: bool = False, log=print) -> Library:
    """Build the library under ``library/<full|quick>``, reusing every file already built.

    The manifest records each finished file's spec and size; a file is rebuilt
    only when it is missing, its spec changed or its size differs.
    """
    root = Path(library) / ("quick" if quick else "full")
    tracks = library_spec(quick)
    man_path = root / "manifest.json"
    try:
        have = json.loads(man_path.read_text())
        built = {t["rel"]: (t["seconds"], t["seed"], t["size"]) for t in have.get("built", [])}
        if have.get("layout_version") != LAYOUT_VERSION:
            built = {}
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        built = {}

    def is_built(t: TrackSpec) -> bool:
        p = root / t.rel
        return built.get(t.rel) == (t.seconds, t.seed, p.stat().st_size if p.is_file() else -1)

    wanted = {t.rel for t in tracks}
    for p in sorted(root.rglob("*")) if root.is_dir() else []:
        if p.is_file() and p.suffix in (".mp3", ".flac") and p.relative_to(root).as_posix() not in wanted:
            log(f"library: removing {p} (not in this layout)")
            p.unlink()
    todo = [t for t in tracks if not is_built(t)]
    if not todo:
        log(f"library: reusing {root}")
        return Library(root, tracks)
    log(
        f"library: building {len(todo)} of {len(tracks)} files under {root} "
        f"({sum(t.seconds for t in todo) / 3600:.2f} h of audio; cached for later runs)"
    )
    root.mkdir(parents=True, exist_ok=True)
    done = [t for t in tracks if is_built(t)]
    t_all = time.perf_counter()

    def save() -> None:
        man = _manifest(tracks, quick)
        man["built"] = [dict(asdict(t), size=(root / t.rel).stat().st_size) for t in done]
        tmp = man_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(man, indent=1) + "\n")
        os.replace(tmp, man_path)

    for t in todo:
        path = root / t.rel
        t0 = time.perf_counter()
        write_track(path, t)
        done.append(t)
        save()
        log(
            f"  {t.rel}: {t.seconds / 60:.1f} min, {path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s"
        )
    log(f"library: built in {time.perf_counter() - t_all:.0f} s")
    return Library(root, tracks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, default=DEFAULT_LIBRARY, help=f"cache folder (default {DEFAULT_LIBRARY})")
    ap.add_argument("--quick", action="store_true", help="the small smoke-test library")
    args = ap.parse_args()
    lib = ensure_library(args.library, args.quick)
    for folder in (lib.main, lib.mp3_210, lib.long):
        print(f"{folder}: {len(lib.under(folder))} files, {lib.seconds(folder) / 3600:.3f} h")


if __name__ == "__main__":
    main()
