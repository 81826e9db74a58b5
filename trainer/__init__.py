"""mirtag.trainer: datasets, models, training, evaluation and ONNX export (torch).

Imports ``mirtag.runtime`` (its frontend and card), never the reverse. torch is
an optional dependency (the ``train`` extra); :func:`require_torch` turns its
absence into a one-line install instruction.
"""

from __future__ import annotations

from mirtag.runtime.errors import MissingDependencyError

TRAIN_INSTALL_HINT = 'pip install torch==2.13.0 && pip install "mirtag[train]"'


def require_torch():
    """Import torch, or raise MissingDependencyError with the exact install command."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"training needs torch, onnx and onnxscript: run  {TRAIN_INSTALL_HINT}") from None
    return torch
