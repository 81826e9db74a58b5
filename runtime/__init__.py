"""mirtag.runtime: the embeddable part of mirtag.

Depends on numpy, numba, soundfile, soxr and onnxruntime only (never torch, typer
or rich). The entry point is :class:`Tagger`::

    from mirtag.runtime import Tagger
    tagger = Tagger.load()                      # the shipped default classifier
    result = tagger.tag_file("song.flac")
    result.heads["genre"]                       # {label: probability}
"""

from .card import FrontendConfig, Head, ModelCard, load_card, resolve_model
from .embeddings import Embeddings
from .errors import (
    AudioError,
    DecodeError,
    InvalidAudioError,
    MirtagError,
    MissingDependencyError,
    ModelLoadError,
    ParameterError,
    UnsupportedFormatError,
)
from .frontend import Features, Frontend
from .tagger import TagResult, Tagger, warmup

__all__ = [
    "AudioError",
    "DecodeError",
    "Embeddings",
    "Features",
    "Frontend",
    "FrontendConfig",
    "Head",
    "InvalidAudioError",
    "MirtagError",
    "MissingDependencyError",
    "ModelCard",
    "ModelLoadError",
    "ParameterError",
    "TagResult",
    "Tagger",
    "UnsupportedFormatError",
    "load_card",
    "resolve_model",
    "warmup",
]
