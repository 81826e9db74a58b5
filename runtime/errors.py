"""The exception hierarchy of mirtag.

Every error mirtag raises on purpose is a :class:`MirtagError`, so embedders can
catch one type. Subclasses say what went wrong; messages are one line and, where
a file is involved, name it.
"""

from __future__ import annotations

import os


class MirtagError(Exception):
    """Root of all mirtag errors."""


class ParameterError(MirtagError, ValueError):
    """A function was called with an invalid parameter (shape, dtype, value)."""


class MissingDependencyError(MirtagError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


class ModelLoadError(MirtagError):
    """A model or its card could not be loaded, validated or matched to its ONNX graph."""


class AudioError(MirtagError):
    """An audio file could not be turned into samples.

    Parameters
    ----------
    path : str or os.PathLike
        The file concerned.
    reason : str
        Why, in a few words (one line).
    """

    def __init__(self, path: "str | os.PathLike[str] | bytes", reason: str):
        self.path = os.fsdecode(path) if not isinstance(path, str) else path
        self.reason = " ".join(str(reason).split())  # always one line
        super().__init__(f"{self.path}: {self.reason}")


class DecodeError(AudioError):
    """The file is not audio, or is empty, truncated, corrupt or unreadable."""


class UnsupportedFormatError(AudioError):
    """The format needs an optional decoder (``pip install av``, the ``av`` extra)."""


class InvalidAudioError(AudioError):
    """The file decoded, but its samples are unusable (NaN or Inf)."""


class NonFiniteError(MirtagError):
    """A track's features or model outputs hold NaN or Inf (finite but huge samples overflow float32)."""
