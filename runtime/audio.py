"""Decode audio files to mono float32 at a chosen sample rate.

libsndfile (through soundfile) decodes WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF
and AU; soxr resamples. The containers libsndfile cannot read (M4A, AAC, ALAC,
WMA, MP4) go through PyAV, an optional dependency (``pip install av``, the ``av`` extra)
imported only when such a file is opened.

Two entry points give the same samples:

- :func:`load` returns the whole file (or a region) as one array;
- :func:`stream` yields it in chunks, with memory independent of the file length.

Lengths always come from what was decoded, never from the header: libsndfile's
frame count for MP3 and Ogg is an estimate, and a truncated file's header
promises samples that are not there.

Every failure on a bad file is an :class:`~mirtag.runtime.errors.AudioError`
subclass naming the file, with a one-line reason; bad arguments raise
:class:`~mirtag.runtime.errors.ParameterError`.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import stat
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import (
    AudioError,
    DecodeError,
    InvalidAudioError,
    MirtagError,
    ParameterError,
    UnsupportedFormatError,
)

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "AV_EXTENSIONS",
    "AudioInfo",
    "info",
    "load",
    "stream",
    "resample",
    "to_mono",
]

# Extensions libsndfile 1.2 decodes itself.
_SF_EXTENSIONS: frozenset[str] = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd"}
)
#: Extensions that need the optional PyAV decoder.
AV_EXTENSIONS: frozenset[str] = frozenset({".m4a", ".aac", ".alac", ".wma", ".mp4"})
#: Every extension mirtag treats as audio (a library walk picks these up).
AUDIO_EXTENSIONS: frozenset[str] = _SF_EXTENSIONS | AV_EXTENSIONS

_INSTALL_AV = "install the optional decoder: pip install av  (the av extra of mirtag)"

# Whatever soundfile raises on a bad file: LibsndfileError (a SoundFileError
# and a RuntimeError), OSError from the system, ValueError from its own checks.
_SF_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError)

# libsndfile derives the frame count of these from the file header alone (Ogg:
# last granule position; MP3: Xing header or a bitrate estimate; FLAC:
# STREAMINFO), so a truncated or header-less file can disagree with what decodes.
_ESTIMATED_LENGTH_FORMATS = frozenset({"OGG", "MP3", "FLAC"})

# Decoding block for load(): large enough that per-call overhead vanishes
# (mono float32 blocks of 4 MB).
_LOAD_BLOCK_FRAMES = 1 << 20

# Bytes of one interleaved (frames, channels) float32 read: the read buffer is
# sized by bytes, not frames, so memory stays flat whatever the channel count
# and rate (a 256-channel file reads 4,096 frames at a time).
_READ_BYTES = 4 << 20

# Above this a "sample rate" is a corrupt header, not audio (the highest real
# PCM rates are 768 kHz; DSD is not PCM and libsndfile does not read it).
MAX_SAMPLE_RATE = 1_536_000

# Seconds decoded ahead of an Ogg region start (see _SfDecoder.blocks); longer
# than any final Ogg page at the bitrates found in music files.
_OGG_PREROLL_S = 2
# Seconds decoded ahead of a region start through PyAV (see _AvDecoder.blocks).
_AV_PREROLL_S = 0.5


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says about its audio.

    Attributes
    ----------
    samplerate : int
        Native sample rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Samples per channel. An estimate for MP3 and Ogg (and for files read
        through PyAV); :func:`load` gives the exact count.
    duration_s : float
        ``frames / samplerate`` in seconds (an estimate where ``frames`` is).
    format : str
        soundfile's major format (``'WAV'``, ``'FLAC'``, ``'OGG'``, ``'MP3'``,
        ``'AIFF'``, ``'AU'``), or the upper-cased codec name for PyAV files
        (``'AAC'``, ``'ALAC'``, ...).
    """

    samplerate: int
    channels: int
    frames: int
    duration_s: float
    format: str


