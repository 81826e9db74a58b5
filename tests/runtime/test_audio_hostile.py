"""Hostile audio: many channels, absurd rates, truncated MP3/Ogg (memory stays flat, reasons are clear)."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from mirtag.runtime import audio
from mirtag.runtime.errors import DecodeError
from tests.synth import music_like


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("channels", "rate"), [(256, 48000), (64, 96000)])
def test_decoding_memory_does_not_grow_with_the_channel_count(tmp_path, channels, rate):
    path = tmp_path / f"c{channels}.wav"
    n = rate // 2  # half a second: the file is small, the old read buffer (10 s x channels) was not
    y = np.tile(music_like(rate, 0.5)[:, None], (1, channels)) * 0.5
    sf.write(path, y[:n], rate, subtype="PCM_16")
    mono_out = n * 4
    peak = _peak_bytes(lambda: sum(len(b) for b in audio.stream(path, block_seconds=10.0)))
    assert peak < 4 * mono_out + 6 * 2**20, f"{peak / 2**20:.0f} MB for a {channels}-channel file"
    got = np.concatenate(list(audio.stream(path, block_seconds=0.01)))
    assert np.allclose(got, sf.read(path, dtype="float32")[0].mean(axis=1), atol=1e-6)


def _wav_with_rate(path, rate: int, frames: int = 1000) -> None:
    data = (np.sin(np.arange(frames)) * 1000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def test_an_absurd_sample_rate_is_named_not_a_memory_error(tmp_path):
    path = tmp_path / "ghz.wav"
    _wav_with_rate(path, 2_000_000_000)
    with pytest.raises(DecodeError, match="implausible sample rate 2,000,000,000 Hz"):
        list(audio.stream(path, 22050))
    ok = tmp_path / "hifi.wav"
    _wav_with_rate(ok, 384_000, frames=38400)
    assert sum(len(b) for b in audio.stream(ok, 22050)) == 2205


@pytest.mark.parametrize("fmt", ["MP3", "OGG"])
def test_a_truncated_mp3_or_ogg_is_noted_and_a_whole_one_is_not(tmp_path, fmt):
    good = tmp_path / f"good.{fmt.lower()}"
    sf.write(good, music_like(44100, 12.0, channels=2), 44100, format=fmt)
    cut = tmp_path / f"cut.{fmt.lower()}"
    data = good.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    notes: list[str] = []
    n_good = sum(len(b) for b in audio.stream(good, 22050, notes=notes))
    assert notes == [] and abs(n_good - 12 * 22050) < 2
    notes = []
    n_cut = sum(len(b) for b in audio.stream(cut, 22050, notes=notes))
    assert notes == ["truncated"] and 0 < n_cut < n_good
