"""The scan output: one resume function for CLI and embedders, the lock, foreign files, error retries, temp files."""

from __future__ import annotations

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
from mirtag.runtime.output import OutputLockedError, open_output
from mirtag.runtime.rows import OutputConflictError, read_rows
from mirtag.runtime.scan import ScanSettings, scan

from tests.conftest import music_like

TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")
SHA = "0" * 64


def _row(path: Path, status: str = "ok", **extra) -> dict:
    st = path.stat()
    row = {
        "schema_version": 1,
        "path": str(path),
        "path_b64": None,
        "status": status,
        "error": None if status == "ok" else "timed out after 600 s",
        "warning": None,
        "duration_s": 1.0,
        "n_windows": 1,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "model": "tiny@0.0.1",
        "model_sha256": SHA,
        "coverage": "full",
        "heads": None,
    }
    row.update(extra)
    return row


def _open(out, **kw):
    return open_output(out, Path(out).suffix[1:], heads=["genre"], model_sha256=SHA, coverage="full", **kw)


@pytest.fixture
def two_files(tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    for p in (a, b):
        sf.write(p, np.zeros(100, np.float32), 22050)
    return a, b


def test_error_rows_are_retried_by_default_and_kept_with_retry_errors_false(tmp_path, two_files):
    a, b = two_files
    out = tmp_path / "t.jsonl"
    out.write_text(json.dumps(_row(a)) + "\n" + json.dumps(_row(b, "error")) + "\n")
    o = _open(out)
    assert set(o.kept) == {str(a)} and o.kept_errors == 0
    o.close()
    assert [r["path"] for r in read_rows(out, "jsonl")] == [str(a)], "the error row is dropped, its file rescanned"
    out.write_text(json.dumps(_row(a)) + "\n" + json.dumps(_row(b, "error")) + "\n")
    o = _open(out, retry_errors=False)
    assert set(o.kept) == {str(a), str(b)} and o.kept_errors == 1
    o.close()


def test_a_second_open_on_a_locked_output_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "t.jsonl"
    first = _open(out)
    t0 = time.monotonic()
    with pytest.raises(OutputLockedError, match=f"PID {os.getpid()}"):
        _open(out)
    assert time.monotonic() - t0 < 1.0
    first.close()
    _open(out).close()  # released on close
    assert not Path(f"{out}.lock").exists()


def test_a_lock_holder_killed_with_sigkill_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "t.jsonl"
    code = (
        "import sys, time; from mirtag.runtime.output import OutputLock; "
        f"lock = OutputLock({str(out)!r}); lock.acquire(); print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputLockedError, match=f"PID {holder.pid}"):
            _open(out)
    finally:
        holder.kill()
        holder.wait()
    _open(out).close()


def test_ctrl_c_landing_anywhere_in_taking_or_dropping_the_lock_leaves_the_output_free(tmp_path):
    # A process that catches the interrupt and goes on (an embedder, the CLI printing its summary)
    # must never keep a lock it no longer knows it holds: its next open of the output would fail
    # as "being written by another mirtag scan" naming itself. Either the lock was dropped or the
    # lock object still holds it, and release() drops it. The child takes and drops the lock
    # in a tight loop, the way a scan's start and end do, and is interrupted at a random moment.
    out = tmp_path / "t.jsonl"
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # a CI job may start us with SIGINT ignored
        "from mirtag.runtime.output import OutputLock, OutputLockedError\n"
        f"out = {str(out)!r}\n"
        "lock = OutputLock(out)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    while True:\n"
        "        try:\n"
        "            lock.acquire()\n"
        "        finally:\n"
        "            lock.release()\n"
        "except KeyboardInterrupt:\n"
        "    lock.release()\n"  # the interrupt may have landed on entry to release(): the lock knows it holds
        "again = OutputLock(out)\n"
        "try:\n"
        "    again.acquire()\n"
        "except OutputLockedError as exc:\n"
        "    print('held:', exc)\n"
        "else:\n"
        "    again.release()\n"
        "    print('free', os.path.exists(out + '.lock'))\n"
    )
    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.0, 0.02, size=40):
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        got, err = child.communicate(timeout=30)
        assert got.strip() == "free False", f"after an interrupt at {delay * 1000:.1f} ms: {got} {err[-1000:]}"