# --------------------------------------------------------------------------- public API


def info(path: "str | os.PathLike[str]") -> AudioInfo:
    """Read a file's header: rate, channels, length and format.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.

    Returns
    -------
    AudioInfo
        Header facts; ``frames`` may be an estimate (see :class:`AudioInfo`).

    Raises
    ------
    DecodeError
        Missing, unreadable, empty or non-audio file.
    UnsupportedFormatError
        An M4A/AAC/ALAC/WMA/MP4 file and PyAV is not installed.
    """
    with _open(path) as dec:
        return AudioInfo(
            samplerate=dec.samplerate,
            channels=dec.channels,
            frames=dec.frames,
            duration_s=dec.frames / dec.samplerate,
            format=dec.format,
        )


def load(
    path: "str | os.PathLike[str]",
    sr: "int | None" = None,
    *,
    offset: float = 0.0,
    duration: "float | None" = None,
) -> "tuple[np.ndarray, int]":
    """Decode a file (or a region of it) to mono float32, optionally resampled.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int, optional
        Output sample rate in Hz; ``None`` keeps the file's rate. Resampling
        uses soxr, quality ``"HQ"``.
    offset : float, default 0.0
        Start of the region in seconds (>= 0). The decoder seeks there; the
        samples before it are not decoded (sample-exact for WAV, FLAC, AIFF and
        AU; MP3 and Ogg seeking is libsndfile's, exact in practice, but see the
        tests for the tolerance allowed).
    duration : float, optional
        Length of the region in seconds (> 0); ``None`` reads to the end. A
        region running past the end is cut short, not padded.

    Returns
    -------
    y : np.ndarray, shape (n,), float32
        Mean of the channels, at rate ``rate``.
    rate : int
        ``sr`` if given, else the file's sample rate, in Hz.

    Raises
    ------
    ParameterError
        Negative or non-finite ``offset``, non-positive ``duration`` or ``sr``.
    DecodeError
        Missing, unreadable, empty, non-audio, corrupt or truncated file; no
        samples; ``offset`` past the end.
    InvalidAudioError
        The decoded samples contain NaN or Inf.
    UnsupportedFormatError
        An M4A/AAC/ALAC/WMA/MP4 file and PyAV is not installed.
    """
    sr = _check_rate(sr, "sr", optional=True)
    offset, duration = _check_region(offset, duration)
    with _open(path) as dec:
        native = dec.samplerate
        blocks = list(dec.blocks(offset, duration, _LOAD_BLOCK_FRAMES))
    y = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    if sr is None or sr == native:
        return y, native
    return resample(y, native, sr), sr


