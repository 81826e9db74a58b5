"""The embeddable runtime stays light: no torch, typer or rich behind ``import mirtag.runtime``."""

from __future__ import annotations

import subprocess
import sys


def test_runtime_imports_no_torch_typer_or_rich():
    code = (
        "import sys, mirtag.runtime\n"
        "import mirtag.runtime.tagger, mirtag.runtime.audio, mirtag.runtime.session\n"
        "bad = sorted(m for m in ('torch', 'typer', 'rich', 'librosa', 'mirtag.trainer', 'mirtag.cli') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"mirtag.runtime imported {out.stdout.strip()}"


def test_packages_install_under_the_mirtag_namespace():
    import mirtag.cli
    import mirtag.exported
    import mirtag.runtime
    import mirtag.trainer

    for mod in (mirtag.runtime, mirtag.trainer, mirtag.cli, mirtag.exported):
        assert mod.__name__.startswith("mirtag.")
    from importlib import resources

    assert (resources.files("mirtag.exported") / "registry.json").is_file()
    assert (resources.files("mirtag.trainer.lists") / "test_filtered.txt").is_file()
