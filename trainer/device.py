"""Where training runs: the device choice and mixed precision.

``device = "auto"`` trains on the first CUDA GPU when torch sees one and on the
CPU otherwise (a CPU-only torch build reports no GPU without printing CUDA
errors). Mixed precision applies on CUDA only: bfloat16 autocast where the GPU
supports it (no loss scaling needed), float16 with a gradient scaler
otherwise. On the CPU the step is plain float32, bit for bit what it was
before this module existed.
"""

from __future__ import annotations

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