def stream(
    path: "str | os.PathLike[str]",
    sr: "int | None" = None,
    *,
    offset: float = 0.0,
    duration: "float | None" = None,
    block_seconds: float = 30.0,
    notes: "list[str] | None" = None,
) -> Iterator[np.ndarray]:
    """Yield the samples of :func:`load` in chunks, in memory independent of file length.

    The file is decoded in blocks of about ``block_seconds`` and resampled with
    a streaming soxr resampler; the concatenated chunks equal ``load(path, sr,
    offset=offset, duration=duration)[0]`` in length, and in value exactly at the
    native rate or to float rounding (about 1e-6) when resampling.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int, optional
        Output sample rate in Hz; ``None`` keeps the file's rate.
    offset, duration : float
        The region, in seconds, as in :func:`load`.
    block_seconds : float, default 30.0
        Decoding block length in seconds of the file (> 0). Chunks hold about
        ``block_seconds * sr`` samples; the last may be shorter.
    notes : list of str, optional
        Decoding warnings are appended to it once the file is decoded:
        ``"truncated"`` when a whole-file decode ends before its header says
        (MP3 with a Xing/Info header) or mid-page (Ogg).

    Yields
    ------
    np.ndarray, shape (m,), float32
        Consecutive mono chunks at rate ``sr`` (or the file's rate), none empty.

    Raises
    ------
    ParameterError
        Invalid arguments; raised at the call, before any file access.
    DecodeError, InvalidAudioError, UnsupportedFormatError
        As in :func:`load`, raised while iterating (a NaN after the first
        block surfaces only when that block is reached).
    """
    sr = _check_rate(sr, "sr", optional=True)
    offset, duration = _check_region(offset, duration)
    block_seconds = _check_positive(block_seconds, "block_seconds")
    return _stream(path, sr, offset, duration, block_seconds, notes)


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample in one shot with soxr (quality ``"HQ"``).

    Parameters
    ----------
    y : np.ndarray, shape (n,) or (n, channels)
        Samples at ``sr_in`` Hz; converted to float32.
    sr_in, sr_out : int
        Input and output rates in Hz.

    Returns
    -------
    np.ndarray, shape (m,) or (m, channels), float32
        ``m`` is about ``n * sr_out / sr_in``. When the rates are equal, ``y``
        itself (no copy) if it is already float32.
    """
    sr_in = _check_rate(sr_in, "sr_in")
    sr_out = _check_rate(sr_out, "sr_out")
    y = np.asarray(y, dtype=np.float32)
    if y.ndim not in (1, 2):
        raise ParameterError(f"resample expects shape (n,) or (n, channels), got {y.shape}")
    if sr_in == sr_out:
        return y
    return soxr.resample(np.ascontiguousarray(y), sr_in, sr_out, quality="HQ")


def to_mono(x: np.ndarray) -> np.ndarray:
    """Average the channels.

    Parameters
    ----------
    x : np.ndarray, shape (n,) or (n, channels)
        Samples; converted to float32.

    Returns
    -------
    np.ndarray, shape (n,), float32
        ``x`` itself for 1-D float32 input; otherwise the mean over axis 1,
        bit-identical to ``x.mean(axis=1)`` in float32.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise ParameterError(f"to_mono expects shape (n,) or (n, channels), got {x.shape}")
    return _mono(x)


# --------------------------------------------------------------------------- helpers


def _mono(x: np.ndarray) -> np.ndarray:
    """A fresh contiguous float32 (n,) mean of the columns of a (n, channels) block.

    Summing column by column is ~10x faster than ``x.mean(axis=1)`` (numpy
    reduces a length-2 inner axis slowly) and gives the same bits: numpy also
    adds a short axis left to right, then divides once.
    """
    out = x[:, 0].astype(np.float32, copy=True)
    channels = x.shape[1]
    if channels > 1:
        # NaN/Inf are reported by the caller as InvalidAudioError, not warned about here.
        with np.errstate(invalid="ignore", over="ignore"):
            for c in range(1, channels):
                out += x[:, c]
            out /= np.float32(channels)
    return out


def _check_rate(value, name: str, optional: bool = False) -> "int | None":
    if value is None and optional:
        return None
    try:
        rate = int(value)
        ok = rate == value and rate > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ParameterError(f"{name} must be a positive integer rate in Hz, got {value!r}")
    return rate


def _check_positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ParameterError(f"{name} must be positive and finite, got {value!r}")
    return v


def _check_region(offset, duration) -> "tuple[float, float | None]":
    try:
        off = float(offset)
    except (TypeError, ValueError):
        raise ParameterError(f"offset must be a number of seconds, got {offset!r}") from None
    if not (math.isfinite(off) and off >= 0):
        raise ParameterError(f"offset must be >= 0 and finite, got {offset!r}")
    if duration is None:
        return off, None
    return off, _check_positive(duration, "duration")


def _region_frames(offset: float, duration: "float | None", rate: int) -> "tuple[int, int | None]":
    start = int(round(offset * rate))
    # A positive duration shorter than half a sample still asks for something.
    want = None if duration is None else max(1, int(round(duration * rate)))
    return start, want


