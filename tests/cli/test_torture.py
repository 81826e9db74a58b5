"""The standing torture suite: ``mirtag scan`` over scripts/torture_library.py's bad inputs.

One row per file with the expected status and a one-line reason, no traceback, and the whole
process tree (parent, fork server, workers) within a memory bound; plus files deleted or
truncated while the scan runs.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from mirtag.runtime.scan import ScanSettings, scan
from tests.synth import music_like

ROOT = Path(__file__).parents[2]
TINY = str(ROOT / "tests" / "fixtures" / "tiny")
TREE_PSS_BOUND_MB = 600


def _load_generator():
    spec = importlib.util.spec_from_file_location("torture_library", ROOT / "scripts" / "torture_library.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


def _tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory(threading.Thread):
    """Polls the PSS of a process and its descendants; ``peak_mb`` is the largest sum seen."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_mb = max(self.peak_mb, sum(_pss_kb(p) for p in _tree(self.pid)) / 1024)
            time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc to measure memory")
def test_the_torture_library_gives_one_row_per_file_no_traceback_and_bounded_memory(tmp_path):
    lib = tmp_path / "lib"
    expect = _load_generator().build(lib)
    out = tmp_path / "t.jsonl"
    cmd = [sys.executable, "-m", "mirtag.cli.main", "-v", "scan", str(lib), "--out", str(out), "--model", TINY]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mem = TreeMemory(proc.pid)
    mem.start()
    stdout, stderr = proc.communicate(timeout=600)
    mem.stop.set()
    mem.join()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_rel = {}
    for r in rows:
        raw = base64.b64decode(r["path_b64"]) if r["path_b64"] else os.fsencode(r["path"])
        by_rel[os.path.relpath(raw, os.fsencode(lib))] = r
    assert len(rows) == len(by_rel) == len(expect), "exactly one row per file"
    assert set(by_rel) == set(expect)
    for rel, exp in expect.items():
        row = by_rel[rel]
        if exp.status is not None:
            assert row["status"] == exp.status, (rel, row["error"], row["warning"])
        if row["status"] == "error":
            assert row["error"] and "\n" not in row["error"] and exp.text in row["error"], (rel, row["error"])
        else:
            assert exp.text in (row["warning"] or ""), (rel, row["warning"])
    # The skipped special files are named at info level (-v), one line each.
    for name in ("fifo.wav", "dangling.wav", "device.wav"):
        if (lib / name).is_symlink() or (lib / name).exists():
            assert sum(name in line for line in stderr.splitlines()) == 1, (name, stderr)
    print(f"torture scan: {len(rows)} rows, process tree peak {mem.peak_mb:.0f} MB PSS")
    assert mem.peak_mb < TREE_PSS_BOUND_MB, f"process tree peaked at {mem.peak_mb:.0f} MB PSS"


def test_files_deleted_or_truncated_during_the_scan_are_error_or_ok_rows(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(4):
        sf.write(lib / f"a{i}.wav", music_like(22050, 3.0, seed=i), 22050)
    sf.write(lib / "z-deleted.flac", music_like(22050, 3.0, seed=8), 22050)
    sf.write(lib / "z-truncated.flac", music_like(22050, 6.0, seed=9), 22050)

    def meddle(done, total, row):
        if row is None:  # the walk is done, no file decoded yet: the library changes under the scan
            (lib / "z-deleted.flac").unlink()
            data = (lib / "z-truncated.flac").read_bytes()
            (lib / "z-truncated.flac").write_bytes(data[: len(data) // 3])

    out = tmp_path / "t.jsonl"
    rows = {
        os.path.basename(r["path"]): r
        for r in scan([lib], ScanSettings(model=TINY, workers=1), progress=meddle, out=out)
    }
    assert len(rows) == 6 and len(out.read_text().splitlines()) == 6
    assert rows["z-deleted.flac"]["status"] == "error" and "No such file" in rows["z-deleted.flac"]["error"]
    trunc = rows["z-truncated.flac"]
    assert trunc["status"] == "error" or trunc["duration_s"] < 6.0
    assert all(rows[f"a{i}.wav"]["status"] == "ok" for i in range(4))
