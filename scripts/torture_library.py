"""Generate the bad-input library that ``mirtag scan`` must survive (the standing torture suite).

Every kind of hostile or odd input found so far: empty, text as audio, truncated FLAC/MP3/Ogg,
NaN/Inf and huge float samples, 1 sample, silence, DC, 8/64/256 channels, 192 kHz/24-bit, u-law,
1 Hz, 0 Hz and 2 GHz rates, names that are not UTF-8, hold a newline or are 255 bytes long,
120-deep folders, symbolic link loops, dangling and device links, FIFOs. ``tests/cli/test_torture.py``
scans it and checks one row per file, no traceback and bounded memory.

Usage::

    python scripts/torture_library.py DIR        # writes DIR, prints one line per file and what to expect

:func:`build` returns ``{relative path bytes: Expect}``: the files a scan must give a row, each with
the status it must have (``None``: either) and text its error or warning must contain.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class Expect:
    status: str | None  # "ok", "error" or None (either is fine)
    text: str = ""  # must appear in the error (status error) or the warning (status ok)


def _tone(sr: int, seconds: float, seed: int = 0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * seconds))) / sr
    y = 0.4 * np.sin(2 * np.pi * 330 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + 0.02 * rng.standard_normal(len(t))
    y = y.astype(np.float32)
    return (
        y if channels == 1 else np.tile(y[:, None], (1, channels)) * np.linspace(1.0, 0.5, channels, dtype=np.float32)
    )


def _raw_wav(path: Path, rate: int, frames: int = 2000) -> None:
    """A 16-bit mono WAV whose header claims ``rate`` (soundfile refuses to write absurd rates)."""
    data = (np.sin(np.arange(frames) * 0.1) * 8000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def build(root: str | os.PathLike[str]) -> dict[bytes, Expect]:
    """Write the library under ``root``; returns what a scan of it must give, by path relative to ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    broot = os.fsencode(root)
    expect: dict[bytes, Expect] = {}

    def add(rel: str | bytes, exp: Expect) -> bytes:
        key = rel if isinstance(rel, bytes) else rel.encode()
        expect[key] = exp
        return os.path.join(broot, key)

    sr = 22050
    sf.write(add("good.flac", Expect("ok")), _tone(44100, 4.0, channels=2), 44100, format="FLAC")
    sf.write(add("good.mp3", Expect("ok")), _tone(44100, 4.0, channels=2), 44100, format="MP3")
    sf.write(add("good.ogg", Expect("ok")), _tone(44100, 4.0, channels=2), 44100, format="OGG")
    open(add("empty.wav", Expect("error", "empty file")), "wb").close()
    Path(os.fsdecode(add("text.mp3", Expect("error")))).write_text("this is a text file, not audio\n" * 20)
    # Truncated files: FLAC loses sync (error or the decodable part), MP3 and Ogg decode the part there.
    for ext, fmt, exp in [("flac", "FLAC", Expect(None)), ("mp3", "MP3", Expect("ok", "truncated")),
                          ("ogg", "OGG", Expect("ok", "truncated"))]:  # fmt: skip
        full = root / f".whole.{ext}"
        sf.write(full, _tone(44100, 20.0, seed=1, channels=2), 44100, format=fmt)
        data = full.read_bytes()
        full.unlink()
        Path(os.fsdecode(add(f"truncated.{ext}", exp))).write_bytes(data[: len(data) // 2])
    y = _tone(sr, 3.0)
    y[500] = np.nan
    sf.write(add("nan.wav", Expect("error", "NaN")), y, sr, subtype="FLOAT")
    y = _tone(sr, 3.0)
    y[700] = np.inf
    sf.write(add("inf.wav", Expect("error", "Inf")), y, sr, subtype="FLOAT")
    t = np.arange(110250) / sr
    sf.write(
        add("huge.wav", Expect("error", "non-finite")), (1e18 * np.sin(2760 * t)).astype("f4"), sr, subtype="FLOAT"
    )
    sf.write(add("one-sample.wav", Expect("ok", "shorter than one window")), np.array([0.1], np.float32), sr)
    sf.write(add("silence.wav", Expect("ok", "silent")), np.zeros(sr * 4, np.float32), sr)
    sf.write(add("dc.wav", Expect("ok")), np.full(sr * 4, 0.5, np.float32), sr)
    sf.write(add("8ch.wav", Expect("ok")), _tone(48000, 2.0, channels=8), 48000)
    sf.write(add("64ch-96k.wav", Expect("ok")), _tone(96000, 2.0, channels=64), 96000, subtype="PCM_16")
    sf.write(add("256ch.wav", Expect("ok")), _tone(48000, 2.0, channels=256), 48000, subtype="PCM_16")
    sf.write(add("192k-24bit.flac", Expect("ok")), _tone(192000, 3.0, channels=2), 192000, subtype="PCM_24")
    sf.write(add("ulaw.wav", Expect("ok")), _tone(8000, 3.0), 8000, subtype="ULAW")
    _raw_wav(Path(os.fsdecode(add("rate-1hz.wav", Expect(None)))), 1, frames=3)
    _raw_wav(Path(os.fsdecode(add("rate-0hz.wav", Expect("error")))), 0)
    _raw_wav(Path(os.fsdecode(add("rate-2ghz.wav", Expect("error", "implausible sample rate")))), 2_000_000_000)
    # Names: not UTF-8, a newline, 255 bytes (the longest a Linux name can be).
    sf.write(add(b"caf\xe9 \xff.wav", Expect("ok")), _tone(sr, 2.0, seed=2), sr)
    sf.write(add("new\nline.wav", Expect("ok")), _tone(sr, 2.0, seed=3), sr)
    sf.write(add("n" * 251 + ".wav", Expect("ok")), _tone(sr, 2.0, seed=4), sr)
    # 120 folders deep.
    deep = "/".join(["deep"] * 120)
    (root / deep).mkdir(parents=True)
    sf.write(add(deep + "/bottom.wav", Expect("ok")), _tone(sr, 2.0, seed=5), sr)
    # Links (not followed by default; a loop, a dangling link and a device are never files) and a FIFO.
    (root / "loop").mkdir()
    (root / "loop" / "back").symlink_to("..")
    (root / "dangling.wav").symlink_to(root / "no-such-file.wav")
    (root / "device.wav").symlink_to("/dev/zero")
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "fifo.wav")
    (root / "notes.txt").write_text("not scanned: not an audio extension")
    return expect


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("Usage::")[1].split("\n\n")[1], file=sys.stderr)
        return 2
    for rel, exp in sorted(build(argv[0]).items()):
        print(f"{exp.status or 'either':6s} {exp.text:24s} {rel!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