def test_a_lock_file_left_by_a_dead_scan_is_removed_as_stale_and_a_held_one_never(tmp_path):
    from mirtag.runtime.output import OutputLock

    out = tmp_path / "t.jsonl"
    Path(f"{out}.lock").write_text("12345\n")  # what an interrupt on entry to release() can leave
    assert OutputLock.remove_stale(out) is True
    assert not Path(f"{out}.lock").exists()
    assert OutputLock.remove_stale(out) is False
    with OutputLock(out):
        assert OutputLock.remove_stale(out) is False
        assert Path(f"{out}.lock").exists()
    assert not Path(f"{out}.lock").exists()


def test_deferred_signals_hold_ctrl_c_until_the_block_ends():
    from mirtag.runtime.interrupts import deferred_signals

    reached_the_end = False
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # a CI job may start us with SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached_the_end = True
    finally:
        signal.signal(signal.SIGINT, before)
    assert reached_the_end


def test_deferred_signals_leave_an_ignored_signal_ignored():
    from mirtag.runtime.interrupts import deferred_signals

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_signals():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # nothing is raised, now or later
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("diary.jsonl", "dear diary\ntoday I scanned nothing\n"),
        ("notes.jsonl", '{"mood": "happy"}\n'),
        ("playlist.csv", "path,title\n/music/a.mp3,A\n"),
        ("list.json", '[{"path": "/music/a.mp3"}]'),
        ("object.json", '{"path": "/music/a.mp3"}'),
        ("text.json", "not json at all"),
    ],
)
@pytest.mark.parametrize("resume", [True, False])
def test_a_file_that_is_not_mirtag_output_is_refused_and_left_untouched(tmp_path, name, content, resume):
    out = tmp_path / name
    out.write_text(content)
    with pytest.raises(OutputConflictError, match="not a mirtag output"):
        _open(out, resume=resume)
    assert out.read_text() == content
    assert not Path(f"{out}.lock").exists() and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_temp_files_of_an_interrupted_writer_are_removed(tmp_path, two_files):
    a, _ = two_files
    out = tmp_path / "t.json"
    (tmp_path / "t.partial.jsonl").write_text(json.dumps(_row(a)) + "\n")
    stale = [tmp_path / ".t.json.12345.tmp", tmp_path / ".t.partial.jsonl.999.tmp", tmp_path / ".t.json.tmp"]
    for p in stale:
        p.write_text("half")
    o = _open(out)
    assert set(o.kept) == {str(a)}
    o.close()
    assert not any(p.exists() for p in stale)
    assert [r["path"] for r in json.loads(out.read_text())] == [str(a)]


def test_embedders_resume_through_scan_out(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        sf.write(lib / f"s{i}.wav", music_like(22050, 1.5, seed=i), 22050)
    (lib / "bad.wav").write_text("not audio")
    out = tmp_path / "tags.jsonl"
    settings = ScanSettings(model=TINY, device="cpu", workers=1)
    stats = []
    first = list(scan([lib], settings, out=out, on_start=stats.append))
    assert len(first) == 4 and len(read_rows(out, "jsonl")) == 4
    assert (stats[0].total, stats[0].skipped) == (4, 0) and (stats[0].ok, stats[0].error) == (3, 1)
    # The error row is retried by default; the ok rows are kept.
    again = list(scan([lib], settings, out=out, on_start=stats.append))
    assert [os.path.basename(r["path"]) for r in again] == ["bad.wav"]
    assert (stats[1].total, stats[1].skipped) == (1, 3)
    kept = list(scan([lib], settings, out=out, retry_errors=False, on_start=stats.append))
    assert kept == [] and stats[2].skipped == 4 and stats[2].output_errors == 1
    assert len(list(scan([lib], settings, out=out, resume=False))) == 4
    rows = read_rows(out, "jsonl")
    assert sorted(os.path.basename(r["path"]) for r in rows) == ["bad.wav", "s0.wav", "s1.wav", "s2.wav"]
