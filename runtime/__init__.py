"""mirtag.runtime: the embeddable part of mirtag.

Depends on numpy, numba, soundfile, soxr and onnxruntime only (never torch, typer
or rich). The entry point is :class:`Tagger`::

    from mirtag.runtime import Tagger
    tagger = Tagger.load()                      # the shipped default classifier
    result = tagger.tag_file("song.flac")
    result.heads["genre"]                       # {label: probability}
"""

import importlib

# Names resolve on first use (PEP 562), so ``import mirtag.runtime`` (and every
# ``mirtag`` command) stays cheap: numba, soundfile and onnxruntime load only
# when something that needs them is touched.
_WHERE = {
    "FrontendConfig": "card",
    "Head": "card",
    "ModelCard": "card",
    "load_card": "card",
    "resolve_model": "card",
    "Embeddings": "embeddings",
    "AudioError": "errors",
    "DecodeError": "errors",
    "InvalidAudioError": "errors",
    "MirtagError": "errors",
    "MissingDependencyError": "errors",
    "ModelLoadError": "errors",
    "NonFiniteError": "errors",
    "ParameterError": "errors",
    "UnsupportedFormatError": "errors",
    "Features": "frontend",
    "Frontend": "frontend",
    "TagResult": "tagger",
    "Tagger": "tagger",
    "warmup": "tagger",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


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
    "NonFiniteError",
    "ParameterError",
    "TagResult",
    "Tagger",
    "UnsupportedFormatError",
    "load_card",
    "resolve_model",
    "warmup",
]
