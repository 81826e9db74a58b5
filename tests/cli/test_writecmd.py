"""``mirtag write`` / ``mirtag untag`` end to end: dry run, apply, exit codes, SIGKILL, scan -> write -> scan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from mirtag.cli.main import app
from mirtag.runtime.card import resolve_model
from mirtag.runtime.tagwrite import KILL_HOOK_ENV
from tests.tagfiles import (
    ffmpeg_md5,
    make_mp3,
    make_vorbis,
    needs_ffmpeg,
    random_bytes_md5,
    scan_row,
    taglib_tags,
    write_rows,
)

CARD = resolve_model()
TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")
runner = CliRunner()


def _rows(tmp_path: Path, *files: Path) -> Path:
    return write_rows(
        tmp_path / "tags.jsonl", [scan_row(f, CARD, genre={"Jazz": 0.6}, moods={"calm": 0.8}) for f in files]
    )


def test_dry_run_prints_old_and_new_then_apply_and_untag(tmp_path):
    f = make_vorbis(tmp_path / "a.flac", "FLAC", genre="Blues")
    rows = _rows(tmp_path, f)
    before = random_bytes_md5(f)
    res = runner.invoke(app, ["write", str(rows)])
    assert res.exit_code == 0, res.output
    assert f"{f}\n" in res.stdout
    assert "moods [MOOD]: - -> calm" in res.stdout
    assert "genres" not in res.stdout  # fill: the file's genre stays
    assert "dry run" in res.stderr and random_bytes_md5(f) == before
    res = runner.invoke(app, ["write", str(rows), "--apply", "--policy", "merge"])
    assert res.exit_code == 0, res.output
    assert "genres [GENRE]: Blues -> Blues; Jazz" in res.stdout and "1 written" in res.stderr
    assert taglib_tags(f)["GENRE"] == ["Blues", "Jazz"]
    journal = tmp_path / "tags.jsonl.tagjournal.jsonl"
    res = runner.invoke(app, ["untag", str(journal), "--apply"])
    assert res.exit_code == 0, res.output
    assert "genres [GENRE]: Blues; Jazz -> Blues" in res.stdout
    tags = taglib_tags(f)
    assert tags["GENRE"] == ["Blues"] and "MOOD" not in tags and "MIRTAG_MODEL" not in tags


def test_exit_codes(tmp_path):
    f = make_vorbis(tmp_path / "a.flac", "FLAC")
    rows = _rows(tmp_path, f)
    assert runner.invoke(app, ["write", str(tmp_path / "missing.csv")]).exit_code == 2
    assert runner.invoke(app, ["write", str(rows), "--policy", "overwrite"]).exit_code == 2
    assert runner.invoke(app, ["write", str(rows), "--heads", "genre,emotionz"]).exit_code == 2
    bad_map = tmp_path / "map.toml"
    bad_map.write_text('[genre]\n"Jazz" = "Jazz/Blues"\n')
    res = runner.invoke(app, ["write", str(rows), "--label-map", str(bad_map)])
    assert res.exit_code == 2 and "players split" in res.stderr
    foreign = write_rows(tmp_path / "foreign.jsonl", [dict(scan_row(f, CARD), model_sha256="0" * 64)])
    res = runner.invoke(app, ["write", str(foreign)])
    assert res.exit_code == 2 and "--model" in res.stderr
    os.chmod(f, 0o444)
    res = runner.invoke(app, ["write", str(rows), "--apply"])
    assert res.exit_code == 0 and "read-only file" in res.stderr
    assert runner.invoke(app, ["write", str(rows), "--apply", "--strict"]).exit_code == 1


@needs_ffmpeg
def test_sigkill_during_the_copy_leaves_the_original_and_a_rerun_finishes(tmp_path):
    f = make_mp3(tmp_path / "tight.mp3", 3, padding=0)  # no padding: the write goes through a temporary copy
    rows = _rows(tmp_path, f)
    raw, audio = random_bytes_md5(f), ffmpeg_md5(f)
    cmd = [sys.executable, "-m", "mirtag", "write", str(rows), "--apply"]
    killed = subprocess.run(cmd, env={**os.environ, KILL_HOOK_ENV: "copy"}, capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr
    assert random_bytes_md5(f) == raw and ffmpeg_md5(f) == audio  # untouched, still playable
    assert taglib_tags(f)["GENRE"] == ["Rock"] and "MOOD" not in taglib_tags(f)
    from mirtag.runtime.tagjournal import read_journal

    (rec,) = read_journal(tmp_path / "tags.jsonl.tagjournal.jsonl")  # on disk before the file was touched
    assert rec["op"] == "begin" and rec["old"]["TXXX:MOOD"] is None and rec["new"]["TXXX:MOOD"] == ["calm"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "1 written" in done.stderr
    assert taglib_tags(f)["MOOD"] == ["calm"] and ffmpeg_md5(f) == audio
    assert not list(tmp_path.glob(".*mirtag-tmp*"))


def test_scan_then_write_then_scan_analyses_nothing(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    files = [
        make_vorbis(lib / "a.flac", "FLAC"),
        make_mp3(lib / "b.mp3", 4, genre=None),
        make_vorbis(lib / "c.ogg", "OGG", "VORBIS"),
    ]
    out = tmp_path / "tags.csv"
    scan = ["scan", str(lib), "--out", str(out), "--model", TINY, "--workers", "1", "--embeddings", "auto"]
    res = runner.invoke(app, scan)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["write", str(out), "--apply", "--model", TINY, "--min-confidence", "0"])
    assert res.exit_code == 0, res.output
    assert "3 written" in res.stderr
    for f in files:
        assert taglib_tags(f)["GENRE"], f
    rows_after_write = out.read_text()
    from mirtag.runtime.embeddings import Embeddings, sidecar_for

    with Embeddings.open(sidecar_for(out)) as emb:  # the vectors' keys follow the files too
        keys = {Path(k["path"]).name: (k["size"], k["mtime_ns"]) for k in emb.key_records()}
    assert keys == {f.name: (os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files}
    res = runner.invoke(app, scan)
    assert res.exit_code == 0, res.output
    assert "0 files to scan, 3 already in" in res.stderr
    assert out.read_text() == rows_after_write
    # untag updates the rows too: still nothing to analyse
    res = runner.invoke(app, ["untag", f"{out}.tagjournal.jsonl", "--apply"])
    assert res.exit_code == 0 and "3 written" in res.stderr, res.output
    assert all("GENRE" not in taglib_tags(f) for f in files)
    res = runner.invoke(app, scan)
    assert "0 files to scan, 3 already in" in res.stderr, res.output


def test_scan_write_tags_chains_scan_and_apply(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    f = make_vorbis(lib / "a.flac", "FLAC")
    out = tmp_path / "tags.jsonl"
    res = runner.invoke(app, ["scan", str(lib), "--out", str(out), "--model", TINY, "--workers", "1", "--write-tags"])
    assert res.exit_code == 0, res.output
    tags = taglib_tags(f)
    assert tags["MIRTAG_QUADRANT"][0] in ("Q1", "Q2", "Q3", "Q4") and tags["MIRTAG_MODEL"][0].startswith("tiny")
    assert (tmp_path / "tags.jsonl.tagjournal.jsonl").is_file()
    res = runner.invoke(app, ["scan", str(lib), "--out", "-", "--format", "jsonl", "--write-tags"])
    assert res.exit_code == 2


@needs_ffmpeg
def test_sigkill_at_random_moments_leaves_every_file_old_or_new(tmp_path):
    """Kill `mirtag write --apply` at random moments: each file is old or new, never torn; a rerun finishes."""
    import random
    import time

    lib = tmp_path / "lib"
    lib.mkdir()
    # Enough files, and kills soon enough after the first journal record, that an idle machine is still mid-run.
    files = [make_mp3(lib / f"p{i}.mp3", 4 - i % 2, genre=None, padding=4096 if i % 3 else 0) for i in range(12)]
    files += [make_vorbis(lib / f"v{i}.flac", "FLAC") for i in range(4)]
    rows = _rows(tmp_path, *files)
    old = {f: taglib_tags(f) for f in files}
    audio = {f: ffmpeg_md5(f) for f in files}
    cmd = [sys.executable, "-m", "mirtag", "write", str(rows), "--apply", "--quiet"]
    journal = tmp_path / "tags.jsonl.tagjournal.jsonl"

    def records() -> int:
        return journal.read_bytes().count(b"\n") if journal.exists() else 0

    rng = random.Random(7)
    written = []
    for _ in range(5):
        before = records()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while records() == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)  # wait for the first journal record: the writes have begun
        time.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        proc.wait()
        written.append(sum(taglib_tags(f).get("MOOD") == ["calm"] for f in files))
        for f in files:
            tags = taglib_tags(f)
            new = {**old[f], "GENRE": ["Jazz"], "MOOD": ["calm"]}
            assert tags == old[f] or {k: tags.get(k) for k in new} == new, (f, tags)
            assert ffmpeg_md5(f) == audio[f], f
    assert 0 < written[0] and written[-1] < len(files) or written[0] < written[-1], written  # kills landed mid-run
    done = subprocess.run(cmd[:-1], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "0 error" in done.stderr
    for f in files:
        assert taglib_tags(f)["MOOD"] == ["calm"] and ffmpeg_md5(f) == audio[f]
    again = subprocess.run(cmd[:-1], capture_output=True, text=True, check=False)
    assert f"{len(files)} unchanged" in again.stderr, again.stderr