def _seconds(frames: int, rate: int) -> float:
    return round(frames / rate, 3)


def _condense(err: BaseException) -> str:
    """One line from a decoder exception, without soundfile's path prefix."""
    # LibsndfileError.error_string and OSError.strerror (FFmpeg errors are
    # OSErrors) leave out the path and errno, which the message already has.
    msg = getattr(err, "error_string", None) or getattr(err, "strerror", None) or str(err) or type(err).__name__
    msg = " ".join(str(msg).split())
    msg = re.sub(r"^Error opening .*?: ", "", msg)
    msg = re.sub(r"^Error\s*:\s*", "", msg)
    return msg.rstrip(". ") or type(err).__name__


def _check_file(path) -> str:
    """The path as str, after the checks that give clearer reasons than libsndfile's."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    try:
        p = os.fspath(path)
    except TypeError:
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        raise DecodeError(p, "file not found") from None
    except PermissionError:
        raise DecodeError(p, "permission denied") from None
    except (OSError, ValueError) as err:
        raise DecodeError(p, f"cannot access file ({_condense(err)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError(p, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError(p, "not a regular file")
    if st.st_size == 0:
        raise DecodeError(p, "empty file")
    # libsndfile reports an unreadable file as "System error"; say what it is.
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        raise DecodeError(p, "permission denied") from None
    except OSError as err:
        raise DecodeError(p, f"cannot read file ({_condense(err)})") from None
    return p


def _import_av():
    try:
        import av  # noqa: PLC0415 - optional dependency, imported on demand
    except (ImportError, OSError):
        return None
    return av


def _mp3_length_is_estimate(path: str) -> bool:
    """True when an MP3 lacks a Xing/Info/VBRI header.

    libsndfile then takes mpg123's bitrate-based length estimate as the file
    length and stops decoding there, so a VBR file can come out truncated.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(10)
            start = 0
            if len(head) == 10 and head[:3] == b"ID3":
                size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | (head[9] & 0x7F)
                start = 10 + size + (10 if head[5] & 0x10 else 0)
            fh.seek(start)
            data = fh.read(8192)
    except OSError:
        return False
    sync = re.search(rb"\xff[\xe0-\xff]", data)
    if sync is None:
        return False
    # The tag sits right after the side info of the first frame (at most 40 bytes in).
    first = data[sync.start() : sync.start() + 64]
    return not any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


def _open(path):
    """An open decoder (context manager) for the file, libsndfile first."""
    p = _check_file(path)
    ext = os.path.splitext(p)[1].lower()
    if ext in AV_EXTENSIONS:
        av = _import_av()
        if av is None:
            raise UnsupportedFormatError(p, f"{ext} files need PyAV; {_INSTALL_AV}")
        return _AvDecoder(p, av)
    try:
        f = sf.SoundFile(os.fsencode(p))  # bytes: any file name, UTF-8 or not
    except _SF_ERRORS as err:
        reason = _condense(err)
        code = getattr(err, "code", None)
        # libsndfile's MPEG probe reports a non-MP3 as "File does not exist or is
        # not a regular file"; _check_file has shown it is one.
        if code == 1 or reason.startswith("File does not exist or is not a regular file"):
            av = _import_av()
            if av is not None:
                try:
                    return _AvDecoder(p, av)
                except AudioError:
                    pass  # libsndfile's reason is the one to report
            reason = f"not an audio file or unsupported format ({'Format not recognised' if code != 1 else reason})"
        elif code == 3:
            reason = f"corrupt or truncated audio: {reason}"
        else:
            reason = f"cannot open audio ({reason})"
        raise DecodeError(p, reason) from err
    dec = _SfDecoder(p, f)
    if dec.format == "MP3" and _mp3_length_is_estimate(p):
        av = _import_av()
        if av is not None:
            dec.close()
            return _AvDecoder(p, av)
        _LOGGER.info(
            "%s: MP3 without a Xing/Info header; libsndfile decodes only up to its length estimate "
            "(%d frames), so a VBR file may come out short (%s)",
            p,
            dec.frames,
            _INSTALL_AV,
        )
    return dec


