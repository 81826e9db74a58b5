"""The short CI version of benchmarks/kill_resume.py, and Ctrl-C at any moment of a scan."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from tests.synth import music_like

ROOT = Path(__file__).parents[2]
TINY = str(ROOT / "tests" / "fixtures" / "tiny")


@pytest.mark.slow
def test_scans_killed_at_random_moments_end_with_exactly_one_row_per_file(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "kill_resume.py"), "--cycles", "3", "--files", "6",
         "--seed", "3", "--workers", "1", "--workdir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["pass"] and summary["cycles_done"] == 3 and summary["kills"] >= 1
    assert summary["rows_found"] == summary["rows_expected"] == 3 * summary["files"]
    assert summary["duplicates"] == summary["torn_lines"] == summary["tracebacks"] == 0


# From 0.3 s on: before that the interpreter itself is starting (its site import), which no program can guard.
@pytest.mark.parametrize("delay", [0.3, 0.6, 1.0, 1.5, 3.0])
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path, delay):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        sf.write(lib / f"t{i}.wav", music_like(22050, 20.0, seed=i), 22050)
    out = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mirtag.cli.main", "scan", str(lib), "--out", str(out), "--model", TINY,
         "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and "Aborted" not in err, err
    assert proc.returncode in (130, 0), err
    if proc.returncode == 130:
        assert "interrupted" in err
    assert not Path(f"{out}.lock").exists()
