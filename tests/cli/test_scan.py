"""``mirtag scan`` on a generated messy library: rows, errors, resume, crashes, names, stdout, exit codes."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from mirtag.cli.main import app
from tests.scanargs import MIRTAG, scan_args
from tests.conftest import music_like

TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")
BAD_NAME = b"caf\xe9 \xff.wav"  # not valid UTF-8


def build_library(root: Path, n_good: int = 6) -> dict[str, str]:
    """A messy library; returns {file name: expected status}."""
    root.mkdir(parents=True, exist_ok=True)
    expect = {}
    for i in range(n_good):
        fmt, ext = [("FLAC", "flac"), ("MP3", "mp3"), ("WAV", "wav"), ("OGG", "ogg")][i % 4]
        name = f"song{i:02d}.{ext}"
        sf.write(root / name, music_like(44100, 3.0 + i % 3, seed=i, channels=2), 44100, format=fmt)
        expect[name] = "ok"
    (root / "sub" / "deeper").mkdir(parents=True)
    sf.write(root / "sub" / "deeper" / "nested.wav", music_like(22050, 2.0, seed=9), 22050)
    expect["nested.wav"] = "ok"
    (root / "empty.mp3").write_bytes(b"")
    expect["empty.mp3"] = "error"
    (root / "text.flac").write_text("this is not audio")
    expect["text.flac"] = "error"
    good = (root / "song00.flac").read_bytes()
    (root / "truncated.flac").write_bytes(good[: len(good) // 3])
    expect["truncated.flac"] = "error_or_ok"  # libsndfile may decode what is there
    y = music_like(22050, 3.0)
    y[1000] = np.nan
    sf.write(root / "nan.wav", y, 22050, subtype="FLOAT")
    expect["nan.wav"] = "error"
    sf.write(root / "silence.wav", np.zeros(22050 * 4, np.float32), 22050)
    expect["silence.wav"] = "ok"
    sf.write(root / "tiny.wav", music_like(22050, 0.5), 22050)
    expect["tiny.wav"] = "ok"
    sf.write(os.fsencode(root) + b"/" + BAD_NAME, music_like(22050, 2.0, seed=3), 22050)
    expect[os.fsdecode(BAD_NAME)] = "ok"
    (root / ".hidden.wav").write_bytes((root / "nested.wav").read_bytes() if (root / "nested.wav").exists() else b"")
    (root / "notes.txt").write_text("not scanned")
    return expect


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    return root, build_library(root)


def run_cli(*args, env=None, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "mirtag.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_name(rows):
    return {
        os.path.basename(os.fsdecode(base64.b64decode(r["path_b64"])) if r["path_b64"] else r["path"]): r for r in rows
    }


def check_rows(rows, expect):
    names = by_name(rows)
    assert len(rows) == len(expect) == len(names), "exactly one row per file"
    assert set(names) == set(expect)
    for name, status in expect.items():
        row = names[name]
        if status != "error_or_ok":
            assert row["status"] == status, (name, row["error"])
        if row["status"] == "error":
            assert row["error"] and "\n" not in row["error"] and row["heads"] is None
        else:
            assert row["error"] is None and set(row["heads"]) == {"genre", "quadrant"}
            tops = [h["top"] for h in row["heads"].values()]
            assert all(isinstance(t, list) for t in tops)
            if row["warning"] == "silent":
                assert not any(tops), "silence gets no decisions"
            assert row["heads"]["quadrant"]["vote"] in ("Q1", "Q2", "Q3", "Q4")
    assert names["silence.wav"]["warning"] == "silent"
    assert names["tiny.wav"]["warning"] == "shorter than one window"
    assert "NaN" in names["nan.wav"]["error"] and names["empty.mp3"]["error"] == "empty file"


def test_scan_writes_one_row_per_file_with_clear_errors(library, tmp_path):
    root, expect = library
    out = tmp_path / "tags.jsonl"
    result = run_cli("scan", str(root), "--out", str(out), "--model", TINY, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", "stdout carries data only"
    rows = read_jsonl(out)
    check_rows(rows, expect)
    assert all(r["schema_version"] == 1 and r["model"] == "tiny@0.0.1" and r["coverage"] == "full" for r in rows)
    assert "done:" in result.stderr and "CPUExecutionProvider" in result.stderr


def test_non_utf8_names_round_trip(library, tmp_path):
    root, _ = library
    out = tmp_path / "tags.json"
    assert run_cli("scan", str(root), "--out", str(out), "--model", TINY, "--quiet").returncode == 0
    rows = json.loads(out.read_text())
    odd = [r for r in rows if r["path_b64"]]
    assert len(odd) == 1
    raw = base64.b64decode(odd[0]["path_b64"])
    assert raw.endswith(BAD_NAME) and os.path.exists(raw)
    assert not out.with_name("tags.partial.jsonl").exists(), "the journal is renamed into place"


def test_csv_output_and_stdout_mode(library, tmp_path):
    root, expect = library
    out = tmp_path / "tags.csv"
    assert run_cli("scan", str(root), "--out", str(out), "--model", TINY, "-q").returncode == 0
    with open(out, newline="", encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == len(expect)
    assert list(records[0])[:12] == [
        "path",
        "path_b64",
        "status",
        "error",
        "warning",
        "duration_s",
        "n_windows",
        "size",
        "mtime_ns",
        "model",
        "model_sha256",
        "coverage",
    ]
    ok = [r for r in records if r["status"] == "ok"]
    # A top list may be empty (below every threshold), so which row comes first must not matter.
    assert all(":" in r["genre_scores"] and ":" in r["quadrant_scores"] for r in ok)
    assert any(r["genre"] for r in ok) and any(r["quadrant"] in ("Q1", "Q2", "Q3", "Q4") for r in ok)
    result = run_cli("scan", str(root), "--out", "-", "--format", "jsonl", "--model", TINY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(expect) and all(json.loads(line)["path"] for line in lines)


def test_resume_keeps_rows_and_rescans_changed_files(library, tmp_path):
    root, expect = library
    runner = CliRunner()
    out = tmp_path / "tags.jsonl"
    args = ["scan", str(root), "--out", str(out), "--model", TINY, "-q"]
    assert runner.invoke(app, args).exit_code == 0
    first = by_name(read_jsonl(out))
    # A torn last line (a killed writer) is ignored; a changed file is rescanned.
    with open(out, "a") as fh:
        fh.write('{"path": "/half')
    target = root / "song01.mp3"
    os.utime(target, ns=(time.time_ns(), time.time_ns()))
    assert runner.invoke(app, args).exit_code == 0
    second = by_name(read_jsonl(out))
    assert set(second) == set(expect) and len(read_jsonl(out)) == len(expect)
    assert second["song01.mp3"]["mtime_ns"] != first["song01.mp3"]["mtime_ns"]
    assert second["song00.flac"] == first["song00.flac"]
    # Other output settings than the stored rows: refuse (exit 2) unless --force.
    result = runner.invoke(app, [*args, "--top-k", "1"])
    assert result.exit_code == 2 and "--force" in result.output
    assert runner.invoke(app, [*args, "--top-k", "1", "--force"]).exit_code == 0


def test_scan_killed_with_sigkill_resumes_to_exactly_one_row_per_file(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    clip = music_like(22050, 20.0)  # long enough that the scan is still running when it is killed
    for i in range(24):
        sf.write(root / f"t{i:02d}.wav", np.roll(clip, 1000 * i), 22050)
    out = tmp_path / "tags.jsonl"
    cmd = [*MIRTAG, *scan_args(root, out, "-q", "--batch-size", "4")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = out.read_text().count("\n")
    assert 3 <= partial < 24, "killed mid-scan"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    rows = read_jsonl(out)
    assert sorted(os.path.basename(r["path"]) for r in rows) == [f"t{i:02d}.wav" for i in range(24)]


def test_a_worker_killed_mid_file_costs_only_that_file(library, tmp_path):
    root, expect = library
    out = tmp_path / "tags.jsonl"
    result = run_cli(
        "scan", str(root), "--out", str(out), "--model", TINY, "-q", env={"MIRTAG_TEST_KILL_WORKER_ON": "song03"}
    )
    assert result.returncode == 0, result.stderr
    rows = by_name(read_jsonl(out))
    assert len(rows) == len(expect)
    assert rows["song03.ogg"]["status"] == "error" and "crashed" in rows["song03.ogg"]["error"]
    assert rows["song04.flac"]["status"] == "ok" and rows["song02.wav"]["status"] == "ok"


def test_exit_codes(library, tmp_path):
    root, _ = library
    runner = CliRunner()
    bad_ext = runner.invoke(app, ["scan", str(root), "--out", str(tmp_path / "x.txt"), "--model", TINY])
    assert bad_ext.exit_code == 2 and ".csv, .jsonl or .json" in bad_ext.output
    assert runner.invoke(app, ["scan", str(root), "--out", "-", "--model", TINY]).exit_code == 2
    missing = run_cli("scan", str(root), "--out", str(tmp_path / "y.csv"), "--model", str(tmp_path / "nope.onnx"))
    assert missing.returncode == 1 and "model card not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    strict = runner.invoke(
        app, ["scan", str(root), "--out", str(tmp_path / "z.csv"), "--model", TINY, "-q", "--strict"]
    )
    assert strict.exit_code == 1


def test_sample_coverage_reads_n_windows(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    sf.write(root / "long.flac", music_like(44100, 60.0, channels=2), 44100)
    out = tmp_path / "s.jsonl"
    result = run_cli("scan", str(root), "--out", str(out), "--model", TINY, "-q", "--coverage", "sample:3")
    assert result.returncode == 0, result.stderr
    (row,) = read_jsonl(out)
    assert row["status"] == "ok" and row["n_windows"] == 3 and row["coverage"] == "sample:3"
    assert abs(row["duration_s"] - 60.0) < 0.5


def test_python_api_yields_rows_with_progress_and_cancel(library):
    import threading

    from mirtag.runtime.scan import ScanSettings, scan

    root, expect = library
    seen = []
    rows = list(scan([root], ScanSettings(model=TINY, device="cpu"), progress=lambda d, t, r: seen.append((d, t))))
    assert len(rows) == len(expect) and seen[0] == (0, len(expect)) and seen[-1] == (len(expect), len(expect))
    cancel = threading.Event()
    cancel.set()
    assert list(scan([root], ScanSettings(model=TINY), cancel=cancel)) == []


def test_a_file_over_the_time_limit_becomes_an_error_row(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    sf.write(root / "long.wav", music_like(22050, 120.0), 22050)
    out = tmp_path / "t.jsonl"
    result = run_cli("scan", str(root), "--out", str(out), "--model", TINY, "-q", "--time-limit", "0.001")
    assert result.returncode == 0, result.stderr
    (row,) = read_jsonl(out)
    assert row["status"] == "error" and row["error"].startswith("timed out after")
