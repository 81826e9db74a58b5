"""Fetch Debian's free music packages into a cache folder, for teacher labelling.

    python scripts/fetch_debian_music.py --cache /work/cache/debian-music [--game-data]

Each package is fetched with ``apt-get download`` and unpacked with ``dpkg -x``
into ``<cache>/<package>/`` (nothing goes into the repository). The script then
writes, next to the packages:

- ``corpus.csv``: ``file`` (relative to the cache), ``package``, ``seconds``, one
  row per music file kept;
- ``packages.json``: per package ``version``, ``licenses`` (the ``License:``
  fields of ``usr/share/doc/<package>/copyright``), ``files``, ``hours``.

Music files are the Ogg/MP3/FLAC/WAV/Opus files that sit under a folder whose
name says music, or that last at least ``--min-seconds`` (sound effects are
short). A package already unpacked (``<cache>/<package>/.done``) is not fetched
again; the ``.deb`` is deleted after unpacking. The cache location may also come
from ``MIRTAG_DEBIAN_MUSIC``.

Two Debian music packages are reserved as the project's evaluation library
(named in docs/teacher.md, not here): the script refuses them by the sha256 of
their names.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

_LOGGER = logging.getLogger("fetch_debian_music")

# Music-only packages in Debian main (DFSG-free).
MUSIC_PACKAGES = [
    "ufoai-music",
    "warzone2100-music",
    "nexuiz-music",
    "hyperrogue-music",
    "planetblupi-music-ogg",
    "singularity-music",
    "drascula-music",
    "pushover-data",
    "tomatoes-data",
    "xblast-tnt-musics",
    "fb-music-high",
]
# Game data packages with soundtracks inside (large: 230-630 MB each).
GAME_DATA_PACKAGES = ["freedroidrpg-data", "naev-data", "widelands-data", "supertuxkart-data"]
# Never in the training corpus: the held-out check of scripts/heldout_check.py fetches these into a cache of
# its own (--packages), and the teacher labels them for that evaluation only.
HELDOUT_PACKAGES = [
    "freecol",
    "lordsawar-data",
    "megaglest-data",
    "lugaru-data",
    "hedgewars-data",
    "lincity-ng-data",
    "scorched3d-data",
    "freeorion-data",
    "endless-sky-data",
]
assert not set(HELDOUT_PACKAGES) & set(MUSIC_PACKAGES + GAME_DATA_PACKAGES)

AUDIO_SUFFIXES = {".ogg", ".oga", ".mp3", ".flac", ".wav", ".opus"}
_MUSIC_DIR = re.compile(r"(^|/)[^/]*(music|musics|musique|soundtrack|songs?)[^/]*/", re.IGNORECASE)


def _name_hash(name: str) -> str:
    return hashlib.sha256(name.strip().lower().encode()).hexdigest()


def is_reserved(name: str) -> bool:
    """Whether ``name`` is one of the reserved evaluation packages (or a metapackage of them)."""
    return _name_hash(name) in RESERVED_HASHES


# sha256 of the reserved evaluation packages' names and of their metapackage (docs/teacher.md).
RESERVED_HASHES = frozenset(
    {
        "9282dc3b57bd0a08d6392f941069cc55ec0b205dd49daa3af344df7efc6ed50c",
        "927c2d7340ff83c698ae5f20ea53f43b83263048e3ef29852713f481ff24f1d4",
        "430de906ea91b30820b1e3396c8bc1b12f38efc9fd962f60cb23789815edbe7a",
    }
)


def cache_root(arg: str | None) -> Path:
    root = arg or os.environ.get("MIRTAG_DEBIAN_MUSIC")
    if not root:
        sys.exit("fetch_debian_music: give --cache or set MIRTAG_DEBIAN_MUSIC")
    return Path(root).expanduser().resolve()


def licenses(copyright_text: str) -> list[str]:
    """The distinct ``License:`` short names of a Debian copyright file, in order."""
    seen: list[str] = []
    for m in re.finditer(r"^License:\s*(\S[^\n]*)$", copyright_text, re.MULTILINE):
        name = m.group(1).strip()
        if name not in seen:
            seen.append(name)
    if not seen and copyright_text.strip():
        # an older free-text copyright file: name the licence families it states
        low = copyright_text.lower()
        for phrase, name in (
            ("general public license", "GPL (free-text notice)"),
            ("creative commons", "Creative Commons (free-text notice)"),
            ("public domain", "public domain (free-text notice)"),
            ("artistic license", "Artistic (free-text notice)"),
        ):
            if phrase in low:
                seen.append(name)
        seen = seen or ["see the package's copyright file"]
    return seen


def report(meta: dict) -> str:
    """A Markdown table of the corpus: package, version, files, hours, licences (as the copyright files state)."""
    lines = ["| package | version | music files | hours | licences (copyright file) |", "|---|---|---|---|---|"]
    for pkg in sorted(meta):
        m = meta[pkg]
        lic = "; ".join(m["licenses"][:6]) + (" ..." if len(m["licenses"]) > 6 else "")
        lines.append(f"| {pkg} | {m['version']} | {len(m['files'])} | {m['hours']:.2f} | {lic} |")
    total = sum(m["hours"] for m in meta.values())
    lines.append(f"| **all** | | {sum(len(m['files']) for m in meta.values())} | {total:.2f} | |")
    return "\n".join(lines)


def fetch(package: str, root: Path) -> tuple[str, Path]:
    """apt-get download + dpkg -x into ``root/package``. Returns (version, folder)."""
    dest = root / package
    done = dest / ".done"
    if done.is_file():
        return done.read_text().strip(), dest
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for old in debs.glob(f"{package}_*.deb"):
        old.unlink()
    subprocess.run(["apt-get", "download", package], cwd=debs, check=True, stdout=subprocess.DEVNULL)
    (deb,) = debs.glob(f"{package}_*.deb")
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["dpkg", "-x", str(deb), str(dest)], check=True)
    deb.unlink()
    done.write_text(version + "\n")
    return version, dest


def duration_s(path: Path) -> float | None:
    """Seconds of audio (soundfile header), None when it cannot be read."""
    import soundfile as sf  # an ImportError here must stop the run, not empty the corpus

    try:
        info = sf.info(str(path))
        return info.frames / float(info.samplerate)
    except Exception:  # noqa: BLE001 - an unreadable file is skipped, not fatal
        return None


def unpack_archives(folder: Path) -> None:
    """Extract the audio members of game archives (``.pk3``/``.pk4``/``.zip``) next to them.

    Quake-engine games (nexuiz, ufoai) keep their music in zip archives; the
    members go to ``<archive>.d/`` (skipped when that folder exists).
    """
    for arc in sorted(folder.rglob("*")):
        if arc.suffix.lower() not in {".pk3", ".pk4", ".zip"} or not arc.is_file():
            continue
        dest = arc.with_name(arc.name + ".d")
        if dest.is_dir():
            continue
        tmp = arc.with_name(arc.name + ".d.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with zipfile.ZipFile(arc) as zf:
                for info in zf.infolist():
                    member = PurePosixPath(info.filename)
                    if (
                        member.suffix.lower() in AUDIO_SUFFIXES
                        and ".." not in member.parts
                        and not member.is_absolute()
                    ):
                        zf.extract(info, tmp)
        except zipfile.BadZipFile as exc:
            _LOGGER.warning("%s: not a zip archive (%s)", arc, exc)
            continue
        tmp.mkdir(exist_ok=True)
        tmp.rename(dest)


def music_files(folder: Path, min_seconds: float) -> list[tuple[Path, float]]:
    """Audio files under ``folder`` that are music: in a music folder, or long."""
    unpack_archives(folder)
    out = []
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() not in AUDIO_SUFFIXES or not p.is_file() or p.is_symlink():
            continue
        rel = p.relative_to(folder).as_posix()
        sec = duration_s(p)
        if sec is None or sec < 5.0:
            continue
        if _MUSIC_DIR.search(rel) or sec >= min_seconds:
            out.append((p, sec))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="cache folder (default: $MIRTAG_DEBIAN_MUSIC)")
    ap.add_argument("--game-data", action="store_true", help="also the large game data packages")
    ap.add_argument("--packages", nargs="*", help="only these packages")
    ap.add_argument("--report", action="store_true", help="print the corpus table (Markdown) and stop")
    ap.add_argument("--min-seconds", type=float, default=40.0, help="files outside music folders need this length")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)

    root = cache_root(args.cache)
    if args.report:
        print(report(json.loads((root / "packages.json").read_text())))
        return 0
    root.mkdir(parents=True, exist_ok=True)
    wanted = args.packages or (MUSIC_PACKAGES + (GAME_DATA_PACKAGES if args.game_data else []))
    meta_path = root / "packages.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    for pkg in wanted:
        if is_reserved(pkg):
            _LOGGER.error("%s: reserved for evaluation, refused", pkg)
            continue
        try:
            version, folder = fetch(pkg, root)
        except (subprocess.CalledProcessError, ValueError) as exc:
            _LOGGER.error("%s: fetch failed: %s", pkg, exc)
            continue
        copyright_file = folder / "usr/share/doc" / pkg / "copyright"
        text = copyright_file.read_text(errors="replace") if copyright_file.is_file() else ""
        files = music_files(folder, args.min_seconds)
        if not files:
            _LOGGER.warning("%s: no music files found", pkg)
        meta[pkg] = {
            "version": version,
            "licenses": licenses(text),
            "files": [[p.relative_to(root).as_posix(), round(s, 3)] for p, s in files],
            "hours": round(sum(s for _, s in files) / 3600.0, 3),
        }
        _LOGGER.info(
            "%s %s: %d files, %.2f h, %s",
            pkg,
            version,
            len(files),
            meta[pkg]["hours"],
            "; ".join(meta[pkg]["licenses"]) or "no copyright file",
        )
        meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True))

    with open(root / "corpus.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "package", "seconds"])
        for pkg in sorted(meta):
            for rel, sec in meta[pkg]["files"]:
                w.writerow([rel, pkg, sec])
    total = sum(m["hours"] for m in meta.values())
    _LOGGER.info("corpus: %d packages, %.2f h -> %s", len(meta), total, root / "corpus.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
