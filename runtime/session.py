"""onnxruntime sessions and the choice of execution provider, in one place.

``device`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. ``auto`` uses CUDA
only when it really works: the CUDA driver answers, a device exists, and a
session created with the CUDA provider actually runs on it. The probe is quiet:
with ``onnxruntime-gpu`` on a machine without CUDA, nothing about missing CUDA
libraries reaches the terminal (onnxruntime's C++ logger writes to the process's
stderr, so the probe redirects file descriptor 2 while it runs).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from .card import EMBEDDING_NAME, INPUT_NAME, ModelCard
from .errors import MissingDependencyError, ModelLoadError, ParameterError

_LOGGER = logging.getLogger(__name__)

INSTALL_HINT = "pip install onnxruntime  (or onnxruntime-gpu for NVIDIA GPUs; never both)"
"""How to get an onnxruntime (the ``cpu`` / ``gpu`` extras of mirtag install exactly these)."""
GPU_SWITCH_HINT = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
"""How to go from the CPU onnxruntime (or both, which leaves only the CPU provider) to the CUDA one."""
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")
_STDERR_LOCK = threading.Lock()


def import_onnxruntime():
    """Import onnxruntime, or say exactly how to install it (or that the installed one is broken)."""
    from .interrupts import deferred_signals

    try:
        # Ctrl-C waits for the import: an interrupt inside the extension's initialisation
        # comes out of pybind11 as an ImportError, which would read as "not installed".
        with deferred_signals():
            import onnxruntime
    except ImportError as exc:
        if importlib.util.find_spec("onnxruntime") is None:
            raise MissingDependencyError(f"onnxruntime is not installed: run  {INSTALL_HINT}") from None
        raise MissingDependencyError(
            f"onnxruntime is installed but cannot be imported ({' '.join(str(exc).split())}); reinstall it:  "
            f"pip install --force-reinstall onnxruntime  (or onnxruntime-gpu)"
        ) from None
    # Warnings about graph optimisation and provider assignment are noise for users.
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


def installed_runtimes() -> list[str]:
    """Which onnxruntime distributions are installed (more than one breaks CUDA)."""
    names = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            names.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return names


@dataclass(frozen=True)
class Device:
    """A parsed ``device`` string."""

    kind: str  # auto | cpu | cuda
    index: int = 0

    @classmethod
    def parse(cls, device: str | None) -> Device:
        """Parse ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (None = ``$MIRTAG_DEVICE`` or auto)."""
        text = (device or os.environ.get("MIRTAG_DEVICE") or "auto").strip().lower()
        m = _DEVICE_RE.match(text)
        if not m or (m.group(2) is not None and m.group(1) != "cuda"):
            raise ParameterError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
        return cls(m.group(1), int(m.group(2) or 0))


@contextlib.contextmanager
def _captured_stderr():
    """Redirect the process's fd 2 to a temporary file; yields a list that gets its text."""
    out: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def cuda_driver_devices() -> tuple[int, str]:
    """Number of CUDA devices the driver reports, and why zero when it is zero."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no CUDA driver (libcuda.so.1 not found)"
    if lib.cuInit(0) != 0:
        return 0, "the CUDA driver did not initialise"
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return 0, "the CUDA driver reports no device"
    return count.value, ""


def _session_options(ort, threads: int | None):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def create_session(onnx_path, device: str | None = "auto", threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on the requested device.

    Parameters
    ----------
    onnx_path : path-like
    device : str
        ``auto`` (CUDA when it works, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    threads : int, optional
        Intra-op threads (None = onnxruntime's default, one per core).

    Returns
    -------
    session : onnxruntime.InferenceSession
    note : str
        Why CUDA was not used, when ``auto`` fell back to the CPU ("" otherwise).

    Raises
    ------
    ModelLoadError
        The graph does not load, or ``cuda`` was asked for and does not work.
    """
    ort = import_onnxruntime()
    dev = Device.parse(device)
    path = os.fspath(onnx_path)
    cpu = ["CPUExecutionProvider"]
    note = ""
    if dev.kind in ("auto", "cuda"):
        reason = _cuda_unusable_reason(ort)
        if not reason:
            cuda = ("CUDAExecutionProvider", {"device_id": dev.index, "cudnn_conv_algo_search": "HEURISTIC"})
            with _captured_stderr() as log:
                try:
                    sess = ort.InferenceSession(path, _session_options(ort, threads), providers=[cuda, *cpu])
                except Exception as exc:  # noqa: BLE001 - onnxruntime raises bare RuntimeError/Fail
                    sess, reason = None, f"CUDA session failed: {exc}"
            if sess is not None and sess.get_providers()[0] == "CUDAExecutionProvider":
                return sess, ""
            reason = reason or _first_line(log[0]) or "onnxruntime fell back to the CPU"
        if dev.kind == "cuda":
            raise ModelLoadError(f"{path}: CUDA was requested but is not usable: {reason}")
        note = reason
        _LOGGER.debug("CUDA not used: %s", reason)
    try:
        sess = ort.InferenceSession(path, _session_options(ort, threads), providers=cpu)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{path}: onnxruntime cannot load the graph: {_first_line(str(exc))}") from None
    return sess, note


