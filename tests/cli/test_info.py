"""``mirtag info`` and the CLI's error handling."""

from __future__ import annotations

import re
import subprocess
import sys

from typer.testing import CliRunner

from mirtag.cli import main
from mirtag.cli.main import app

runner = CliRunner()


def _text(output: str) -> str:
    """The words of CLI output, without rich's box drawing and line wrapping."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", output).split())


def test_info_lists_providers_threading_layer_cache_and_models():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for needle in ("onnxruntime packages", "CPUExecutionProvider", "numba threading layer", "numba cache dir", "model"):
        assert needle in result.output


def test_mirtag_runs_as_a_console_script():
    result = subprocess.run([sys.executable, "-m", "mirtag.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "info" in result.stdout


def test_info_without_onnxruntime_prints_the_install_command_and_paths_verbatim(monkeypatch, tmp_path):
    import shutil
    from pathlib import Path

    from mirtag.runtime import card

    # Rich markup would eat "[gpu]" in a path as it ate "[cpu]" in the install hint.
    models = tmp_path / "models [gpu]"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "tiny", models)
    monkeypatch.setattr(card, "exported_dir", lambda: models)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(main.out, "width", 400)  # one line per row, as in a wide terminal
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "onnxruntime is not installed: run  pip install onnxruntime  (or onnxruntime-gpu" in result.output
    assert "models [gpu]" in result.output


def test_a_device_that_is_not_one_is_a_usage_error_before_any_work(tmp_path):
    for argv in (
        ["scan", str(tmp_path), "--out", str(tmp_path / "t.csv"), "--device", "gpu"],
        ["map", "grid", "--out", str(tmp_path / "g.png"), "--device", "gpu"],
        ["tag", str(tmp_path / "a.wav"), "--device", "gpu"],
        ["similar", str(tmp_path / "a.wav"), "--device", "gpu"],
    ):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert "'gpu' is not auto, cpu, cuda or cuda:N (a GPU is 'cuda')" in _text(result.output)
    assert not list(tmp_path.iterdir())
