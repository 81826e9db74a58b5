"""The library walk: deep trees, special files and links (each skip is logged)."""

from __future__ import annotations

import logging
import os

import pytest

from mirtag.runtime.walk import iter_audio_files


def test_a_tree_1000_folders_deep_is_walked(tmp_path):
    folder = tmp_path
    for _ in range(1000):  # a legal ~2,000-character path
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.wav").write_bytes(b"x")
    (tmp_path / "top.wav").write_bytes(b"x")
    try:
        found = list(iter_audio_files([tmp_path]))
        assert [os.path.basename(p) for p in found] == ["deep.wav", "top.wav"]
        assert len(found[0]) > 2000
    finally:
        # shutil.rmtree (pytest's clean-up of old temp folders) recurses and would fail on this tree.
        (folder / "deep.wav").unlink()
        while folder != tmp_path:
            folder.rmdir()
            folder = folder.parent


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_dangling_and_device_symlinks_are_skipped_with_an_info_line(tmp_path, caplog):
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "null.wav").symlink_to("/dev/null")
    (tmp_path / "real.wav").write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="mirtag.runtime.walk"):
        found = list(iter_audio_files([tmp_path], follow_symlinks=True))
    assert [os.path.basename(p) for p in found] == ["real.wav"]
    text = {os.path.basename(r.getMessage().split(":")[0]): r.getMessage() for r in caplog.records}
    assert "FIFO" in text["pipe.wav"] and "dangling" in text["gone.wav"] and "device" in text["null.wav"]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mirtag.runtime.walk"):
        assert [os.path.basename(p) for p in iter_audio_files([tmp_path])] == ["real.wav"]
    assert {os.path.basename(r.getMessage().split(":")[0]) for r in caplog.records} == {
        "pipe.wav",
        "gone.wav",
        "null.wav",
    }


def test_a_symlink_loop_is_entered_once(tmp_path, caplog):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_bytes(b"x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)
    with caplog.at_level(logging.WARNING):
        found = list(iter_audio_files([tmp_path], follow_symlinks=True))
    assert [os.path.relpath(p, tmp_path) for p in found] == ["a/x.wav"]
    assert any("loop" in r.getMessage() for r in caplog.records)