def _cuda_unusable_reason(ort) -> str:
    """What CUDA lacks here, with the fix ("" when driver, device and provider are all there).

    The machine is checked before the Python packages: without an NVIDIA driver
    or device, no onnxruntime build helps, and the fix is the CPU.
    """
    n, why = cuda_driver_devices()
    if n == 0:
        return f"{why}: this machine cannot run CUDA; use --device cpu (or auto)"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        runtimes = installed_runtimes()
        if len(runtimes) > 1:
            return f"both onnxruntime and onnxruntime-gpu are installed, which leaves only the CPU provider: {GPU_SWITCH_HINT}"
        if "onnxruntime-gpu" in runtimes:
            return "onnxruntime-gpu has no usable CUDA provider (CUDA 12 and cuDNN 9 libraries missing?)"
        return f"the installed onnxruntime is the CPU build (no CUDA provider): {GPU_SWITCH_HINT}"
    return ""


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


class Session:
    """A classifier graph checked against its card, run in batches.

    Parameters
    ----------
    card : ModelCard
        A classifier card loaded from disk (its ``onnx_path`` is used).
    device, threads
        As in :func:`create_session`.
    batch_size : int
        Windows per ``run`` call of the graph.

    Attributes
    ----------
    provider : str
        The execution provider actually used (``CUDAExecutionProvider`` or ``CPUExecutionProvider``).
    fallback_reason : str
        Why ``auto`` did not use CUDA ("" when it did, or when the CPU was asked for).
    """

    def __init__(self, card: ModelCard, device: str | None = "auto", threads: int | None = None, batch_size: int = 64):
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        self.card = card
        self.batch_size = int(batch_size)
        self._sess, self.fallback_reason = create_session(card.onnx_path, device, threads)
        self.provider = self._sess.get_providers()[0]
        self._check_io()
        self.output_names = [o.name for o in self._sess.get_outputs()]
        _LOGGER.info("%s runs on %s", card.ref, self.provider)

    def _check_io(self) -> None:
        where = self.card.onnx_path
        inputs = self._sess.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise ModelLoadError(f"{where}: graph inputs {[i.name for i in inputs]} != ['{INPUT_NAME}']")
        shape = inputs[0].shape
        if len(shape) != 4 or list(shape[1:]) != list(self.card.frontend.input_shape):
            raise ModelLoadError(
                f"{where}: graph input shape {shape} does not match the card {list(self.card.inputs[0].shape)}"
            )
        graph_out = {o.name: o for o in self._sess.get_outputs()}
        card_out = {t.name for t in self.card.outputs}
        if set(graph_out) != card_out:
            raise ModelLoadError(f"{where}: graph outputs {sorted(graph_out)} != card outputs {sorted(card_out)}")
        for head in self.card.heads:
            dims = graph_out[head.name].shape
            if len(dims) != 2 or (isinstance(dims[1], int) and dims[1] != len(head.labels)):
                raise ModelLoadError(f"{where}: output {head.name!r} shape {dims} != [batch, {len(head.labels)}]")

    @property
    def has_embedding(self) -> bool:
        """Whether the graph has an ``embedding`` output."""
        return EMBEDDING_NAME in self.output_names

    def run(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Run the graph over windows in batches.

        Parameters
        ----------
        windows : np.ndarray [shape=(n, 2, n_mels, window_frames), float32]

        Returns
        -------
        dict[str, np.ndarray]
            Each output name -> [shape=(n, width)] float32.
        """
        x = np.ascontiguousarray(windows, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != self.card.frontend.input_shape:
            raise ParameterError(f"windows must be (n, {self.card.frontend.input_shape}), got {x.shape}")
        if x.shape[0] == 0:
            return {name: np.zeros((0, self._width(name)), np.float32) for name in self.output_names}
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.output_names}
        for s in range(0, x.shape[0], self.batch_size):
            outs = self._sess.run(self.output_names, {INPUT_NAME: x[s : s + self.batch_size]})
            for name, value in zip(self.output_names, outs):
                parts[name].append(np.asarray(value, dtype=np.float32))
        return {name: np.concatenate(v) for name, v in parts.items()}

    def _width(self, name: str) -> int:
        for t in self.card.outputs:
            if t.name == name:
                return int(t.shape[1])
        raise ModelLoadError(f"{self.card.path}: the card has no output {name!r}")
