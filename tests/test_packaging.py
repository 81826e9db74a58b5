"""A normal (non-editable) build ships every subpackage and its data under the mirtag namespace."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_holds_the_mirtag_subpackages_and_package_data(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("mirtag-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "mirtag/runtime/__init__.py",
        "mirtag/runtime/dsp.py",
        "mirtag/trainer/__init__.py",
        "mirtag/cli/main.py",
        "mirtag/exported/registry.json",
        "mirtag/trainer/lists/test_filtered.txt",
        "mirtag/trainer/splits/4q.csv",
        "mirtag/__main__.py",
        "mirtag/trainer/data/cache.py",
        "mirtag/runtime/labelmap.toml",
        "beetsplug/mirtag.py",
    ):
        assert required in names, f"{required} missing from the wheel"
    assert not any(n.startswith(("runtime/", "cli/", "trainer/", "tests/", "entry/")) for n in names), (
        "no top-level runtime/cli/trainer"
    )
    assert "mirtag/__init__.py" not in names, "mirtag stays a namespace package"
    assert "beetsplug/__init__.py" not in names, "beetsplug is beets' namespace package: no __init__.py"
    exported = ROOT / "exported"
    for model in exported.glob("*.onnx"):
        assert f"mirtag/exported/{model.name}" in names and f"mirtag/exported/{model.name}.json" in names


def test_python_dash_m_mirtag_is_the_mirtag_command(tmp_path):
    # Run from elsewhere, so the checkout's folders are not on sys.path.
    done = subprocess.run([sys.executable, "-m", "mirtag", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage: python -m mirtag" in done.stdout and "scan" in done.stdout
