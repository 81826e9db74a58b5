"""Tests of mirtag.runtime.audio: decoding, regions, streaming and errors.

Every file is written at test time with soundfile from ``music_like`` signals,
so the expected samples are known.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from mirtag.runtime import audio
from mirtag.runtime.errors import (
    DecodeError,
    InvalidAudioError,
    MirtagError,
    ParameterError,
    UnsupportedFormatError,
)
from tests.conftest import music_like

SECONDS = 3.0
MP3_FRAME = 1152  # samples per MPEG-1 Layer III frame: the tolerance for lossy seeking

# name -> (extension, format, subtype)
STEREO_FORMATS = {
    "wav16": (".wav", "WAV", "PCM_16"),
    "wavf": (".wav", "WAV", "FLOAT"),
    "flac": (".flac", "FLAC", "PCM_16"),
    "ogg": (".ogg", "OGG", "VORBIS"),
    "mp3": (".mp3", "MP3", "MPEG_LAYER_III"),
    "aiff": (".aiff", "AIFF", "PCM_16"),
    "au": (".au", "AU", "PCM_16"),
}
MONO_FORMATS = {k: STEREO_FORMATS[k] for k in ("wav16", "wavf", "flac", "ogg", "mp3")}
LOSSLESS = ("wav16", "wavf", "flac", "aiff", "au")
LOSSY = ("ogg", "mp3")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """name -> (path, signal written, rate) for 44.1 kHz stereo, 22.05 kHz mono and 48 kHz opus."""
    d = tmp_path_factory.mktemp("audio")
    stereo = music_like(44100, SECONDS, seed=1, channels=2)
    mono = music_like(22050, SECONDS, seed=2)
    out = {}
    for name, (ext, fmt, subtype) in STEREO_FORMATS.items():
        p = d / f"stereo_{name}{ext}"
        sf.write(p, stereo, 44100, format=fmt, subtype=subtype)
        out[f"stereo_{name}"] = (p, stereo, 44100)
    for name, (ext, fmt, subtype) in MONO_FORMATS.items():
        p = d / f"mono_{name}{ext}"
        sf.write(p, mono, 22050, format=fmt, subtype=subtype)
        out[f"mono_{name}"] = (p, mono, 22050)
    try:
        p = d / "stereo_opus.opus"
        x = music_like(48000, SECONDS, seed=3, channels=2)
        sf.write(p, x, 48000, format="OGG", subtype="OPUS")
        out["stereo_opus"] = (p, x, 48000)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError) as err:
        out["opus_error"] = str(err)
    return out


def _opus(files):
    if "stereo_opus" not in files:
        pytest.skip(f"this libsndfile cannot write Ogg Opus: {files.get('opus_error')}")
    return files["stereo_opus"]


def _mono_of(x):
    return x if x.ndim == 1 else x.mean(axis=1)


def _best_lag(full, region, start, max_lag=MP3_FRAME):
    """(lag, normalized correlation) of ``region`` against ``full`` around ``start``."""
    lo = max(0, start - max_lag)
    seg = full[lo : start + max_lag + len(region)]
    m = min(len(region), len(seg))
    region = region[:m].astype(np.float64)
    seg = seg.astype(np.float64)
    corr = np.correlate(seg, region, mode="valid")
    energy = np.convolve(seg**2, np.ones(m), mode="valid")
    score = corr / (np.sqrt(energy * np.dot(region, region)) + 1e-12)
    i = int(np.argmax(score))
    return lo + i - start, float(score[i])


def _assert_error(exc_info, cls, path, *fragments):
    err = exc_info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    assert isinstance(err, MirtagError)
    msg = str(err)
    assert os.path.basename(str(path)) in msg
    assert "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg


# --------------------------------------------------------------------------- constants and info


def test_extensions():
    assert {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd"} <= (
        audio.AUDIO_EXTENSIONS
    )
    assert audio.AV_EXTENSIONS == {".m4a", ".aac", ".alac", ".wma", ".mp4"}
    assert audio.AV_EXTENSIONS <= audio.AUDIO_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in audio.AUDIO_EXTENSIONS)


@pytest.mark.parametrize(
    "key, fmt",
    [
        ("stereo_wav16", "WAV"),
        ("stereo_flac", "FLAC"),
        ("stereo_ogg", "OGG"),
        ("stereo_mp3", "MP3"),
        ("stereo_aiff", "AIFF"),
        ("stereo_au", "AU"),
        ("mono_wavf", "WAV"),
    ],
)
def test_info(files, key, fmt):
    path, x, rate = files[key]
    inf = audio.info(path)
    assert isinstance(inf, audio.AudioInfo)
    assert (inf.samplerate, inf.channels, inf.format) == (rate, 1 if x.ndim == 1 else x.shape[1], fmt)
    assert abs(inf.frames - len(x)) <= MP3_FRAME
    assert inf.duration_s == pytest.approx(inf.frames / rate)
    assert audio.info(str(path)) == inf
    with pytest.raises(AttributeError):
        inf.frames = 0  # frozen


def test_path_must_be_a_path():
    with pytest.raises(ParameterError):
        audio.load(1234)


# --------------------------------------------------------------------------- load


def test_mono_is_exact_mean_of_channels_float_wav(files):
    path, x, rate = files["stereo_wavf"]
    y, sr = audio.load(path)
    assert sr == rate and y.dtype == np.float32 and y.ndim == 1
    np.testing.assert_array_equal(y, x.mean(axis=1))


def test_mono_file_roundtrip(files):
    path, x, rate = files["mono_wavf"]
    y, sr = audio.load(path)
    assert sr == 22050
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("name", LOSSLESS)
def test_load_lossless(files, name):
    path, x, rate = files[f"stereo_{name}"]
    y, sr = audio.load(path)
    assert sr == rate and y.dtype == np.float32 and len(y) == len(x)
    np.testing.assert_array_equal(y, sf.read(path, dtype="float32")[0].mean(axis=1))
    np.testing.assert_allclose(y, x.mean(axis=1), atol=2.0 / 32768)


@pytest.mark.parametrize("key", ["stereo_ogg", "stereo_mp3", "mono_ogg", "mono_mp3", "stereo_opus"])
def test_load_lossy(files, key):
    path, x, rate = _opus(files) if key == "stereo_opus" else files[key]
    y, sr = audio.load(path)
    assert sr == rate and y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) <= MP3_FRAME
    lag, corr = _best_lag(_mono_of(x), y[rate // 2 : rate], rate // 2)
    assert abs(lag) <= MP3_FRAME and corr > 0.95


@pytest.mark.parametrize("key, sr_out", [("stereo_wavf", 22050), ("stereo_wav16", 16000), ("mono_wavf", 44100)])
def test_load_resampled(files, key, sr_out):
    path, x, rate = files[key]
    native, _ = audio.load(path)
    y, sr = audio.load(path, sr=sr_out)
    assert sr == sr_out and y.dtype == np.float32
    assert abs(len(y) - round(len(x) * sr_out / rate)) <= 1
    np.testing.assert_allclose(y, soxr.resample(native, rate, sr_out, quality="HQ"), atol=1e-6)


def test_load_same_rate_is_native(files):
    path, x, rate = files["stereo_wavf"]
    y, sr = audio.load(path, sr=rate)
    assert sr == rate
    np.testing.assert_array_equal(y, x.mean(axis=1))


REGIONS = [(0.0, 1.0), (0.5, 1.25), (1.2345, None), (2.5, 5.0), (0.0, 1e-6), (2.99, None)]


@pytest.mark.parametrize("key", ["stereo_wav16", "stereo_flac", "mono_flac", "stereo_aiff"])
@pytest.mark.parametrize("offset, duration", REGIONS)
def test_region_sample_exact(files, key, offset, duration):
    path, x, rate = files[key]
    full, _ = audio.load(path)
    y, sr = audio.load(path, offset=offset, duration=duration)
    start = round(offset * rate)
    stop = None if duration is None else start + max(1, round(duration * rate))
    np.testing.assert_array_equal(y, full[start:stop])


@pytest.mark.parametrize("offset, duration", [(0.5, 1.0), (1.2345, 0.75)])
def test_region_resampled_is_resampled_region(files, offset, duration):
    path, x, rate = files["stereo_flac"]
    full, _ = audio.load(path)
    y, sr = audio.load(path, 22050, offset=offset, duration=duration)
    start = round(offset * rate)
    ref = soxr.resample(full[start : start + round(duration * rate)], rate, 22050, quality="HQ")
    np.testing.assert_allclose(y, ref, atol=1e-6)
    assert len(y) == len(ref)


@pytest.mark.parametrize("key", ["stereo_mp3", "stereo_ogg", "mono_mp3", "mono_ogg"])
@pytest.mark.parametrize("offset, duration", [(0.5, 1.0), (1.2345, 0.75), (2.0, None), (2.9, None)])
def test_region_lossy_within_one_block(files, key, offset, duration):
    path, x, rate = files[key]
    full, _ = audio.load(path)
    y, _ = audio.load(path, offset=offset, duration=duration)
    start = round(offset * rate)
    expected = len(full[start : None if duration is None else start + round(duration * rate)])
    assert abs(len(y) - expected) <= MP3_FRAME
    # libsndfile's Ogg seek can land a few dozen samples off in the last page;
    # allow one MP3 frame of misalignment, then demand the same waveform.
    n = min(len(y), 4096)
    lag, corr = _best_lag(full, y[:n], start)
    assert abs(lag) <= MP3_FRAME and corr > 0.99, (lag, corr)


@pytest.mark.parametrize("key", ["stereo_ogg", "mono_ogg"])
def test_region_ogg_last_page_is_exact(files, key):
    # libsndfile 1.2.2 alone lands up to ~750 samples off in the last Ogg page;
    # load() seeks early and decodes forward, so this is exact.
    path, x, rate = files[key]
    full, _ = audio.load(path)
    for offset in (2.8, 2.85, 2.9, 2.95):
        start = round(offset * rate)
        y, _ = audio.load(path, offset=offset)
        np.testing.assert_array_equal(y, full[start:])


def test_region_past_end_is_cut_short(files):
    path, x, rate = files["stereo_wav16"]
    y, _ = audio.load(path, offset=2.0, duration=10.0)
    assert len(y) == len(x) - 2 * rate


# --------------------------------------------------------------------------- stream


@pytest.mark.parametrize("key", ["stereo_wav16", "stereo_mp3", "mono_wavf", "stereo_flac"])
@pytest.mark.parametrize("sr_out", [None, 22050, 16000])
@pytest.mark.parametrize("offset, duration", [(0.0, None), (0.75, 1.3)])
def test_stream_equals_load(files, key, sr_out, offset, duration):
    path, x, rate = files[key]
    y, sr = audio.load(path, sr_out, offset=offset, duration=duration)
    chunks = list(audio.stream(path, sr_out, offset=offset, duration=duration, block_seconds=0.5))
    assert len(chunks) > 1
    assert all(c.dtype == np.float32 and c.ndim == 1 and c.size > 0 for c in chunks)
    z = np.concatenate(chunks)
    assert len(z) == len(y)
    if sr_out is None or sr_out == rate:
        np.testing.assert_array_equal(z, y)
    else:
        assert np.max(np.abs(z - y)) <= 1e-4
    # Memory independent of file length: no chunk much bigger than one block.
    out_rate = sr_out or rate
    assert max(len(c) for c in chunks) <= 0.5 * out_rate + 2048


def test_stream_default_block_is_one_chunk_for_short_file(files):
    path, x, rate = files["stereo_wavf"]
    chunks = list(audio.stream(path))
    assert len(chunks) == 1
    np.testing.assert_array_equal(chunks[0], x.mean(axis=1))


def test_stream_opus_resampled(files):
    path, x, rate = _opus(files)
    y, _ = audio.load(path, 44100)
    z = np.concatenate(list(audio.stream(path, 44100, block_seconds=0.5)))
    assert len(z) == len(y) and np.max(np.abs(z - y)) <= 1e-4


def test_stream_validates_arguments_eagerly(tmp_path):
    missing = tmp_path / "nothing.wav"
    for kwargs in ({"block_seconds": 0}, {"offset": -1.0}, {"duration": 0.0}, {"sr": 0}):
        with pytest.raises(ParameterError):
            audio.stream(missing, **kwargs)
    gen = audio.stream(missing)  # file errors surface on iteration
    with pytest.raises(DecodeError):
        next(gen)


# --------------------------------------------------------------------------- resample / to_mono


def test_resample_matches_soxr_and_identity(rng):
    y = rng.standard_normal(10000).astype(np.float32)
    assert audio.resample(y, 44100, 44100) is y
    out = audio.resample(y, 44100, 22050)
    assert out.dtype == np.float32 and len(out) == 5000
    np.testing.assert_array_equal(out, soxr.resample(y, 44100, 22050, quality="HQ"))
    stereo = rng.standard_normal((1000, 2))
    assert audio.resample(stereo, 48000, 16000).shape == (round(1000 / 3), 2)
    with pytest.raises(ParameterError):
        audio.resample(y, 0, 22050)
    with pytest.raises(ParameterError):
        audio.resample(np.zeros((2, 2, 2)), 44100, 22050)


def test_to_mono(rng):
    y = rng.standard_normal(100).astype(np.float32)
    assert audio.to_mono(y) is y
    for c in (1, 2, 3, 6):
        x = rng.standard_normal((100, c)).astype(np.float32)
        m = audio.to_mono(x)
        assert m.shape == (100,) and m.dtype == np.float32
        np.testing.assert_array_equal(m, x.mean(axis=1))
    np.testing.assert_allclose(audio.to_mono(np.ones((5, 2))), np.ones(5))
    with pytest.raises(ParameterError):
        audio.to_mono(np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------- errors


def _write_float(path, x, rate=44100):
    sf.write(path, x, rate, format="WAV", subtype="FLOAT")
    return path


def _bad_file(kind, tmp_path, files):
    """(path, expected class, message fragments) for each bad-file case."""
    if kind == "missing":
        return tmp_path / "missing.wav", DecodeError, ("file not found",)
    if kind == "directory":
        p = tmp_path / "folder.flac"
        p.mkdir()
        return p, DecodeError, ("directory",)
    if kind == "empty":
        p = tmp_path / "empty.wav"
        p.write_bytes(b"")
        return p, DecodeError, ("empty file",)
    if kind in ("text_mp3", "text_wav", "text_ogg"):
        p = tmp_path / f"notes.{kind[5:]}"
        p.write_text("this is not audio at all\n" * 40)
        return p, DecodeError, ("not an audio file or unsupported format (Format not recognised)",)
    if kind == "zero_samples":
        p = tmp_path / "zero.wav"
        sf.write(p, np.zeros((0, 2), np.float32), 44100)
        return p, DecodeError, ("no audio samples",)
    if kind == "truncated_flac":
        data = files["stereo_flac"][0].read_bytes()
        p = tmp_path / "cut.flac"
        p.write_bytes(data[: len(data) // 2])
        return p, DecodeError, ("corrupt or truncated audio:",)
    if kind == "truncated_ogg_header":
        data = files["stereo_ogg"][0].read_bytes()
        p = tmp_path / "cut.ogg"
        p.write_bytes(data[:200])
        return p, DecodeError, ("corrupt or truncated audio",)
    if kind in ("nan", "inf"):
        x = music_like(44100, 1.0, channels=2)
        x[1000, 1] = np.nan if kind == "nan" else np.inf
        return _write_float(tmp_path / f"{kind}.wav", x), InvalidAudioError, ("audio contains NaN or Inf samples",)
    raise AssertionError(kind)


FILE_ERRORS = ["missing", "directory", "empty", "text_mp3", "text_wav", "text_ogg"]
DECODE_ERRORS = ["zero_samples", "truncated_flac", "nan", "inf"]


@pytest.mark.parametrize("kind", FILE_ERRORS + DECODE_ERRORS + ["truncated_ogg_header"])
def test_bad_file_errors(kind, tmp_path, files):
    path, cls, fragments = _bad_file(kind, tmp_path, files)
    with pytest.raises(cls) as exc:
        audio.load(path)
    _assert_error(exc, cls, path, *fragments)
    with pytest.raises(cls) as exc:
        list(audio.stream(path, 22050, block_seconds=0.5))
    _assert_error(exc, cls, path, *fragments)
    if kind in FILE_ERRORS:
        with pytest.raises(cls) as exc:
            audio.info(path)
        _assert_error(exc, cls, path, *fragments)


def test_nan_in_a_later_block_stops_the_stream(tmp_path):
    x = music_like(44100, 2.0, channels=2)
    x[-100, 0] = np.nan
    path = _write_float(tmp_path / "late_nan.wav", x)
    gen = audio.stream(path, block_seconds=0.5)
    first = next(gen)
    np.testing.assert_array_equal(first, x[: len(first)].mean(axis=1))
    with pytest.raises(InvalidAudioError) as exc:
        list(gen)
    _assert_error(exc, InvalidAudioError, path, "NaN or Inf")
    # The region before the NaN is fine.
    y, _ = audio.load(path, duration=1.0)
    assert np.isfinite(y).all()


def test_permission_denied(tmp_path, files, monkeypatch):
    path = tmp_path / "locked.wav"
    path.write_bytes(files["stereo_wav16"][0].read_bytes())
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root reads anything: simulate the EACCES that chmod would give.
        real_open = open

        def fake_open(file, *args, **kwargs):
            if os.fspath(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(audio, "open", fake_open, raising=False)
    else:
        path.chmod(0)
    try:
        with pytest.raises(DecodeError) as exc:
            audio.load(path)
        _assert_error(exc, DecodeError, path, "permission denied")
    finally:
        path.chmod(0o644)


def test_offset_past_end(files):
    path, x, rate = files["stereo_wav16"]
    with pytest.raises(DecodeError) as exc:
        audio.load(path, offset=12.0)
    _assert_error(exc, DecodeError, path, "offset 12.0 s is past the end (3.0 s)")
    with pytest.raises(DecodeError) as exc:
        list(audio.stream(path, offset=3.0))
    _assert_error(exc, DecodeError, path, "past the end (3.0 s)")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"offset": -0.5},
        {"duration": -1.0},
        {"duration": 0.0},
        {"offset": float("nan")},
        {"sr": 0},
        {"sr": -22050},
        {"sr": 22050.5},
        {"duration": float("inf")},
    ],
)
def test_parameter_errors(files, kwargs):
    path = files["stereo_wav16"][0]
    with pytest.raises(ParameterError) as exc:
        audio.load(path, **kwargs)
    assert isinstance(exc.value, MirtagError) and "\n" not in str(exc.value)


@pytest.mark.parametrize("ext", sorted(audio.AV_EXTENSIONS))
def test_av_formats_without_pyav(tmp_path, ext):
    try:
        import av  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PyAV is installed; the missing-decoder error cannot happen")
    path = tmp_path / f"song{ext}"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    for call in (audio.load, audio.info, lambda p: list(audio.stream(p))):
        with pytest.raises(UnsupportedFormatError) as exc:
            call(path)
        _assert_error(exc, UnsupportedFormatError, path, "install the optional decoder: pip install av")


@pytest.mark.parametrize(
    "exc_factory",
    [lambda: sf.LibsndfileError(29), lambda: RuntimeError("boom"), lambda: OSError(5, "Input/output error")],
)
def test_soundfile_errors_mid_read_are_typed(files, monkeypatch, exc_factory):
    path = files["stereo_flac"][0]

    def failing_read(self, *args, **kwargs):
        raise exc_factory()

    monkeypatch.setattr(sf.SoundFile, "read", failing_read)
    with pytest.raises(DecodeError) as exc:
        audio.load(path)
    _assert_error(exc, DecodeError, path, "corrupt or truncated audio:")


def test_soundfile_errors_at_open_are_typed(files, monkeypatch):
    path = files["stereo_wav16"][0]

    def failing_open(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sf, "SoundFile", failing_open)
    with pytest.raises(DecodeError) as exc:
        audio.info(path)
    _assert_error(exc, DecodeError, path, "Input/output error")


# --------------------------------------------------------------------------- truncated and header-less files


def test_truncated_wav_loads_what_is_there(files, tmp_path):
    src, x, rate = files["stereo_wav16"]
    data = src.read_bytes()
    path = tmp_path / "half.wav"
    path.write_bytes(data[: len(data) // 2])
    full, _ = audio.load(src)
    y, _ = audio.load(path)
    assert 0 < len(y) < len(full)
    np.testing.assert_array_equal(y, full[: len(y)])


def test_truncated_mp3_length_comes_from_decoding(files, tmp_path):
    src, x, rate = files["stereo_mp3"]
    data = src.read_bytes()
    path = tmp_path / "half.mp3"
    path.write_bytes(data[: len(data) // 2])
    header_frames = audio.info(path).frames  # the Xing header still promises the whole file
    y, _ = audio.load(path)
    assert 0 < len(y) < header_frames
    assert len(np.concatenate(list(audio.stream(path, block_seconds=0.5)))) == len(y)
    decoded_s = round(len(y) / rate, 3)
    with pytest.raises(DecodeError) as exc:
        audio.load(path, offset=2.5)
    _assert_error(exc, DecodeError, path, f"offset 2.5 s is past the end ({decoded_s} s)")


def test_failed_seek_falls_back_to_decoding(files, monkeypatch):
    path, x, rate = files["stereo_ogg"]
    full, _ = audio.load(path)

    real_seek = sf.SoundFile.seek

    def failing_seek(self, frames, *args, **kwargs):
        # soundfile seeks internally (tell, after each read) with a whence
        # argument; only mirtag's own region seek passes a frame index alone.
        if not args and not kwargs:
            raise sf.LibsndfileError(29, "Internal psf_fseek() failed")
        return real_seek(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "seek", failing_seek)
    for offset in (0.4, 2.9):  # with and without the Ogg pre-roll
        y, _ = audio.load(path, offset=offset, duration=0.05)
        start = round(offset * rate)
        np.testing.assert_array_equal(y, full[start : start + round(0.05 * rate)])


def _strip_first_mp3_frame(data: bytes) -> bytes:
    """Drop the first MPEG-1 Layer III frame (where LAME/libsndfile put the Xing tag)."""
    assert data[0] == 0xFF and data[1] & 0xE0 == 0xE0
    bitrate_kbps = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)[data[2] >> 4]
    rate = (44100, 48000, 32000)[(data[2] >> 2) & 3]
    length = 144000 * bitrate_kbps // rate + ((data[2] >> 1) & 1)
    return data[length:]


def test_mp3_without_xing_header_is_flagged(files, tmp_path, caplog):
    src = files["stereo_mp3"][0]
    assert not audio._mp3_length_is_estimate(str(src))
    path = tmp_path / "noxing.mp3"
    path.write_bytes(_strip_first_mp3_frame(src.read_bytes()))
    assert audio._mp3_length_is_estimate(str(path))
    if audio._import_av() is not None:
        pytest.skip("PyAV is installed: such files go through it instead")
    with caplog.at_level(logging.INFO, logger="mirtag.runtime.audio"):
        y, _ = audio.load(path)
    assert len(y) > 0
    assert any("Xing" in r.getMessage() and "noxing.mp3" in r.getMessage() for r in caplog.records)
