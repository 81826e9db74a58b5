"""The beets plugin, driven through real beets (`beet` subprocesses, a temporary BEETSDIR, real files).

The tiny fixture model's outputs are a fixed function of the audio, so what each item should get is computed
independently here with ``Tagger`` (no scan engine, no beets) and compared with what beets stores and writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mutagen
import numpy as np
import pytest
import soundfile as sf

from mirtag.runtime import Tagger
from tests.synth import music_like

pytest.importorskip("beets", reason="the beets extra is not installed (pip install -e '.[beets]')")

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "tests" / "fixtures" / "tiny")
BEET = str(Path(sys.executable).with_name("beet"))
SR = 22050
DATA = Path(os.environ.get("MIRTAG_DATA") or REPO.parent / "shared" / "data")


def clicks(seconds: float, seed: int) -> np.ndarray:
    """Sparse clicks over faint noise: the tiny model calls it Q1 (music_like is Q3)."""
    rng = np.random.default_rng(seed)
    n = int(SR * seconds)
    y = 0.001 * rng.standard_normal(n)
    y[:: 2205 + 37 * seed] = 0.9
    return y.astype(np.float32)


def make_files(folder: Path, specs) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, y in specs:
        fmt = {"flac": "FLAC", "mp3": "MP3", "ogg": "OGG"}[name.rsplit(".", 1)[1]]
        sf.write(folder / name, y, SR, format=fmt)
        out.append(folder / name)
    return out


def beet(beetsdir: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "BEETSDIR": str(beetsdir)}
    return subprocess.run([BEET, *args], capture_output=True, text=True, env=env, timeout=timeout)


def configure(beetsdir: Path, id3v23: bool = False, **mirtag) -> None:
    beetsdir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"id3v23: {'yes' if id3v23 else 'no'}",
        f"directory: {beetsdir / 'lib'}",
        f"library: {beetsdir / 'library.db'}",
        "plugins: [mirtag]",
        "import:",
        "  write: no",
        "  duplicate_action: keep",  # generated files have no tags: all would look alike
        "mirtag:",
        "  device: cpu",
        "  workers: 1",
    ] + [f"  {k}: {v}" for k, v in mirtag.items()]
    (beetsdir / "config.yaml").write_text("\n".join(lines) + "\n")


def paths(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 0, result.stderr
    return {line for line in result.stdout.splitlines() if line}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """A beets library of five generated files, imported as-is and tagged by `beet mirtag` (tiny model)."""
    root = tmp_path_factory.mktemp("beets")
    files = make_files(
        root / "music",
        [
            ("a clicks.flac", clicks(4.0, 1)),
            ("b clicks.mp3", clicks(5.0, 2)),
            ("c music.flac", music_like(SR, 4.0, seed=3)),
            ("d music.mp3", music_like(SR, 6.0, seed=4)),
            ("e music.ogg", music_like(SR, 3.0, seed=5)),
        ],
    )
    beetsdir = root / "beetsdir"
    configure(beetsdir, model=TINY)
    imported = beet(beetsdir, "import", "-A", "-C", "-q", str(root / "music"))
    assert imported.returncode == 0, imported.stderr
    result = beet(beetsdir, "mirtag")
    tagger = Tagger.load(TINY, device="cpu")
    expect = {str(f): tagger.tag_file(f) for f in files}
    return beetsdir, files, result, expect, tagger


def test_beet_mirtag_tags_every_item_through_the_scan_engine(tagged):
    beetsdir, files, result, expect, tagger = tagged
    assert result.returncode == 0, result.stderr
    assert "mirtag: 5 tagged, 0 already analysed, 0 errors" in result.stdout
    shown = beet(beetsdir, "ls", "-f", "$path|$mirtag_quadrant|$mirtag_model|$mirtag_genre_score|$mirtag_genre")
    got = {line.split("|")[0]: line.split("|")[1:] for line in shown.stdout.splitlines()}
    for path, res in expect.items():
        quadrant, model, score, genres = got[path]
        assert quadrant == res.top("quadrant", tagger.card)[0]
        assert model == tagger.card.ref
        assert float(score) == pytest.approx(max(res.heads["genre"].values()), abs=1e-3)
        assert genres.split("; ") == res.top("genre", tagger.card)


def test_queries_on_the_typed_fields_return_the_right_items(tagged):
    beetsdir, files, _, expect, tagger = tagged
    q1 = {p for p, r in expect.items() if r.top("quadrant", tagger.card)[:1] == ["Q1"]}
    assert q1 and q1 != set(expect)  # the library has both kinds
    assert paths(beet(beetsdir, "ls", "-p", "mirtag_quadrant:Q1")) == q1
    assert paths(beet(beetsdir, "ls", "-p", "mirtag_quadrant:Q4")) == {
        p for p, r in expect.items() if r.top("quadrant", tagger.card)[:1] == ["Q4"]
    }
    # A Float range query: compared as numbers (as text, "0.1" > "0.05" but "0.1" < "0.95" would also pass).
    scores = {p: max(r.heads["quadrant"].values()) for p, r in expect.items()}
    cut = float(np.median(sorted(set(np.round(list(scores.values()), 3)))))
    want = {p for p, s in scores.items() if s >= cut}
    assert want and want != set(expect)
    assert paths(beet(beetsdir, "ls", "-p", f"mirtag_quadrant_score:{cut}..")) == want


def test_items_analysed_by_the_same_model_are_skipped_unless_forced(tagged):
    beetsdir = tagged[0]
    again = beet(beetsdir, "mirtag")
    assert again.returncode == 0 and "mirtag: 0 tagged, 5 already analysed" in again.stdout
    forced = beet(beetsdir, "mirtag", "--force", "path::clicks")  # a query: only the matching items
    assert forced.returncode == 0 and "mirtag: 2 tagged, 0 already analysed" in forced.stdout


def test_beet_write_puts_the_fields_into_the_files(tagged):
    beetsdir, files, _, expect, tagger = tagged
    result = beet(beetsdir, "write")
    assert result.returncode == 0, result.stderr
    for f in files:
        res = expect[str(f)]
        quadrant = res.top("quadrant", tagger.card)[0]
        genres = res.top("genre", tagger.card)
        tags = mutagen.File(f)
        if f.suffix == ".mp3":
            assert str(tags.tags["TXXX:MIRTAG_QUADRANT"]) == quadrant
            assert str(tags.tags["TXXX:MIRTAG_MODEL"]) == tagger.card.ref
            assert list(tags.tags["TCON"].text) == genres
        else:
            assert tags["MIRTAG_QUADRANT"] == [quadrant] and tags["MIRTAG_MODEL"] == [tagger.card.ref]
            assert tags["GENRE"] == genres


@pytest.mark.parametrize("id3v23", [False, True])
def test_mood_goes_where_mirtag_write_puts_it(tmp_path, id3v23):
    """TMOO in ID3v2.4; TXXX:MOOD joined by "; " in ID3v2.3 (no TMOO there); MOOD in Vorbis comments."""
    files = make_files(tmp_path / "music", [("m.mp3", music_like(SR, 3.0, seed=1)), ("m.flac", music_like(SR, 3.0))])
    beetsdir = tmp_path / "beetsdir"
    configure(beetsdir, id3v23=id3v23, model=TINY)
    assert beet(beetsdir, "import", "-A", "-C", "-q", str(tmp_path / "music")).returncode == 0
    assert beet(beetsdir, "modify", "-y", "-w", "mood=calm\\␀dreamy").returncode == 0  # beets' write path
    id3 = mutagen.File(files[0]).tags
    assert id3.version == ((2, 3, 0) if id3v23 else (2, 4, 0))
    if id3v23:
        assert "TMOO" not in id3 and str(id3["TXXX:MOOD"]) == "calm; dreamy"
    else:
        assert id3["TMOO"].text == ["calm", "dreamy"] and "TXXX:MOOD" not in id3
    assert mutagen.File(files[1])["MOOD"] == ["calm", "dreamy"]
    # Read back by beets' own path (the field's storage style): the same two values.
    shown = beet(beetsdir, "ls", "-f", "$mood", "path::m.mp3")
    assert shown.stdout.strip() == "calm; dreamy"


def test_a_corrupt_file_is_one_error_line_and_the_rest_are_tagged(tmp_path):
    files = make_files(tmp_path / "music", [("ok1.flac", clicks(3.0, 7)), ("ok2.ogg", music_like(SR, 3.0, seed=8))])
    bad = make_files(tmp_path / "music", [("bad.flac", music_like(SR, 3.0, seed=9))])[0]
    beetsdir = tmp_path / "beetsdir"
    configure(beetsdir, model=TINY)
    assert beet(beetsdir, "import", "-A", "-C", "-q", str(tmp_path / "music")).returncode == 0
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 8] + os.urandom(len(data) - len(data) // 8))  # damaged after import
    result = beet(beetsdir, "mirtag")
    assert result.returncode == 1
    assert "mirtag: 2 tagged, 0 already analysed, 1 errors" in result.stdout
    errors = [line for line in result.stderr.splitlines() if str(bad) in line]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert paths(beet(beetsdir, "ls", "-p", "mirtag_model:tiny")) == {str(f) for f in files}


def test_import_with_auto_tags_new_items(tagged, tmp_path):
    beetsdir = tmp_path / "beetsdir"
    configure(beetsdir, model=TINY, auto="yes")
    new = make_files(tmp_path / "new" / "album one", [("new clicks.flac", clicks(4.0, 11))])
    new += make_files(tmp_path / "new" / "album two", [("new music.ogg", music_like(SR, 3.0, seed=12))])
    result = beet(beetsdir, "import", "-A", "-C", "-q", str(tmp_path / "new"))  # two albums, one scan engine
    assert result.returncode == 0, result.stderr
    shown = beet(beetsdir, "ls", "-f", "$path|$mirtag_quadrant|$mirtag_model_sha256")
    got = {line.split("|")[0]: line.split("|")[1:] for line in shown.stdout.splitlines()}
    tagger = tagged[4]
    assert set(got) == {str(f) for f in new}
    for f in new:
        quadrant, sha = got[str(f)]
        assert sha == tagger.card.sha256 and quadrant == tagger.tag_file(f).top("quadrant", tagger.card)[0]


def test_a_model_that_cannot_load_is_one_line(tmp_path):
    make_files(tmp_path / "music", [("x.flac", clicks(3.0, 1))])
    beetsdir = tmp_path / "beetsdir"
    configure(beetsdir, model=str(tmp_path / "missing.onnx"))
    assert beet(beetsdir, "import", "-A", "-C", "-q", str(tmp_path / "music")).returncode == 0
    result = beet(beetsdir, "mirtag")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        line for line in result.stderr.splitlines() if "missing.onnx" in line
    ]


@pytest.mark.slow
def test_the_shipped_model_fills_genres_mood_and_music(tmp_path):
    clips = (
        sorted((DATA / "4q" / "audio" / "Q4").glob("*.ogg"))[:2]
        + sorted((DATA / "4q" / "audio" / "Q2").glob("*.ogg"))[:1]
    )
    if not clips:
        pytest.skip(f"no 4Q audio under {DATA} (set MIRTAG_DATA)")
    music = tmp_path / "music"
    music.mkdir()
    for c in clips:  # copies: `beet write` must never touch the data set
        shutil.copy(c, music / c.name)
    y, sr = sf.read(clips[0])
    sf.write(music / "as mp3.mp3", y, sr, format="MP3")  # ID3: TMOO and TXXX:MIRTAG_*
    clips.append(music / "as mp3.mp3")
    beetsdir = tmp_path / "beetsdir"
    configure(beetsdir)  # model: the shipped classifier
    assert beet(beetsdir, "import", "-A", "-C", "-q", str(music)).returncode == 0
    result = beet(beetsdir, "mirtag", "--write")
    assert result.returncode == 0 and "mirtag: 4 tagged" in result.stdout, result.stderr
    tagger = Tagger.load(device="cpu")
    shown = beet(beetsdir, "ls", "-f", "$path|$mirtag_quadrant|$mirtag_music|$mood|$genres|$mirtag_model")
    moods_seen = 0
    for line in shown.stdout.splitlines():
        path, quadrant, music_p, mood, genres, model = line.split("|")
        res = tagger.tag_file(path)
        assert model == tagger.card.ref
        assert float(music_p) == pytest.approx(res.heads["music"]["music"], abs=2e-3)
        assert quadrant == (res.top("quadrant", tagger.card) or [""])[0]
        tags = mutagen.File(path)
        if path.endswith(".mp3"):
            tags = {
                "MIRTAG_QUADRANT": [str(t) for t in tags.tags.getall("TXXX:MIRTAG_QUADRANT")],
                "MOOD": [v for t in tags.tags.getall("TMOO") for v in t.text],
            }
        assert tags.get("MIRTAG_QUADRANT", []) == ([quadrant] if quadrant else [])
        if mood:
            moods_seen += 1
            assert tags["MOOD"] == mood.split("; ")
    assert moods_seen >= 1
    q4 = paths(beet(beetsdir, "ls", "-p", "mirtag_quadrant:Q4"))
    assert q4 == {
        str(music / c.name) for c in clips if tagger.tag_file(music / c.name).top("quadrant", tagger.card)[:1] == ["Q4"]
    }
