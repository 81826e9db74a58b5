"""Every command's help reads as a user's words: no Python types as metavars."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from mirtag.cli.main import app

runner = CliRunner()


def _commands(command, path=()):
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def test_no_help_shows_a_python_type():
    paths = list(_commands(typer.main.get_command(app)))
    assert ("scan",) in paths and ("map", "grid") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, (path, result.output)
        leaks = re.findall(r"<(?:bool|int|str|float|path|list\[[^\]]*\]|int range|float range)>", result.output)
        assert not leaks, (path, leaks)


def test_values_have_plain_metavars_and_flags_none():
    out = runner.invoke(app, ["scan", "--help"], terminal_width=200).output
    assert "[PATH]..." in out  # optional: no folder scans the music folder
    assert re.search(r"--workers\s+N\b", out) and re.search(r"--force\s+Rescan", out)
    assert re.search(r"--verbose\s+-v\s+More logging", runner.invoke(app, ["--help"], terminal_width=200).output)
