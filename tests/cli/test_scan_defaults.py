"""Defaults a newcomer meets: scan with no folder walks the music folder; an empty folder says what is scanned."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import soundfile as sf
import typer
from typer.testing import CliRunner

from mirtag.cli.main import app
from mirtag.runtime.scan import ScanSettings
from mirtag.runtime.userdirs import music_dir
from tests.synth import music_like

TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")
runner = CliRunner()


def test_music_dir_follows_xdg_then_the_user_dirs_file_then_home_music(tmp_path):
    home = tmp_path / "home"
    assert music_dir({}, home) == home / "Music"
    assert music_dir({"XDG_MUSIC_DIR": str(tmp_path / "x")}, home) == tmp_path / "x"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "user-dirs.dirs").write_text('# written by xdg-user-dirs-update\nXDG_MUSIC_DIR="$HOME/Musik"\n')
    assert music_dir({}, home) == home / "Musik"
    (home / ".config" / "user-dirs.dirs").write_text('XDG_MUSIC_DIR="$HOME/"\n')  # disabled: not all of home
    assert music_dir({}, home) == home / "Music"
    other = tmp_path / "cfg"
    other.mkdir()
    (other / "user-dirs.dirs").write_text('XDG_MUSIC_DIR="/srv/music"\n')
    assert music_dir({"XDG_CONFIG_HOME": str(other)}, home) == Path("/srv/music")


def _env(home: Path) -> dict:
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_MUSIC_DIR": None}


def test_scan_without_a_folder_scans_the_music_folder_and_says_so(tmp_path):
    home = tmp_path / "home"
    (home / "Music").mkdir(parents=True)
    sf.write(home / "Music" / "song.wav", music_like(22050, 3.5, seed=1), 22050)
    out = tmp_path / "tags.csv"
    result = runner.invoke(app, ["scan", "--out", str(out), "--model", TINY, "--device", "cpu"], env=_env(home))
    assert result.exit_code == 0, result.output
    assert f"scanning your music folder {home / 'Music'} (no folder given)" in result.stderr
    assert "song.wav" in out.read_text()


def test_scan_without_a_folder_and_no_music_folder_is_a_usage_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = runner.invoke(app, ["scan", "--out", str(tmp_path / "t.csv"), "--model", TINY], env=_env(home))
    assert result.exit_code == 2
    assert f"your music folder {home / 'Music'} does not exist: give the folders to scan" in result.stderr
    assert not (tmp_path / "t.csv").exists()


def test_an_empty_folder_says_which_extensions_a_scan_picks_up(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no music here")
    result = runner.invoke(app, ["scan", str(tmp_path / "notes"), "--out", str(tmp_path / "t.csv"), "--model", TINY])
    assert result.exit_code == 0, result.output
    assert "no audio files under" in result.stderr
    assert ".flac" in result.stderr and ".mp3" in result.stderr and "--include GLOB" in result.stderr


def test_scan_option_defaults_are_scan_settings_defaults():
    command = typer.main.get_command(app).commands["scan"]
    defaults = {p.name: p.default for p in command.params}
    passed = ("model", "device", "workers", "batch_size", "coverage", "top_k", "min_confidence", "time_limit")
    for field in dataclasses.fields(ScanSettings):
        if field.name in passed:  # the options the CLI hands to ScanSettings one to one
            assert defaults[field.name] == field.default, field.name
