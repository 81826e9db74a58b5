"""The model card: the JSON beside each ``.onnx``, and the single source of truth.

A card names the labels of every head, the frontend parameters the model was
trained with (sample rate, STFT, HPSS, mel, windows), the ONNX tensor names and
shapes, the sha256 of the graph and where the model came from. The trainer's
export writes it from its own config; the runtime builds everything from it.

Layout on disk: ``<name>.onnx`` + ``<name>.onnx.json``; a directory of models
holds a ``registry.json`` naming them and the default of each model type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ModelLoadError, ParameterError

_LOGGER = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the card schema this runtime reads and writes."""

REGISTRY_NAME = "registry.json"
HEAD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
INPUT_NAME = "features"
EMBEDDING_NAME = "embedding"
MODEL_TYPES = ("classifier", "generator")
HEAD_KINDS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class FrontendConfig:
    """Every parameter of the waveform -> windows frontend (see ``frontend.Frontend``)."""

    sample_rate: int = 22050
    """Model rate in Hz; input is resampled to it with soxr (HQ)."""
    n_fft: int = 2048
    """FFT size and periodic Hann window length, in samples."""
    hop_length: int = 512
    """Samples between STFT frames (centred frames, constant zero padding)."""
    n_mels: int = 84
    """Mel bands (Slaney scale and area normalisation, as librosa's default)."""
    fmin: float = 0.0
    """Lowest mel edge, Hz."""
    fmax: float | None = None
    """Highest mel edge, Hz (None = sample_rate / 2)."""
    hpss_kernel: tuple[int, int] = (31, 31)
    """Median lengths: harmonic (frames, along time), percussive (bins, along frequency)."""
    hpss_power: float = 2.0
    """Soft-mask exponent (``inf`` gives binary masks)."""
    hpss_margin: tuple[float, float] = (1.0, 1.0)
    """Mask margins (harmonic, percussive), >= 1."""
    mel_power: float = 1.0
    """1 = mel of the magnitude (amplitude), 2 = mel of the power."""
    compression: str = "none"
    """Applied to the mel bands before normalisation: ``none`` or ``log1p``."""
    window_frames: int = 128
    """Frames per model window (128 x 512 / 22050 = 2.97 s)."""
    window_hop: int = 64
    """Frames between window starts (50 % overlap)."""
    silence_floor: float = 1e-8
    """A (window, channel) whose maximum is below this is zeroed and the window marked silent."""
    channels: tuple[str, ...] = ("harmonic", "percussive")
    """Channel order of the model input."""

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0 or self.n_fft < 16 or self.hop_length < 1:
            problems.append("sample_rate, n_fft and hop_length must be positive (n_fft >= 16)")
        if self.n_mels < 1 or self.window_frames < 1 or not 1 <= self.window_hop <= self.window_frames:
            problems.append("need n_mels >= 1 and 1 <= window_hop <= window_frames")
        if any(k < 1 or k % 2 == 0 for k in self.hpss_kernel) or len(self.hpss_kernel) != 2:
            problems.append(f"hpss_kernel must be two odd sizes, got {self.hpss_kernel}")
        if len(self.hpss_margin) != 2 or min(self.hpss_margin) < 1:
            problems.append(f"hpss_margin must be two values >= 1, got {self.hpss_margin}")
        if not self.hpss_power > 0:
            problems.append("hpss_power must be > 0")
        if self.mel_power not in (1.0, 2.0):
            problems.append(f"mel_power must be 1 or 2, got {self.mel_power}")
        if self.compression not in ("none", "log1p"):
            problems.append(f"compression must be 'none' or 'log1p', got {self.compression!r}")
        if tuple(self.channels) != ("harmonic", "percussive"):
            problems.append(f"channels must be ['harmonic', 'percussive'], got {list(self.channels)}")
        if problems:
            raise ModelLoadError("invalid frontend: " + "; ".join(problems))

    @property
    def window_seconds(self) -> float:
        """Length of one model window in seconds."""
        return self.window_frames * self.hop_length / self.sample_rate

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input shape without the batch axis: (channels, n_mels, window_frames)."""
        return (len(self.channels), self.n_mels, self.window_frames)


@dataclass(frozen=True)
class Head:
    """One output of a classifier: a named set of labels."""

    name: str
    kind: str
    """``softmax`` (one label per window) or ``sigmoid`` (independent labels)."""
    labels: tuple[str, ...]
    descriptions: dict[str, str] | None = None
    thresholds: dict[str, float] | None = None
    """Per-label decision thresholds tuned on validation (default of ``--min-confidence``), on the
    calibrated probabilities."""
    temperature: float | None = None
    """Calibration fitted on validation: the runtime divides the logits of the track's mean
    probabilities by it (sigmoid: per label; softmax: ``p ** (1 / T)`` renormalised). None = 1."""
    max_labels: int | None = None
    """Most labels a track's ``top`` list may hold (``--top-k`` overrides); None = no cap."""

    def __post_init__(self) -> None:
        if not HEAD_NAME_RE.match(self.name) or self.name == EMBEDDING_NAME:
            raise ModelLoadError(f"head name {self.name!r} must match {HEAD_NAME_RE.pattern} and not be 'embedding'")
        if self.kind not in HEAD_KINDS:
            raise ModelLoadError(f"head {self.name!r}: kind must be one of {HEAD_KINDS}, got {self.kind!r}")
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ModelLoadError(f"head {self.name!r}: labels must be non-empty and unique")
        for what, mapping in (("descriptions", self.descriptions), ("thresholds", self.thresholds)):
            if mapping is not None and not set(mapping) <= set(self.labels):
                extra = sorted(set(mapping) - set(self.labels))
                raise ModelLoadError(f"head {self.name!r}: {what} name unknown labels {extra}")
        if self.thresholds and not all(0.0 <= v <= 1.0 for v in self.thresholds.values()):
            raise ModelLoadError(f"head {self.name!r}: thresholds must lie in [0, 1]")
        if self.temperature is not None and not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ModelLoadError(f"head {self.name!r}: temperature must be a number > 0, got {self.temperature!r}")
        if self.max_labels is not None and not (isinstance(self.max_labels, int) and self.max_labels >= 1):
            raise ModelLoadError(f"head {self.name!r}: max_labels must be an integer >= 1, got {self.max_labels!r}")

    def threshold(self, label: str, default: float = 0.5) -> float:
        """The decision threshold of ``label`` (``default`` if the card gives none)."""
        return (self.thresholds or {}).get(label, default)


