"""``mirtag scan`` under concurrency, full disks, foreign outputs and retries: nothing lost, nothing clobbered."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.scanargs import scan_args
from tests.conftest import music_like

TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")


def run_cli(*args, timeout=180, **kw):
    return subprocess.run(
        [sys.executable, "-m", "mirtag.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def scan_cmd(*args):
    return [sys.executable, "-m", "mirtag.cli.main", "scan", *map(str, args), "--model", TINY, "-q"]


def names(out: Path) -> list[str]:
    if out.suffix == ".json":
        rows = json.loads(out.read_text())
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return sorted(os.path.basename(r["path"]) for r in rows)


def make_library(root: Path, n: int, seconds: float = 2.0, bad: int = 0) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sf.write(root / f"t{i:02d}.wav", music_like(22050, seconds, seed=i), 22050)
    for i in range(bad):
        (root / f"bad{i}.wav").write_text("not audio")
    return sorted([f"t{i:02d}.wav" for i in range(n)] + [f"bad{i}.wav" for i in range(bad)])


@pytest.mark.parametrize("ext", ["jsonl", "json"])
def test_a_second_scan_on_the_same_output_exits_1_naming_the_first_and_loses_nothing(tmp_path, ext):
    expect = make_library(tmp_path / "lib", 8, seconds=6.0)
    out = tmp_path / f"tags.{ext}"
    first = subprocess.Popen(
        scan_cmd(tmp_path / "lib", "--out", out, "--workers", "1", "--batch-size", "2"),
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = out.with_name("tags.partial.jsonl") if ext == "json" else out
    deadline = time.time() + 60
    while time.time() < deadline and not (journal.exists() and journal.read_text().count("\n") >= 1):
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)  # hold the first scan mid-way, whatever the machine's speed
    try:
        t0 = time.monotonic()
        second = run_cli("scan", str(tmp_path / "lib"), "--out", str(out), "--model", TINY, "-q")
        assert second.returncode == 1, second.stderr
        assert time.monotonic() - t0 < 30
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"PID {first.pid}" in lines[0] and str(out) in lines[0]
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=180) == 0, first.stderr.read()
    assert names(out) == expect
    assert not Path(f"{out}.lock").exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("d.jsonl", "Monday: bought strings\nTuesday: practised\n"),
        ("playlist.csv", "path,title\n/music/a.mp3,A\n"),
        ("list.json", '[{"path": "/music/a.mp3"}, {"path": "/music/b.mp3"}]'),
    ],
)
@pytest.mark.parametrize("force", [False, True])
def test_scan_refuses_to_touch_a_file_that_is_not_its_own(tmp_path, name, content, force):
    make_library(tmp_path / "lib", 1)
    out = tmp_path / name
    out.write_text(content)
    result = run_cli(
        "scan", str(tmp_path / "lib"), "--out", str(out), "--model", TINY, "-q", *(["--force"] if force else [])
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "not a mirtag output" in result.stderr
    assert out.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["lib", name])


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, like ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("ext", ["jsonl", "json", "csv"])
def test_a_full_disk_is_one_line_exit_1_and_the_next_run_completes(tmp_path, ext):
    expect = make_library(tmp_path / "lib", 12, seconds=1.0)
    out = tmp_path / f"tags.{ext}"
    full = run_cli(*scan_args(tmp_path / "lib", out, "-q"), preexec_fn=_limit_file_size(2500))
    assert full.returncode == 1, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write the output" in lines[0] and "Traceback" not in full.stderr, full.stderr
    journal = out.with_name("tags.partial.jsonl") if ext == "json" else out
    assert journal.exists() and 0 < journal.stat().st_size <= 2500, "rows so far are kept"
    again = run_cli("scan", str(tmp_path / "lib"), "--out", str(out), "--model", TINY, "-q")
    assert again.returncode == 0, again.stderr
    if ext == "csv":
        import csv

        with open(out, newline="") as fh:
            assert sorted(os.path.basename(r["path"]) for r in csv.DictReader(fh)) == expect
    else:
        assert names(out) == expect
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_error_rows_are_retried_by_default_and_no_retry_errors_keeps_them(tmp_path):
    make_library(tmp_path / "lib", 1, seconds=40.0)
    out = tmp_path / "t.jsonl"
    args = ["scan", str(tmp_path / "lib"), "--out", str(out), "--model", TINY, "-q"]
    assert run_cli(*args, "--time-limit", "0.001").returncode == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["status"] == "error" and row["error"].startswith("timed out")
    assert run_cli(*args, "--no-retry-errors").returncode == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["status"] == "error", "--no-retry-errors keeps the error row"
    assert run_cli(*args).returncode == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["status"] == "ok", "a transient failure is retried on the next run"


def test_strict_judges_the_whole_output_including_earlier_error_rows(tmp_path):
    make_library(tmp_path / "lib", 2, bad=2)
    out = tmp_path / "t.jsonl"
    args = ["scan", str(tmp_path / "lib"), "--out", str(out), "--model", TINY, "-q", "--no-retry-errors"]
    assert run_cli(*args).returncode == 0
    strict = run_cli(*args, "--strict")
    assert strict.returncode == 1, "2 error rows carried over from the first run"
    clean = tmp_path / "clean"
    make_library(clean, 2)
    assert (
        run_cli("scan", str(clean), "--out", str(tmp_path / "c.jsonl"), "--model", TINY, "-q", "--strict").returncode
        == 0
    )


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_time_limit_that_is_not_positive_is_a_usage_error(tmp_path, value):
    make_library(tmp_path / "lib", 1)
    result = run_cli(
        "scan", str(tmp_path / "lib"), "--out", str(tmp_path / "t.jsonl"), "--model", TINY, f"--time-limit={value}"
    )
    assert result.returncode == 2 and "time limit" in result.stderr
    assert not (tmp_path / "t.jsonl").exists()


def test_missing_or_unreadable_explicit_files_are_error_rows_and_a_missing_folder_is_a_usage_error(tmp_path):
    make_library(tmp_path / "lib", 1)
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)  # cannot be opened: ELOOP
    out = tmp_path / "t.jsonl"
    result = run_cli(
        "scan",
        str(tmp_path / "lib" / "t00.wav"),
        str(tmp_path / "gone.mp3"),
        str(loop),
        "--out",
        str(out),
        "--model",
        TINY,
        "-q",
    )
    assert result.returncode == 0, result.stderr
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["t00.wav"]["status"] == "ok"
    assert rows["gone.mp3"]["status"] == "error" and "No such file" in rows["gone.mp3"]["error"]
    assert rows["loop.wav"]["status"] == "error" and rows["loop.wav"]["error"]
    missing = run_cli("scan", str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "m.jsonl"), "--model", TINY)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no-such-folder" in missing.stderr and not (tmp_path / "m.jsonl").exists()


def _without_root_powers() -> list[str]:
    """A command prefix under which this process cannot read a mode-000 file (root reads anything)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_a_permission_denied_explicit_file_is_an_error_row(tmp_path):
    make_library(tmp_path / "lib", 2)
    secret = tmp_path / "lib" / "t01.wav"
    secret.chmod(0o000)
    out = tmp_path / "t.jsonl"
    result = subprocess.run(
        [*_without_root_powers(), *scan_cmd(tmp_path / "lib" / "t00.wav", secret, "--out", out)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["t00.wav"]["status"] == "ok"
    assert rows["t01.wav"]["status"] == "error" and rows["t01.wav"]["error"] == "permission denied"


def test_sigterm_stops_cleanly_and_the_rerun_completes(tmp_path):
    expect = make_library(tmp_path / "lib", 8, seconds=10.0)
    out = tmp_path / "t.json"
    cmd = scan_cmd(tmp_path / "lib", "--out", out, "--workers", "1", "--batch-size", "2")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "t.partial.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (journal.exists() and journal.read_text().count("\n") >= 2):
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    err = proc.stderr.read()
    assert "Traceback" not in err and "interrupted" in err
    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    assert names(out) == expect


def test_nonfinite_features_are_an_error_row_never_a_crash(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    t = np.arange(110250) / 22050
    sf.write(lib / "huge.wav", (1e18 * np.sin(2760 * t)).astype("f4"), 22050, subtype="FLOAT")
    sf.write(lib / "fine.wav", music_like(22050, 2.0), 22050)
    for ext in ("jsonl", "json", "csv"):
        out = tmp_path / f"p.{ext}"
        result = run_cli("scan", str(lib), "--out", str(out), "--model", TINY, "-q")
        assert result.returncode == 0, result.stderr
        text = out.read_text()
        assert "nan" not in text.lower().replace("nan or inf", ""), text
        if ext != "csv":
            rows = {
                os.path.basename(r["path"]): r
                for r in (json.loads(text) if ext == "json" else map(json.loads, text.splitlines()))
            }
            assert rows["huge.wav"]["status"] == "error" and "non-finite" in rows["huge.wav"]["error"]
            assert rows["fine.wav"]["status"] == "ok"


@pytest.mark.parametrize("coverage", ["full", "sample:3"])
def test_a_truncated_mp3_is_ok_with_a_truncated_warning(tmp_path, coverage):
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "whole.mp3", music_like(44100, 40.0, channels=2), 44100, format="MP3")
    data = (lib / "whole.mp3").read_bytes()
    (lib / "cut.mp3").write_bytes(data[: len(data) // 2])
    out = tmp_path / "t.jsonl"
    result = run_cli("scan", str(lib), "--out", str(out), "--model", TINY, "-q", "--coverage", coverage)
    assert result.returncode == 0, result.stderr
    rows = {os.path.basename(r["path"]): r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["cut.mp3"]["status"] == "ok", rows["cut.mp3"]["error"]
    assert "truncated" in (rows["cut.mp3"]["warning"] or "")
    assert "truncated" not in (rows["whole.mp3"]["warning"] or "")
    assert rows["cut.mp3"]["duration_s"] < 25


def test_log_lines_on_a_piped_stderr_are_never_wrapped(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    name = "a-rather-long-file-name-that-would-not-fit-in-eighty-columns-of-terminal.wav"
    (lib / name).write_text("not audio")
    result = run_cli("scan", str(lib), "--out", str(tmp_path / "t.jsonl"), "--model", TINY)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if name in x]
    assert line.startswith("WARNING ") and line.rstrip().endswith(
        "not an audio file or unsupported format (Format not recognised)"
    )
