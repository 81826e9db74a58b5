"""Where training runs: the device choice and mixed precision.

``device = "auto"`` trains on the first CUDA GPU when torch sees one and on the
CPU otherwise (a CPU-only torch build reports no GPU without printing CUDA
errors). Mixed precision applies on CUDA only: bfloat16 autocast where the GPU
supports it (no loss scaling needed), float16 with a gradient scaler
otherwise. On the CPU the step is plain float32, bit for bit what it was
before this module existed.
"""

from __future__ import annotations

import ctypes
import logging
from contextlib import AbstractContextManager

from mirtag.runtime.errors import ParameterError

from . import require_torch

_LOGGER = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def pick_device(name: str = "auto"):
    """The torch device to train on.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"} or "cuda:N"
        ``auto``: CUDA when available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ParameterError
        For an unknown name, or ``cuda`` when torch sees no GPU.
    """
    torch = require_torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ParameterError(f'device {name!r}: torch sees no CUDA GPU (use device = "auto" or "cpu")')
        return torch.device(name)
    raise ParameterError(f"unknown device {name!r} (expected one of {DEVICES} or 'cuda:N')")


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_cpu(threads: int) -> bool:
    """Set torch's CPU threads and keep freed memory in the process.

    Every training step allocates and frees the same activation buffers (tens of
    MB). glibc hands blocks that large back to the kernel at once (``mmap`` /
    ``munmap``) and re-faults them in on the next step; on a 2-core machine that
    kernel work measured 27 % of the training process's CPU time (a step 20-25 %
    slower). Raising the mmap and trim thresholds to their maxima keeps the
    buffers in the heap for reuse. Results are unchanged: only where memory comes
    from differs.

    Parameters
    ----------
    threads : int
        Intra-op threads for torch (at least 1).

    Returns
    -------
    bool
        Whether the allocator was tuned (False off glibc, e.g. macOS or musl).
    """
    torch = require_torch()
    torch.set_num_threads(max(1, threads))
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc's on Linux, no subprocess lookup
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # the largest glibc accepts on 64-bit
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    ok &= mallopt(_M_TOP_PAD, 64 * 1024 * 1024)
    _LOGGER.debug("glibc allocator tuned: %s", bool(ok))
    return bool(ok)


class MixedPrecision:
    """Autocast and loss scaling for one training loop.

    Parameters
    ----------
    device : torch.device
        Where the model runs.
    enabled : bool
        Ask for mixed precision; honoured on CUDA only unless ``allow_cpu``.
    allow_cpu : bool
        Also autocast on the CPU (bfloat16). Slower there; it exists so the
        mixed-precision code path can be tested on machines without a GPU.
    """

    def __init__(self, device, enabled: bool = True, allow_cpu: bool = False):
        torch = require_torch()
        self.device = device
        self.enabled = bool(enabled) and (device.type == "cuda" or allow_cpu)
        if device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self.dtype = torch.bfloat16
        # float16 gradients underflow without scaling; bfloat16 has float32's exponent range.
        scale = self.enabled and self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=scale)

    def autocast(self) -> AbstractContextManager:
        """The forward pass's context (a no-op when disabled)."""
        torch = require_torch()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype, enabled=self.enabled)

    def step(self, loss, optimizer) -> None:
        """Backward pass and optimiser step (scaled when float16 needs it)."""
        optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)
