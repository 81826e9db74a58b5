"""Provider choice and graph/card checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mirtag.runtime import session
from mirtag.runtime.card import load_card
from mirtag.runtime.errors import MissingDependencyError, ModelLoadError, ParameterError
from mirtag.runtime.session import Device, Session

TINY = Path(__file__).parents[1] / "fixtures" / "tiny"
ORT_GPU_VERSION = "1.31.1"


@pytest.mark.parametrize(
    "text,kind,index", [("auto", "auto", 0), ("CPU", "cpu", 0), ("cuda", "cuda", 0), ("cuda:3", "cuda", 3)]
)
def test_device_strings_parse(text, kind, index):
    assert Device.parse(text) == Device(kind, index)


@pytest.mark.parametrize("text", ["gpu", "cpu:1", "cuda:x", "auto:0", ""])
def test_bad_device_strings_are_refused(text, monkeypatch):
    monkeypatch.setenv("MIRTAG_DEVICE", "tpu")
    with pytest.raises(ParameterError):
        Device.parse(text)


def test_device_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("MIRTAG_DEVICE", "cpu")
    assert Device.parse(None) == Device("cpu", 0)


def test_cpu_session_runs_in_batches():
    card = load_card(TINY)
    sess = Session(card, device="cpu", batch_size=3)
    assert sess.provider == "CPUExecutionProvider"
    assert sess.has_embedding
    x = np.random.default_rng(0).random((7, 2, 84, 128), dtype=np.float32)
    out = sess.run(x)
    assert out["genre"].shape == (7, 3) and out["quadrant"].shape == (7, 4)
    np.testing.assert_allclose(out["quadrant"].sum(axis=1), 1.0, rtol=1e-6)
    assert sess.run(x[:0])["genre"].shape == (0, 3)


def test_auto_falls_back_to_cpu_and_says_why():
    if session.cuda_driver_devices()[0]:
        pytest.skip("this machine has a CUDA device")
    sess = Session(load_card(TINY), device="auto")
    assert sess.provider == "CPUExecutionProvider"
    assert sess.fallback_reason


def test_cuda_without_cuda_is_a_clear_error():
    if session.cuda_driver_devices()[0]:
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ModelLoadError, match="CUDA was requested but is not usable") as info:
        Session(load_card(TINY), device="cuda")
    # The machine lacks CUDA: no package helps, and mirtag[gpu] beside mirtag[cpu] would break CUDA anyway.
    assert "this machine cannot run CUDA; use --device cpu" in str(info.value)
    assert "mirtag[gpu]" not in str(info.value)


def test_cuda_with_a_driver_but_the_cpu_onnxruntime_says_how_to_switch(monkeypatch):
    # This machine has no GPU: pretend the driver answers, to reach the provider check with the real onnxruntime.
    monkeypatch.setattr(session, "cuda_driver_devices", lambda: (1, ""))
    ort = session.import_onnxruntime()
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    with pytest.raises(ModelLoadError, match="CPU build") as info:
        Session(load_card(TINY), device="cuda")
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in str(info.value)


def test_graph_that_disagrees_with_its_card_is_refused(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(TINY, folder)
    data = json.loads((folder / "tiny.onnx.json").read_text())
    data["outputs"] = [o for o in data["outputs"] if o["name"] != "embedding"]
    (folder / "tiny.onnx.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="graph outputs"):
        Session(load_card(folder), device="cpu")


def test_missing_onnxruntime_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install onnxruntime  \(or onnxruntime-gpu"):
        session.import_onnxruntime()


@pytest.mark.network
@pytest.mark.slow
def test_onnxruntime_gpu_without_cuda_stays_quiet(tmp_path):
    """With onnxruntime-gpu on a machine without CUDA, auto picks the CPU and prints nothing."""
    if session.cuda_driver_devices()[0]:
        pytest.skip("this machine has a CUDA device: the quiet fallback cannot be observed")
    target = tmp_path / "ortgpu"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            f"onnxruntime-gpu=={ORT_GPU_VERSION}",
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"could not install onnxruntime-gpu in CI: {pip.stderr.strip()[-500:]}")
        pytest.skip(f"onnxruntime-gpu not installable here: {pip.stderr.strip()[-200:]}")
    code = (
        "import onnxruntime as ort, mirtag.runtime as r\n"
        "assert 'CUDAExecutionProvider' in ort.get_available_providers(), ort.get_available_providers()\n"
        f"t = r.Tagger.load({str(TINY)!r}, device='auto')\n"
        "print(t.provider, ort.__file__)\n"
        "try:\n"
        f"    r.Tagger.load({str(TINY)!r}, device='cuda')\n"
        "except r.ModelLoadError as e:\n"
        "    print('cuda refused')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    provider, ort_file = run.stdout.split()[:2]
    assert provider == "CPUExecutionProvider"
    assert ort_file.startswith(str(target)), "the test must run the GPU build"
    assert "cuda refused" in run.stdout
    assert run.stderr.strip() == "", f"CUDA noise reached the terminal: {run.stderr[:500]}"


def test_ctrl_c_while_onnxruntime_imports_is_an_interrupt_never_not_installed(tmp_path):
    # pybind11 turns an exception inside an extension's initialisation into an ImportError, so a
    # Ctrl-C landing there once read as "onnxruntime is not installed" (seen in CI). The stand-in
    # package does what the real one does in that window: Ctrl-C arrives mid-initialisation and
    # an interrupt there comes out as ImportError. The import must hold Ctrl-C until it is done.
    fake = tmp_path / "onnxruntime"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.05)\n"
        "except KeyboardInterrupt as exc:\n"
        "    raise ImportError('initialization failed') from exc\n"
        "def set_default_logger_severity(level):\n"
        "    pass\n"
    )
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # a CI job may start us with SIGINT ignored
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from mirtag.runtime.session import import_onnxruntime\n"
        "try:\n"
        "    import_onnxruntime()\n"
        "    print('no interrupt')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', 'onnxruntime' in sys.modules)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "interrupted True", out.stdout + out.stderr[-2000:]


def test_a_broken_onnxruntime_install_is_named_as_broken_not_missing(tmp_path):
    # A package that is there but fails to import gets the reinstall hint, not the install one.
    fake = tmp_path / "onnxruntime"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('libonnxruntime.so: cannot open shared object file')\n")
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from mirtag.runtime.session import import_onnxruntime\n"
        "from mirtag.runtime.errors import MissingDependencyError\n"
        "try:\n"
        "    import_onnxruntime()\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "installed but cannot be imported" in out.stdout and "cannot open shared object file" in out.stdout
    assert "--force-reinstall" in out.stdout
