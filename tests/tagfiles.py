"""Real tagged audio files for the tag-writer tests, and independent readers.

Files are written with soundfile (mp3, flac, ogg, opus, aiff, wav) or ffmpeg
(m4a, wma) and given existing tags and a cover picture with mutagen. The readers
that judge the writer are not the writer's own: TagLib (pytaglib, what Navidrome
reads with) and ffprobe; decoded audio is compared by ffmpeg's md5 muxer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from tests.synth import music_like

COVER = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
# CI sets MIRTAG_REQUIRE_FFMPEG=1: there a missing ffmpeg fails these tests instead of skipping them.
needs_ffmpeg = pytest.mark.skipif(
    (FFMPEG is None or FFPROBE is None) and not os.environ.get("MIRTAG_REQUIRE_FFMPEG"),
    reason="ffmpeg/ffprobe not installed (.ci/run installs Debian's ffmpeg)",
)


def make_mp3(path: Path, version: int, genre: str | None = "Rock", padding: int | None = None) -> Path:
    """An MP3 with an ID3v2.<version> tag: artist, artist sort (TSOP), year, genre and a cover."""
    from mutagen.id3 import APIC, ID3, TCON, TPE1, TSOP, TXXX, TYER

    sf.write(path, music_like(44100, 2.0, seed=1, channels=2), 44100, format="MP3")
    t = ID3()
    t.add(TPE1(encoding=1, text=["AC/DC"]))
    t.add(TSOP(encoding=1, text=["ACDC"]))  # a v2.4 frame iTunes writes into v2.3 files: must survive
    t.add(TYER(encoding=1, text=["1979"]) if version == 3 else TXXX(encoding=3, desc="YEARNOTE", text=["1979"]))
    if genre:
        t.add(TCON(encoding=1, text=[genre]))
    t.add(APIC(encoding=0, mime="image/png", type=3, desc="cover", data=COVER))
    t.save(path, v2_version=version, padding=(lambda info: padding) if padding is not None else None)
    return path


def make_vorbis(path: Path, fmt: str, subtype: str | None = None, genre: str | None = None) -> Path:
    """FLAC / Ogg Vorbis / Opus with an artist (and a genre, a FLAC cover)."""
    import mutagen
    from mutagen.flac import Picture

    rate = 48000 if subtype == "OPUS" else 44100
    sf.write(path, music_like(rate, 2.0, seed=2, channels=2), rate, format=fmt, subtype=subtype)
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    f.tags["ARTIST"] = ["Someone"]
    if genre:
        f.tags["GENRE"] = [genre]
    if fmt == "FLAC":
        pic = Picture()
        pic.type, pic.mime, pic.data = 3, "image/png", COVER
        f.add_picture(pic)
    f.save()
    return path


def make_aiff(path: Path) -> Path:
    from mutagen.aiff import AIFF
    from mutagen.id3 import TPE1

    sf.write(path, music_like(44100, 2.0, seed=3, channels=2), 44100, format="AIFF")
    f = AIFF(path)
    f.add_tags()
    f.tags.add(TPE1(encoding=3, text=["Someone"]))
    f.save()
    return path


def make_ffmpeg(path: Path, codec: str) -> Path:
    """M4A (AAC) or WMA made by ffmpeg from a generated WAV, with an artist tag."""
    wav = path.with_suffix(".src.wav")
    sf.write(wav, music_like(44100, 2.0, seed=4, channels=2), 44100)
    subprocess.run(
        [
            FFMPEG,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(wav),
            "-c:a",
            codec,
            "-b:a",
            "96k",
            "-metadata",
            "artist=Someone",
            str(path),
        ],
        check=True,
    )
    wav.unlink()
    return path


def ffmpeg_md5(path: Path) -> str:
    """md5 of the decoded audio, by ffmpeg (independent of mirtag's decoders)."""
    out = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "md5", "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip()


def ffprobe_tags(path: Path) -> dict[str, str]:
    """Format and stream tags as ffprobe reports them (keys lower-cased)."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format_tags:stream_tags", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    doc = json.loads(out)
    tags = {k.lower(): v for k, v in (doc.get("format", {}).get("tags") or {}).items()}
    for s in doc.get("streams", []):
        tags.update({k.lower(): v for k, v in (s.get("tags") or {}).items()})
    return tags


def taglib_tags(path: Path) -> dict[str, list[str]]:
    import taglib

    with taglib.File(os.fspath(path)) as f:
        return {k: list(v) for k, v in f.tags.items()}


def mutagen_dump(path: Path) -> dict[str, object]:
    """Every tag mutagen sees, in comparable form (pictures as bytes)."""
    import mutagen
    from mutagen.id3 import ID3

    f = mutagen.File(path)
    if f is None or f.tags is None:
        return {}
    if isinstance(f.tags, ID3):
        g = type(f)(path, translate=False)
        return {k: (fr.data if hasattr(fr, "data") else fr.text) for k, fr in g.tags.items()} | {
            "_version": g.tags.version
        }
    out: dict[str, object] = {}
    for k, v in f.tags.items():
        vals = v if isinstance(v, list) else [v]
        out[k.lower() if hasattr(k, "lower") else k] = [bytes(x) if isinstance(x, bytes) else str(x) for x in vals]
    if hasattr(f, "pictures"):
        out["_pictures"] = [p.data for p in f.pictures]
    return out


def scan_row(path: Path, card, genre=None, moods=None, quadrant="Q1", music=0.97, warning=None) -> dict:
    """A schema-1 scan row for ``path`` with chosen probabilities (the rest near 0)."""
    st = os.stat(path)
    heads = {}
    for h in card.heads:
        probs = {lab: 0.01 for lab in h.labels}
        heads[h.name] = {"probs": probs, "top": [], "vote": None}
    heads["genre"]["probs"].update(genre or {})
    heads["moods"]["probs"].update(moods or {})
    heads["quadrant"]["probs"].update({quadrant: 0.8})
    heads["music"]["probs"]["music"] = music
    return {
        "schema_version": 1,
        "path": os.fspath(path),
        "path_b64": None,
        "status": "ok",
        "error": None,
        "warning": warning,
        "duration_s": 2.0,
        "n_windows": 1,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "model": card.ref,
        "model_sha256": card.sha256,
        "coverage": "full",
        "heads": heads,
    }


def write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def random_bytes_md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(Path(path).read_bytes()).hexdigest()
