"""mirtag.trainer: datasets, models, training, evaluation and ONNX export (torch).

Imports ``mirtag.runtime`` (its frontend and card), never the reverse. torch is
an optional dependency (the ``train`` extra); :func:`require_torch` turns its
absence into a one-line install instruction.
"""

from __future__ import annotations

from mirtag.runtime.errors import MissingDependencyError

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
"""PyTorch's CPU-only wheel index: from PyPI, torch on Linux and Windows is the CUDA build (~28 more packages)."""

TRAIN_INSTALL_HINT = (
    f'pip install torch==2.13.0 --index-url {TORCH_CPU_INDEX} && pip install ".[train]"  (in the mirtag checkout)'
)
"""mirtag is not on PyPI: it installs from its checkout. For a CUDA build of torch, use PyTorch's cu index instead."""


TRAIN_PACKAGES = ("torch", "onnx", "onnxscript")


def require_torch():
    """Import torch, or raise MissingDependencyError with the exact install command.

    onnx and onnxscript (the export at the end of every training run) are checked
    too, so a run cannot train for an hour and then fail to export.
    """
    import importlib.util

    missing = [name for name in TRAIN_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"training needs {', '.join(TRAIN_PACKAGES)} ({', '.join(missing)} missing): run  {TRAIN_INSTALL_HINT}"
        )
    import torch

    return torch
