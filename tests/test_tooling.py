"""The static import contract (scripts/check_imports.py) that .ci/run enforces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_imports", ROOT / "scripts" / "check_imports.py")
check_imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_imports)


def test_the_runtime_imports_nothing_from_trainer_cli_torch_typer_or_rich():
    assert check_imports.violations() == []


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    (tmp_path / "runtime").mkdir()
    (tmp_path / "runtime" / "bad.py").write_text(
        "from ..trainer import data\n\ndef f():\n    import torch.nn\n    from rich.console import Console\n"
    )
    monkeypatch.setattr(check_imports, "ROOT", tmp_path)
    found = check_imports.violations()
    assert [v.split(": imports ")[1].split(" ")[0] for v in found] == ["mirtag.trainer", "torch.nn", "rich.console"]
    assert found[0].startswith("runtime/bad.py:1:")
