"""``mirtag info`` and the CLI's error handling."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from mirtag.cli.main import app

runner = CliRunner()


def test_info_lists_providers_threading_layer_cache_and_models():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for needle in ("onnxruntime packages", "CPUExecutionProvider", "numba threading layer", "numba cache dir", "model"):
        assert needle in result.output


def test_mirtag_runs_as_a_console_script():
    result = subprocess.run([sys.executable, "-m", "mirtag.cli.main", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "info" in result.stdout