@dataclass(frozen=True)
class TensorSpec:
    """Name and shape of one graph input or output; ``"batch"`` marks the dynamic axis."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator card adds: its latent layout and the classifier it belongs to."""

    latent_size: int
    code_dims: int
    value_range: tuple[float, float]
    classifier_sha256: str
    noise: str = "uniform(-1, 1)"


@dataclass(frozen=True)
class ModelCard:
    """The JSON card of one ONNX model (``<name>.onnx.json``)."""

    model_type: str
    name: str
    version: str
    sha256: str
    """sha256 of the ``.onnx`` file (hex)."""
    onnx_file: str
    """File name of the graph, relative to the card."""
    frontend: FrontendConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    heads: tuple[Head, ...] = ()
    generator: GeneratorSpec | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    path: Path | None = field(default=None, compare=False)
    """Where the card was read from (not serialised)."""

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ModelLoadError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.model_type == "classifier":
            self._check_classifier()
        elif self.generator is None:
            raise ModelLoadError("a generator card needs a 'generator' section")

    def _check_classifier(self) -> None:
        if not self.heads:
            raise ModelLoadError("a classifier card needs at least one head")
        names = [h.name for h in self.heads]
        if len(set(names)) != len(names):
            raise ModelLoadError(f"duplicate head names: {names}")
        if [t.name for t in self.inputs] != [INPUT_NAME]:
            raise ModelLoadError(
                f"a classifier has one input named {INPUT_NAME!r}, card says {[t.name for t in self.inputs]}"
            )
        expected = ("batch", *self.frontend.input_shape)
        if tuple(self.inputs[0].shape) != expected:
            raise ModelLoadError(
                f"input shape {list(self.inputs[0].shape)} does not match the frontend {list(expected)}"
            )
        outs = {t.name: t for t in self.outputs}
        for head in self.heads:
            if head.name not in outs:
                raise ModelLoadError(f"head {head.name!r} has no output tensor of that name")
            if tuple(outs[head.name].shape) != ("batch", len(head.labels)):
                raise ModelLoadError(
                    f"output {head.name!r} shape {list(outs[head.name].shape)} != ['batch', {len(head.labels)}]"
                )
        unknown = set(outs) - set(names) - {EMBEDDING_NAME}
        if unknown:
            raise ModelLoadError(f"outputs {sorted(unknown)} are neither heads nor 'embedding'")

    # ------------------------------------------------------------------ access
    def head(self, name: str) -> Head:
        """The head called ``name``."""
        for h in self.heads:
            if h.name == name:
                return h
        raise ParameterError(f"{self.ref} has no head {name!r} (heads: {', '.join(h.name for h in self.heads)})")

    @property
    def onnx_path(self) -> Path:
        """Absolute path of the graph (needs a card loaded from disk)."""
        if self.path is None:
            raise ModelLoadError(f"card {self.name!r} was not loaded from a file")
        return self.path.parent / self.onnx_file

    @property
    def ref(self) -> str:
        """``name@version``, as the scan writes it."""
        return f"{self.name}@{self.version}"

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the on-disk form)."""
        d = dataclasses.asdict(self)
        d.pop("path")
        d["frontend"] = _jsonable(d["frontend"])
        d["inputs"] = [_jsonable(t) for t in d["inputs"]]
        d["outputs"] = [_jsonable(t) for t in d["outputs"]]
        d["heads"] = [{k: v for k, v in _jsonable(h).items() if v is not None} for h in d["heads"]]
        if d["generator"] is None:
            d.pop("generator")
        else:
            d["generator"] = _jsonable(d["generator"])
        order = [
            "format_version",
            "model_type",
            "name",
            "version",
            "sha256",
            "onnx_file",
            "frontend",
            "heads",
            "generator",
            "inputs",
            "outputs",
            "provenance",
        ]
        return {k: d[k] for k in order if k in d}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: Path | None = None) -> ModelCard:
        """Validate and build a card; unknown keys warn, missing or bad ones raise ModelLoadError."""
        where = f"{path}: " if path else ""
        try:
            if not isinstance(data, dict):
                raise ModelLoadError("a card must be a JSON object")
            version = data.get("format_version")
            if version != FORMAT_VERSION:
                raise ModelLoadError(
                    f"unsupported card format_version {version!r} (this mirtag reads {FORMAT_VERSION}); "
                    "upgrade mirtag or re-export the model"
                )
            fields = {f.name for f in dataclasses.fields(cls)} - {"path"}
            _warn_unknown(where, "card", data, fields)
            required = ["model_type", "name", "version", "sha256", "onnx_file", "frontend", "inputs", "outputs"]
            missing = [k for k in required if k not in data]
            if missing:
                raise ModelLoadError(f"card is missing {missing}")
            fe = dict(data["frontend"])
            _warn_unknown(where, "frontend", fe, {f.name for f in dataclasses.fields(FrontendConfig)})
            fe = {k: v for k, v in fe.items() if k in {f.name for f in dataclasses.fields(FrontendConfig)}}
            for key in ("hpss_kernel", "hpss_margin", "channels"):
                if key in fe:
                    fe[key] = tuple(fe[key])
            if fe.get("hpss_power") in ("inf", "Infinity"):
                fe["hpss_power"] = float("inf")
            heads = tuple(
                Head(
                    name=h["name"],
                    kind=h["kind"],
                    labels=tuple(h["labels"]),
                    descriptions=h.get("descriptions"),
                    thresholds=h.get("thresholds"),
                    temperature=h.get("temperature"),
                    max_labels=h.get("max_labels"),
                )
                for h in data.get("heads", [])
            )
            gen = data.get("generator")
            return cls(
                format_version=version,
                model_type=data["model_type"],
                name=str(data["name"]),
                version=str(data["version"]),
                sha256=str(data["sha256"]),
                onnx_file=str(data["onnx_file"]),
                frontend=FrontendConfig(**fe),
                inputs=tuple(_tensor(t) for t in data["inputs"]),
                outputs=tuple(_tensor(t) for t in data["outputs"]),
                heads=heads,
                generator=None
                if gen is None
                else GeneratorSpec(
                    latent_size=int(gen["latent_size"]),
                    code_dims=int(gen["code_dims"]),
                    value_range=tuple(gen["value_range"]),
                    classifier_sha256=str(gen["classifier_sha256"]),
                    noise=str(gen.get("noise", "uniform(-1, 1)")),
                ),
                provenance=dict(data.get("provenance", {})),
                path=path,
            )
        except ModelLoadError as exc:
            if where and not str(exc).startswith(where):
                raise ModelLoadError(f"{where}{exc}") from None
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{where}malformed card: {type(exc).__name__}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the card as JSON, atomically (temp file + rename)."""
        path = Path(path)
        _atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=True) + "\n")
        return path