def _stream(path, sr, offset, duration, block_seconds, notes=None) -> Iterator[np.ndarray]:
    with _open(path) as dec:
        native = dec.samplerate
        block_frames = max(1, int(round(block_seconds * native)))
        if sr is None or sr == native:
            yield from dec.blocks(offset, duration, block_frames)
        else:
            rs = soxr.ResampleStream(native, sr, 1, dtype="float32", quality="HQ")
            for block in dec.blocks(offset, duration, block_frames):
                out = rs.resample_chunk(block, last=False)
                if out.size:
                    yield out
            # Flushing with an empty last chunk gives exactly soxr.resample's length
            # and values, so stream() and load() agree.
            out = rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            if out.size:
                yield out
        if notes is not None:
            notes.extend(n for n in dec.notes if n not in notes)


def _read_frames(channels: int, want: int) -> int:
    """Frames per read so that a (frames, channels) float32 buffer stays within ``_READ_BYTES``."""
    return max(1, min(want, _READ_BYTES // (4 * max(1, channels))))


def _check_samplerate(path: str, rate: int) -> None:
    if rate > MAX_SAMPLE_RATE:
        raise DecodeError(path, f"implausible sample rate {rate:,} Hz (a corrupt header?)")


def _ogg_truncated(path: str) -> bool:
    """True when an Ogg file does not end with a whole end-of-stream page (cut short)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            pos, last_flags = 0, None
            while pos < size:
                fh.seek(pos)
                head = fh.read(27)
                if len(head) < 27 or head[:4] != b"OggS":
                    return True
                n_seg = head[26]
                table = fh.read(n_seg)
                if len(table) < n_seg:
                    return True
                pos += 27 + n_seg + sum(table)
                last_flags = head[5]
            return pos != size or last_flags is None or not last_flags & 0x04
    except OSError:
        return False


def _finite(path: str, y: np.ndarray) -> np.ndarray:
    if not np.isfinite(y).all():
        raise InvalidAudioError(path, "audio contains NaN or Inf samples")
    return y


# --------------------------------------------------------------------------- decoders


class _SfDecoder:
    """libsndfile decoding of mono blocks, with region seeking."""

    def __init__(self, path: str, f: sf.SoundFile):
        self.path = path
        self._f = f
        self.samplerate = int(f.samplerate)
        self.channels = int(f.channels)
        self.frames = int(f.frames)
        self.format = str(f.format)
        self.notes: list[str] = []
        """Warnings found while decoding (``truncated``)."""
        _check_samplerate(path, self.samplerate)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self._f.close()
        except _SF_ERRORS:
            pass

    def _note_truncation(self, decoded: int) -> None:
        """After a whole-file decode: did it end early? (MP3: fewer frames than its Xing/Info header; Ogg: a cut page.)"""
        short = False
        if self.format == "MP3":
            # One MP3 frame of slack: encoders round the padding differently.
            short = self.frames - decoded > 1152 and not _mp3_length_is_estimate(self.path)
        elif self.format == "OGG":
            short = _ogg_truncated(self.path)
        if short and "truncated" not in self.notes:
            self.notes.append("truncated")

    def _corrupt(self, err: BaseException) -> DecodeError:
        return DecodeError(self.path, f"corrupt or truncated audio: {_condense(err)}")

    def _past_end(self, offset: float, end_frames: int) -> DecodeError:
        return DecodeError(
            self.path, f"offset {round(offset, 3)} s is past the end ({_seconds(end_frames, self.samplerate)} s)"
        )

    def _decoded_length(self) -> int:
        """Frames that actually decode (only needed for error messages)."""
        if self.format not in _ESTIMATED_LENGTH_FORMATS:
            return self.frames
        total = 0
        try:
            with sf.SoundFile(os.fsencode(self.path)) as g:
                buf = np.empty((_read_frames(g.channels, _LOAD_BLOCK_FRAMES), g.channels), dtype=np.float32)
                while True:
                    n = len(g.read(out=buf))
                    total += n
                    if n < len(buf):
                        return total
        except _SF_ERRORS as err:
            raise self._corrupt(err) from err

    def _read(self, buf: np.ndarray, n: int) -> np.ndarray:
        try:
            # With out= soundfile leaves the end to libsndfile instead of trimming
            # to the header's count: a short read marks the real end of a
            # truncated file.
            return self._f.read(n, out=buf)
        except _SF_ERRORS as err:
            raise self._corrupt(err) from err

    def _skip(self, n: int, base: int, offset: float) -> None:
        """Decode and drop ``n`` frames from frame ``base``; EOF on the way is past the end."""
        buf = np.empty((_read_frames(self.channels, n), self.channels), dtype=np.float32)
        done = 0
        while done < n:
            k = len(self._read(buf, min(len(buf), n - done)))
            done += k
            if k == 0:
                raise self._past_end(offset, base + done)

    def _seek(self, start: int, offset: float) -> None:
        try:
            self._f.seek(start)
            return
        except _SF_ERRORS as err:
            # A truncated Ogg fails its bisection seek: reopen and decode up to
            # the target instead, which also finds the true end.
            _LOGGER.debug("%s: seek to frame %d failed (%s); skipping by decoding", self.path, start, _condense(err))
        self.close()
        try:
            self._f = sf.SoundFile(os.fsencode(self.path))
        except _SF_ERRORS as err:
            raise self._corrupt(err) from err
        self._skip(start, 0, offset)

    def blocks(self, offset: float, duration: "float | None", block_frames: int) -> Iterator[np.ndarray]:
        """Mono float32 blocks of at most ``block_frames`` samples covering the region."""
        start, want = _region_frames(offset, duration, self.samplerate)
        if start > 0:
            # libsndfile never reads past its frame count, so this is past the end
            # even where the count is an estimate.
            if start >= self.frames:
                raise self._past_end(offset, self._decoded_length())
            # libsndfile 1.2.2 seeks Vorbis wrongly inside the last Ogg page (up to
            # ~750 samples off, with a glitch); land well before the target and
            # decode forward, which is exact and costs ~2 s of decoding.
            pre = min(start, _OGG_PREROLL_S * self.samplerate) if self.format == "OGG" else 0
            self._seek(start - pre, offset)
            if pre:
                self._skip(pre, start - pre, offset)
        buf = np.empty((_read_frames(self.channels, block_frames), self.channels), dtype=np.float32)
        got = 0
        ended = False
        while not ended and (want is None or got < want):
            # One output block of up to block_frames mono samples, read in byte-sized pieces.
            n_block = block_frames if want is None else min(block_frames, want - got)
            pieces, have = [], 0
            while have < n_block:
                n = min(len(buf), n_block - have)
                chunk = self._read(buf, n)
                if len(chunk):
                    pieces.append(_finite(self.path, _mono(chunk)))
                    have += len(chunk)
                if len(chunk) < n:
                    ended = True
                    break
            if not have:
                break
            got += have
            yield pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        if start == 0 and want is None and got:
            self._note_truncation(got)
        if got == 0:
            if start > 0:
                raise self._past_end(offset, self._decoded_length())
            raise DecodeError(self.path, "no audio samples")


class _AvDecoder:
    """PyAV (FFmpeg) decoding of mono blocks, for what libsndfile cannot read."""

    def __init__(self, path: str, av):
        self.path = path
        self._av = av
        self._errors = tuple(
            e for e in (getattr(av, "FFmpegError", None), getattr(av, "AVError", None)) if isinstance(e, type)
        ) + (OSError, ValueError, RuntimeError, EOFError, IndexError, TypeError)
        try:
            self._container = av.open(path)
        except self._errors as err:
            raise DecodeError(path, f"not an audio file or unsupported format ({_condense(err)})") from err
        try:
            audio = self._container.streams.audio
            if not audio:
                raise DecodeError(path, "no audio stream")
            self._stream = audio[0]
            cc = self._stream.codec_context
            self.samplerate = int(cc.sample_rate or 0)
            if self.samplerate <= 0:
                raise DecodeError(path, "no sample rate in the audio stream")
            _check_samplerate(path, self.samplerate)
            self.notes: list[str] = []
            self.channels = max(1, len(cc.layout.channels))
            # The codec family ("mp3"), not FFmpeg's decoder name ("mp3float").
            self.format = str(getattr(cc.codec, "canonical_name", None) or cc.name or "").upper()
            s = self._stream
            if s.duration is not None and s.time_base is not None:
                seconds = float(s.duration * s.time_base)
            elif self._container.duration is not None:
                seconds = self._container.duration / av.time_base
            else:
                seconds = 0.0
            self.frames = int(round(seconds * self.samplerate))
        except MirtagError:
            self.close()
            raise
        except self._errors as err:
            self.close()
            raise DecodeError(path, f"cannot read audio stream ({_condense(err)})") from err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - closing must never mask the real error
            pass

    def blocks(self, offset: float, duration: "float | None", block_frames: int) -> Iterator[np.ndarray]:
        """Mono float32 blocks of about ``block_frames`` samples covering the region."""
        sr = self.samplerate
        start, want = _region_frames(offset, duration, sr)
        tb = self._stream.time_base
        resampler = self._av.AudioResampler(format="fltp")  # planar float32; channels kept
        pos = None  # absolute sample index of the next decoded sample
        got, pending, pending_n = 0, [], 0
        try:
            # Seek to a packet at or before the target, minus a pre-roll: the first
            # frame after a seek lacks its predecessor's overlap (AAC, MP3). Near
            # the start, decode from the top instead: a seek to 0 skips the AAC
            # priming packet. Samples before `start` are trimmed below.
            target = offset - _AV_PREROLL_S
            if target > 0:
                self._container.seek(int(target / tb), stream=self._stream)
            for frame in itertools.chain(self._container.decode(self._stream), [None]):
                if frame is None and pos is None:
                    break  # nothing decoded; flushing an unused resampler raises
                if pos is None:
                    if frame.pts is None:
                        if start > 0:
                            raise DecodeError(self.path, "cannot seek: the stream has no timestamps")
                        pos = 0
                    else:
                        # Negative for AAC priming samples, which the trim below drops.
                        pos = int(round(float(frame.pts * (frame.time_base or tb)) * sr))
                for out in resampler.resample(frame):
                    x = _mono(out.to_ndarray().T)
                    first, pos = pos, pos + len(x)
                    if start > first:
                        x = x[start - first :]
                    if want is not None:
                        x = x[: want - got]
                    if len(x) == 0:
                        continue
                    got += len(x)
                    pending.append(_finite(self.path, x))
                    pending_n += len(x)
                    if pending_n >= block_frames:
                        yield np.concatenate(pending)
                        pending, pending_n = [], 0
                if want is not None and got >= want:
                    break
        except MirtagError:
            raise
        except self._errors as err:
            raise DecodeError(self.path, f"corrupt or truncated audio: {_condense(err)}") from err
        if pending:
            yield np.concatenate(pending)
        if got == 0:
            if start > 0:
                end = pos if pos is not None else self.frames
                raise DecodeError(
                    self.path, f"offset {round(offset, 3)} s is past the end ({_seconds(max(end, 0), sr)} s)"
                )
            raise DecodeError(self.path, "no audio samples")
