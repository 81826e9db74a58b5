"""scripts/fetch_debian_music.py without the network: reserved packages, licences, archives, music files."""

from __future__ import annotations

import importlib.util
import re
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fetch_debian_music", ROOT / "scripts" / "fetch_debian_music.py")
fetch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fetch)


def _reserved_in_docs() -> list[str]:
    """The evaluation packages as docs/teacher.md names them (code never spells them out)."""
    text = (ROOT / "docs" / "teacher.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("**Reserved for evaluation"))
    return re.findall(r"`([a-z0-9.+-]+)`", line)


def test_the_reserved_packages_are_refused_and_never_listed():
    reserved = _reserved_in_docs()
    assert len(reserved) >= 2
    assert all(fetch.is_reserved(name) for name in reserved)
    assert not any(fetch.is_reserved(p) for p in fetch.MUSIC_PACKAGES + fetch.GAME_DATA_PACKAGES)


def test_licences_from_machine_readable_and_free_text_copyright_files():
    dep5 = "Format: x\n\nFiles: *\nLicense: GPL-2+\n\nFiles: music/*\nLicense: CC-BY-SA-3.0\n\nLicense: GPL-2+\n"
    assert fetch.licenses(dep5) == ["GPL-2+", "CC-BY-SA-3.0"]
    old = "This music is released under the GNU General Public License, version 2 or later."
    assert fetch.licenses(old) == ["GPL (free-text notice)"]
    assert fetch.licenses("") == []


def test_music_files_unpacks_game_archives_and_skips_sound_effects(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "usr/share/game/sounds").mkdir(parents=True)
    y = (0.1 * np.sin(np.arange(22050 * 12) * 0.05)).astype(np.float32)
    sf.write(pkg / "usr/share/game/sounds/long.ogg", np.tile(y, 4), 22050)  # 48 s: music by length
    sf.write(pkg / "usr/share/game/sounds/click.ogg", y[:22050], 22050)  # 1 s: an effect
    song = tmp_path / "song.ogg"
    sf.write(song, y, 22050)  # 12 s, inside a music folder of an archive
    with zipfile.ZipFile(pkg / "usr/share/game/base.pk3", "w") as zf:
        zf.write(song, "music/song.ogg")
        zf.writestr("../evil.ogg", b"x")  # never extracted outside the archive's folder
        zf.writestr("maps/readme.txt", "not audio")
    found = {p.relative_to(pkg).as_posix(): round(s) for p, s in fetch.music_files(pkg, min_seconds=40)}
    assert found == {"usr/share/game/base.pk3.d/music/song.ogg": 12, "usr/share/game/sounds/long.ogg": 48}
    assert not (tmp_path / "evil.ogg").exists()