def _tensor(t: dict[str, Any]) -> TensorSpec:
    return TensorSpec(name=t["name"], shape=tuple(t["shape"]), dtype=t.get("dtype", "float32"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj == float("inf"):
        return "inf"
    return obj


def _warn_unknown(where: str, what: str, data: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        _LOGGER.warning("%signoring unknown %s keys %s (card from a newer mirtag?)", where, what, unknown)


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; cards are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- loading and resolving


def exported_dir() -> Path:
    """The folder of shipped models (package data ``mirtag.exported``)."""
    return Path(str(resources.files("mirtag.exported")))


def load_card(path: str | os.PathLike[str], *, check_hash: bool = True) -> ModelCard:
    """Read, validate and hash-check the card of one model.

    Parameters
    ----------
    path : path-like
        ``<name>.onnx.json``, ``<name>.onnx`` (its card is beside it), or a
        directory whose ``registry.json`` names a default classifier.
    check_hash : bool
        Verify the ``.onnx`` file's sha256 against the card.

    Raises
    ------
    ModelLoadError
        Missing files, malformed or unsupported cards, hash mismatch.
    """
    path = Path(path)
    if path.is_dir():
        return resolve_model(path, "classifier", check_hash=check_hash)
    card_path = path if path.name.endswith(".json") else path.with_name(path.name + ".json")
    if not card_path.is_file():
        raise ModelLoadError(f"{card_path}: model card not found (every .onnx needs its .onnx.json beside it)")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{card_path}: unreadable card: {exc}") from None
    card = ModelCard.from_dict(data, path=card_path.resolve())
    onnx_path = card.onnx_path
    if not onnx_path.is_file():
        raise ModelLoadError(f"{card_path}: its graph {card.onnx_file!r} is missing")
    if check_hash:
        actual = sha256_file(onnx_path)
        if actual != card.sha256:
            raise ModelLoadError(
                f"{onnx_path}: sha256 {actual[:12]}... does not match its card ({card.sha256[:12]}...); "
                "the file is corrupt or the card belongs to another model"
            )
    return card


def read_registry(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``registry.json`` of a model folder (``{"default": {...}, "models": {...}}``)."""
    reg_path = Path(directory) / REGISTRY_NAME
    try:
        reg = json.loads(reg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{reg_path}: no registry.json in this model folder") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{reg_path}: unreadable registry: {exc}") from None
    if not isinstance(reg, dict) or not isinstance(reg.get("models", {}), dict):
        raise ModelLoadError(f"{reg_path}: malformed registry")
    reg.setdefault("models", {})
    reg.setdefault("default", {})
    return reg


def install_model(
    card_path: str | os.PathLike[str], directory: str | os.PathLike[str], *, default: bool = True
) -> ModelCard:
    """Copy a model into a model folder and register it in the folder's ``registry.json``.

    The source must load and match its hash. The ``.onnx``, its card and, when
    the card's provenance names one, the torch state dict beside them are
    copied to temporary names and checked against the card's sha256s, then
    renamed into place; the installed copy is loaded with its hash checked;
    only then is the registry rewritten, atomically, with the model's file,
    card, sha256 and size. A failure leaves the folder as it was.

    Parameters
    ----------
    card_path : path-like
        The model's ``.onnx``, ``.onnx.json`` or a folder with one card.
    directory : path-like
        The model folder (created).
    default : bool
        Make it the folder's default model of its type.

    Returns
    -------
    ModelCard
        The installed card.

    Raises
    ------
    ModelLoadError
        The source model, or its installed copy, does not load or match its hash.
    """
    src_card = _single_card(Path(card_path))
    card = load_card(src_card)  # the source must load and match its hash before anything is copied
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    files = {card.onnx_file: card.sha256, src_card.name: None}
    state = card.provenance.get("state_dict")
    if isinstance(state, dict) and state.get("file"):
        files[state["file"]] = state.get("sha256")
    staged: dict[str, Path] = {}
    try:
        for name, sha in files.items():
            staged[name] = _staged_copy(src_card.parent / name, out / name)
            if sha is not None and sha256_file(staged[name]) != sha:
                raise ModelLoadError(f"{out / name}: the copy does not match the sha256 its card states")
        for name, tmp in staged.items():
            os.replace(tmp, out / name)
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
    installed = load_card(out / card.onnx_file)
    reg = read_registry(out) if (out / REGISTRY_NAME).is_file() else {"format_version": 1, "default": {}, "models": {}}
    reg["models"][card.name] = {
        "file": card.onnx_file,
        "card": src_card.name,
        "sha256": installed.sha256,
        "size_bytes": (out / card.onnx_file).stat().st_size,
        "model_type": card.model_type,
    }
    if default:
        reg["default"][card.model_type] = card.name
    _atomic_write_text(out / REGISTRY_NAME, json.dumps(reg, indent=2) + "\n")
    return installed


def _single_card(path: Path) -> Path:
    """The card of a model given as ``.onnx``, ``.onnx.json`` or a folder holding exactly one card."""
    if path.is_dir():
        cards = sorted(path.glob("*.onnx.json"))
        if len(cards) != 1:
            raise ModelLoadError(f"{path}: expected one model card (*.onnx.json), found {len(cards)}")
        return cards[0]
    return path if path.name.endswith(".json") else path.with_name(path.name + ".json")


def _staged_copy(src: Path, dst: Path) -> Path:
    """Copy ``src`` to a temporary name beside ``dst`` (renamed into place by the caller)."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)
    except FileNotFoundError:
        Path(tmp).unlink(missing_ok=True)
        raise ModelLoadError(f"{src}: missing (its card names it)") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def resolve_model(
    directory: str | os.PathLike[str] | None = None, model_type: str = "classifier", *, check_hash: bool = True
) -> ModelCard:
    """The default model of ``model_type`` named by a folder's registry.

    ``directory`` None means the shipped models (``mirtag.exported``).
    """
    directory = exported_dir() if directory is None else Path(directory)
    reg = read_registry(directory)
    name = reg["default"].get(model_type)
    if not name:
        raise ModelLoadError(
            f"{directory / REGISTRY_NAME}: no default {model_type} is registered "
            "(pass a model path, e.g. --model path/to/model.onnx)"
        )
    entry = reg["models"].get(name)
    if entry is None:
        raise ModelLoadError(f"{directory / REGISTRY_NAME}: default {model_type} {name!r} is not listed in 'models'")
    card = load_card(directory / entry["card"], check_hash=check_hash)
    if card.model_type != model_type:
        raise ModelLoadError(f"{card.path}: registry lists it as a {model_type}, card says {card.model_type}")
    return card
