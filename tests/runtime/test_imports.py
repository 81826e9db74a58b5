"""The embeddable runtime stays light: no torch, typer or rich behind ``import mirtag.runtime``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")


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


def test_an_empty_scan_loads_no_kernels_and_no_onnxruntime(tmp_path):
    # Start-up: the CLI and a scan with nothing to do stay clear of numba, the DSP
    # kernels and onnxruntime (each costs a large share of a second).
    code = (
        "import sys\n"
        "import mirtag.cli.main\n"
        "from mirtag.runtime import MirtagError\n"
        "from mirtag.runtime.scan import scan\n"
        f"rows = list(scan([{str(tmp_path)!r}]))\n"
        "heavy = ('numba', 'onnxruntime', 'mirtag.runtime.dsp', 'mirtag.runtime.tagger')\n"
        "print(len(rows), ','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0"], out.stdout


def test_public_names_resolve_on_first_use():
    code = (
        "import sys, mirtag.runtime as rt\n"
        "assert 'numba' not in sys.modules\n"
        "assert rt.Tagger.__name__ == 'Tagger' and rt.Frontend.__module__ == 'mirtag.runtime.frontend'\n"
        "assert 'Tagger' in dir(rt)\n"
        "try:\n    rt.NoSuchName\nexcept AttributeError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_a_scan_parent_never_loads_numba(tmp_path):
    # The parent only aggregates what the workers computed: numba (half a CPU second at start)
    # belongs to the forkserver and its workers alone.
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(22050, np.float32), 22050)
    code = (
        "import sys\n"
        "from mirtag.runtime.scan import ScanSettings, scan\n"
        f"rows = list(scan([{str(tmp_path)!r}], ScanSettings(model={TINY!r}, workers=1, device='cpu')))\n"
        "assert rows and rows[0]['status'] == 'ok', rows\n"
        "print('numba' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_worker_preload_hides_scipy_only_while_it_loads_the_kernels():
    code = (
        "import sys, importlib.util\n"
        "import mirtag.runtime._preload\n"
        "import numba.np.arraymath\n"
        "print(numba.np.arraymath._HAVE_BLAS, 'scipy' in sys.modules)\n"
        "if importlib.util.find_spec('scipy') is not None:\n"
        "    import scipy.linalg\n"  # importable again afterwards
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "ok"]


def test_the_worker_preload_makes_numba_and_blas_single_threaded_before_they_load():
    # Scan workers fork from a server that imports this preload first: one thread each, set in
    # the server itself (the parent's environment is never edited while its threads run).
    code = (
        "import os\n"
        "import mirtag.runtime._preload\n"
        "import numba\n"
        "print(numba.config.NUMBA_NUM_THREADS, os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1", "1"], out.stdout
