"""Genre maps: what a classifier calls the windows a generator makes, across its code.

A generator (``mirtag train generator``, WGAN-GP) maps a noise vector ``z`` of
``latent_size`` dims (128), each uniform in [-1, 1], to one frontend window
``(2, n_mels, window_frames)`` whose channel maxima are 1, the domain the
classifier reads. **The code is the last ``code_dims`` dims of z**:
``z[:, latent_size - code_dims:]``, so code dim ``i`` is ``z[:, latent_size -
code_dims + i]`` (with the defaults, code dims 0..9 are z[:, 118..127]); the
other ``latent_size - code_dims`` dims are free noise.

A map fixes the free dims (and every code dim it does not sweep) to the noise
vector of a seed, ``numpy.random.default_rng(seed).uniform(-1, 1, latent_size)``
as float32, overwrites two code dims with the points of a plane, generates the
windows, and classifies each window with the classifier's ONNX graph directly
(one generated window = one classified window; the probabilities are the head's
output). Everything runs in batches on onnxruntime: numpy only, never torch.

A generator belongs to one classifier: its card's ``generator.classifier_sha256``
must equal the classifier card's ``sha256``, else :func:`load_pair` refuses.

Examples
--------
>>> gm = load_pair("tests/fixtures/tinygen")                 # doctest: +SKIP
>>> data = gm.grid(head="genre", dims=(0, 1), n=41, seed=0)  # doctest: +SKIP
>>> data["labels"][data["argmax"][0][40]]                    # x = +1, y = -1   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import decisions
from .card import Head, ModelCard, exported_dir, load_card, read_registry, resolve_model
from .errors import ModelLoadError, ParameterError
from .session import Session, create_session

_LOGGER = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
DEFAULT_BATCH = 64
"""Noise vectors generated and classified per call: memory is bounded by one batch of generator activations
(the map commands peaked at 1.6 GB RSS with 256, about 0.56 GB with 64, at the same speed)."""
PROB_DIGITS = 6
"""Probabilities in the returned dicts are rounded to this many decimals (JSON size)."""


def noise_vector(seed: int, latent_size: int = 128) -> np.ndarray:
    """The base noise vector of a seed: ``default_rng(seed).uniform(-1, 1, latent_size)`` as float32."""
    return np.random.default_rng(seed).uniform(-1, 1, latent_size).astype(np.float32)


SHOWN_SHARE = 0.03
"""A label "shows" on a map when it is the top label of at least this share of the cells (the map targets)."""

MAP_SEEDS = tuple(range(10))
"""The seeds whose maps the targets count (and among which the map commands pick their default seed)."""
MIN_LABELS_SHOWN = 3
"""Target: a seed's map over code dims 0 and 1 shows at least this many labels..."""
MAPS_TARGET = 8
"""...for at least this many of the :data:`MAP_SEEDS`."""
TV_TARGET = 0.3
"""Target: total variation distance between the generated and the real top-label distribution."""
COVERAGE_REAL_SHARE = 0.03
COVERAGE_GENERATED_SHARE = 0.01
"""Target: every label with at least 3 % of real top labels gets at least 1 % of generated ones."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called as batches finish."""


def plane_z(base: np.ndarray, code_offset: int, dims: Sequence[int], n: int) -> np.ndarray:
    """Noise vectors of an n x n grid over two code dims through ``base``.

    Parameters
    ----------
    base : np.ndarray [shape=(latent_size,)]
        The noise vector every other dim keeps.
    code_offset : int
        Index in z of code dim 0.
    dims : (int, int)
        Code dims swept along x (varies fastest) and y, both over ``linspace(-1, 1, n)``.
    n : int
        Points per axis.

    Returns
    -------
    np.ndarray [shape=(n * n, latent_size), float32], row ``iy * n + ix``
    """
    axis = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    z = np.tile(np.asarray(base, np.float32), (n * n, 1))
    z[:, code_offset + dims[0]] = np.tile(axis, n)
    z[:, code_offset + dims[1]] = np.repeat(axis, n)
    return z


def cell_shares(argmax: np.ndarray, n_labels: int) -> np.ndarray:
    """Share of a map's cells (any shape of top-label indices) that each label owns: (n_labels,)."""
    counts = np.bincount(np.asarray(argmax).ravel(), minlength=n_labels)
    return counts / max(counts.sum(), 1)


def _load(path: PathLike | None, model_type: str) -> ModelCard:
    """A card of ``model_type``: None = the shipped default, a folder = its registry default, else the file."""
    if path is None:
        folder = exported_dir()
        if not read_registry(folder)["default"].get(model_type):
            hint = (
                "train one with `mirtag train generator` and install it, or pass --generator PATH"
                if model_type == "generator"
                else "pass --model PATH"
            )
            raise ModelLoadError(f"{folder}: no default {model_type} is shipped ({hint})")
        return resolve_model(folder, model_type)
    path = Path(path)
    card = resolve_model(path, model_type) if path.is_dir() else load_card(path)
    if card.model_type != model_type:
        raise ModelLoadError(f"{card.path}: is a {card.model_type}, not a {model_type}")
    return card


def load_pair(
    generator: PathLike | None = None,
    classifier: PathLike | None = None,
    device: str | None = "cpu",
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> GenreMap:
    """Load a generator and the classifier it belongs to.

    Parameters
    ----------
    generator : path-like, optional
        ``.onnx``, ``.onnx.json`` or a model folder whose ``registry.json`` names a
        default generator; None = the shipped default generator.
    classifier : path-like, optional
        Likewise for the classifier. None = the default classifier of the
        generator's own folder (of the shipped folder when ``generator`` is None).
    device : str
        ``cpu``, ``auto``, ``cuda`` or ``cuda:N`` (see :mod:`mirtag.runtime.session`).
    threads : int, optional
        onnxruntime intra-op threads.
    batch_size : int
        Windows per graph call.

    Raises
    ------
    ModelLoadError
        A model is missing or malformed, or the classifier is not the one the
        generator was trained against (sha256 mismatch; the message names both).
    """
    gen = _load(generator, "generator")
    if classifier is not None:
        cls = _load(classifier, "classifier")
    else:
        folder = (
            exported_dir() if generator is None else (Path(generator) if Path(generator).is_dir() else gen.path.parent)
        )
        try:
            cls = resolve_model(folder, "classifier")
        except ModelLoadError as exc:
            raise ModelLoadError(
                f"{exc}; pass the classifier generator {gen.ref} belongs to (sha256 {gen.generator.classifier_sha256}) "
                "with --model"
            ) from None
    return GenreMap(gen, cls, device=device, threads=threads, batch_size=batch_size)


class GenreMap:
    """A generator and its classifier, ready to render maps.

    Parameters
    ----------
    generator, classifier : ModelCard
        Cards loaded from disk; ``generator.generator.classifier_sha256`` must be
        ``classifier.sha256``.
    device, threads, batch_size
        As in :func:`load_pair`.

    Attributes
    ----------
    generator, classifier : ModelCard
    session : Session
        The classifier's session.
    """

    def __init__(
        self,
        generator: ModelCard,
        classifier: ModelCard,
        device: str | None = "cpu",
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
    ):
        if generator.model_type != "generator" or generator.generator is None:
            raise ModelLoadError(f"{generator.path}: is a {generator.model_type}, not a generator")
        if classifier.model_type != "classifier":
            raise ModelLoadError(f"{classifier.path}: is a {classifier.model_type}, not a classifier")
        want = generator.generator.classifier_sha256
        if want != classifier.sha256:
            raise ModelLoadError(
                f"generator {generator.ref} ({generator.path}) belongs to the classifier with sha256 {want}, "
                f"but classifier {classifier.ref} ({classifier.path}) has sha256 {classifier.sha256}; "
                "pass the classifier it was trained against"
            )
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        spec = generator.generator
        if not 2 <= spec.code_dims <= spec.latent_size:
            raise ModelLoadError(
                f"{generator.path}: code_dims {spec.code_dims} must be in [2, latent_size {spec.latent_size}]"
            )
        self.generator = generator
        self.classifier = classifier
        self.batch_size = int(batch_size)
        self._gen, self.fallback_reason = create_session(generator.onnx_path, device, threads)
        self._check_generator_io()
        self.session = Session(classifier, device, threads, batch_size)

    def _check_generator_io(self) -> None:
        where = self.generator.onnx_path
        inputs, outputs = self._gen.get_inputs(), self._gen.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2:
            raise ModelLoadError(
                f"{where}: a generator has one input (batch, latent), graph has {[i.name for i in inputs]}"
            )
        self._in_name = inputs[0].name
        if self.generator.inputs and self._in_name != self.generator.inputs[0].name:
            raise ModelLoadError(
                f"{where}: graph input {self._in_name!r} != card input {self.generator.inputs[0].name!r}"
            )
        width = inputs[0].shape[1]
        if isinstance(width, int) and width != self.latent_size:
            raise ModelLoadError(f"{where}: graph input width {width} != latent_size {self.latent_size}")
        names = [o.name for o in outputs]
        self._out_name = self.generator.outputs[0].name if self.generator.outputs else names[0]
        if self._out_name not in names:
            raise ModelLoadError(f"{where}: graph has no output {self._out_name!r} (outputs: {names})")
        shape = self.classifier.frontend.input_shape
        if self.generator.frontend.input_shape != shape:
            raise ModelLoadError(
                f"{where}: generator windows {list(self.generator.frontend.input_shape)} != classifier input {list(shape)}"
            )
        out_shape = next(o.shape for o in outputs if o.name == self._out_name)
        if len(out_shape) != 4 or any(isinstance(a, int) and a != b for a, b in zip(out_shape[1:], shape)):
            raise ModelLoadError(f"{where}: graph output shape {out_shape} != [batch, {', '.join(map(str, shape))}]")

    # ------------------------------------------------------------------ basics
    @property
    def latent_size(self) -> int:
        """Dims of z."""
        return self.generator.generator.latent_size

    @property
    def code_dims(self) -> int:
        """Dims of the code (the last ``code_dims`` of z)."""
        return self.generator.generator.code_dims

    @property
    def code_offset(self) -> int:
        """Index in z of code dim 0 (``latent_size - code_dims``)."""
        return self.latent_size - self.code_dims

    def noise(self, seed: int) -> np.ndarray:
        """The base noise vector of ``seed`` (see :func:`noise_vector`)."""
        return noise_vector(seed, self.latent_size)

    def head(self, name: str) -> Head:
        """The classifier head ``name`` (ParameterError if there is none)."""
        return self.classifier.head(name)

    def _dims(self, dims: Sequence[int]) -> tuple[int, int]:
        dims = tuple(int(d) for d in dims)
        if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= d < self.code_dims for d in dims):
            raise ParameterError(f"dims must be two different code dims in 0..{self.code_dims - 1}, got {list(dims)}")
        return dims

    def generate(self, z: np.ndarray) -> np.ndarray:
        """Windows of noise vectors, in batches.

        Parameters
        ----------
        z : np.ndarray [shape=(n, latent_size)]

        Returns
        -------
        np.ndarray [shape=(n, 2, n_mels, window_frames), float32]
        """
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ParameterError(f"z must be (n, {self.latent_size}), got {z.shape}")
        parts = [
            self._gen.run([self._out_name], {self._in_name: z[s : s + self.batch_size]})[0]
            for s in range(0, len(z), self.batch_size)
        ]
        if not parts:
            return np.zeros((0, *self.classifier.frontend.input_shape), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def classify(self, windows: np.ndarray, head: str) -> np.ndarray:
        """The head's calibrated probabilities of each window, as ``scan`` reports them: (n, n_labels) float32.

        Calibration (the head's temperature, :func:`mirtag.runtime.decisions.calibrate`)
        keeps each window's top label; it makes a cell's numbers comparable with
        a scanned track's.
        """
        spec = self.head(head)
        raw = self.session.run(windows)[head]
        return decisions.calibrate(raw, spec.kind, spec.temperature).astype(np.float32)

    def _batches(self, z: np.ndarray, head: str) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start, windows, probs) per batch of z: never holds more than one batch of windows."""
        for s in range(0, len(z), self.batch_size):
            windows = self.generate(z[s : s + self.batch_size])
            yield s, windows, self.classify(windows, head)

    def probs(self, z: np.ndarray, head: str, progress: Progress | None = None) -> np.ndarray:
        """Generate and classify noise vectors: (n, n_labels) float32 (``progress(done, n)`` per batch)."""
        spec = self.head(head)
        z = np.asarray(z, np.float32)
        parts = []
        for s, _, p in self._batches(z, head):
            parts.append(p)
            if progress is not None:
                progress(s + len(p), len(z))
        return np.concatenate(parts) if parts else np.zeros((0, len(spec.labels)), np.float32)

    def _random_z(self, n: int, seed: int) -> Iterator[np.ndarray]:
        """n noise vectors, all dims uniform, drawn in batches (the same vectors whatever the batch size)."""
        rng = np.random.default_rng(seed)
        for s in range(0, n, self.batch_size):
            yield rng.uniform(-1, 1, (min(self.batch_size, n - s), self.latent_size)).astype(np.float32)

    def _base(self, head: str, dims: tuple[int, int], seed: int) -> dict[str, Any]:
        spec = self.head(head)
        return {
            "head": head,
            "kind": spec.kind,
            "labels": list(spec.labels),
            "dims": list(dims),
            "seed": int(seed),
            "generator": self.generator.ref,
            "classifier": self.classifier.ref,
            "code_offset": self.code_offset,
        }

    # ------------------------------------------------------------------ maps
    def grid(
        self,
        head: str = "genre",
        dims: Sequence[int] = (0, 1),
        n: int = 41,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """The head's probabilities over an n x n grid of the plane of two code dims.

        Code dim ``dims[0]`` runs along x (``ix``), ``dims[1]`` along y (``iy``),
        both over ``axis = linspace(-1, 1, n)``; every other dim of z keeps the
        value of the seed's noise vector.

        Returns
        -------
        dict
            ``head``, ``labels``, ``dims``, ``axis`` (n values), ``seed``, ``z`` (the
            base noise vector, a list), ``argmax`` [iy][ix] (label index),
            ``probs`` [iy][ix][label]; also ``generator``, ``classifier``
            (``name@version``), ``kind`` (the head's) and ``code_offset``.
        """
        dims = self._dims(dims)
        if n < 2:
            raise ParameterError(f"the grid needs n >= 2 points per axis, got {n}")
        base = self.noise(seed)
        axis = np.linspace(-1.0, 1.0, n)
        z = plane_z(base, self.code_offset, dims, n)
        p = self.probs(z, head, progress).reshape(n, n, -1)
        return {
            **self._base(head, dims, seed),
            "axis": axis.tolist(),
            "z": base.tolist(),
            "argmax": p.argmax(axis=2).tolist(),
            "probs": _rounded(p),
        }

    def pick_seed(
        self, head: str = "genre", dims: Sequence[int] = (0, 1), seeds: Sequence[int] = MAP_SEEDS, n: int = 7
    ) -> tuple[int, dict[int, list[float]]]:
        """The seed whose map shows the most labels, by a rule (the default seed of the map commands).

        Each seed's plane is previewed on an ``n`` x ``n`` grid; the pick shows
        the most labels (top label of at least :data:`SHOWN_SHARE` of the
        cells), then has the smallest largest share (the most even map), then
        the lowest seed.

        Returns
        -------
        seed : int
        shares : dict
            Seed -> each label's share of its preview's cells.
        """
        dims = self._dims(dims)
        spec = self.head(head)
        shares = {}
        for seed in seeds:
            z = plane_z(self.noise(seed), self.code_offset, dims, n)
            shares[int(seed)] = cell_shares(self.probs(z, head).argmax(axis=1), len(spec.labels)).tolist()

        def rank(seed: int) -> tuple:
            s = np.asarray(shares[seed])
            return (-int((s >= SHOWN_SHARE).sum()), float(s.max()), seed)

        return min(shares, key=rank), shares

    def line(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        head: str = "genre",
        dims: Sequence[int] = (0, 1),
        n: int = 101,
        seed: int = 0,
    ) -> dict[str, Any]:
        """The head's probabilities along the straight line (x0, y0) -> (x1, y1) of a code plane.

        Returns
        -------
        dict
            ``head``, ``labels``, ``dims``, ``seed``, ``z``, ``start``, ``end``,
            ``t`` (n fractions 0..1), ``points`` [[x, y]...], ``probs`` [step][label],
            ``argmax`` [step]; plus ``generator``, ``classifier``, ``kind``, ``code_offset``.
        """
        dims = self._dims(dims)
        if n < 2:
            raise ParameterError(f"a line needs n >= 2 steps, got {n}")
        coords = np.array([x0, y0, x1, y1], np.float64)
        if not np.isfinite(coords).all():
            raise ParameterError(f"line coordinates must be finite, got {coords.tolist()}")
        if np.abs(coords).max() > 1:
            _LOGGER.warning("the code was trained on [-1, 1]; points outside it are extrapolation")
        base = self.noise(seed)
        xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
        z = np.tile(base, (n, 1))
        z[:, self.code_offset + dims[0]] = xs
        z[:, self.code_offset + dims[1]] = ys
        p = self.probs(z, head)
        return {
            **self._base(head, dims, seed),
            "z": base.tolist(),
            "start": [float(x0), float(y0)],
            "end": [float(x1), float(y1)],
            "t": np.linspace(0.0, 1.0, n).tolist(),
            "points": np.stack([xs, ys], axis=1).tolist(),
            "argmax": p.argmax(axis=1).tolist(),
            "probs": _rounded(p),
        }

    def gallery(
        self,
        head: str = "genre",
        per_label: int = 3,
        n_samples: int = 2000,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> dict[str, list[tuple[np.ndarray, float]]]:
        """The most confident generated windows of each label.

        Draws ``n_samples`` noise vectors (all dims uniform, the seed's generator),
        classifies their windows, and keeps for each label the ``per_label``
        windows with the highest probability of it among those whose top label it
        is (a label the classifier never puts on top gets an empty list).

        Returns
        -------
        dict
            Label -> [(window (2, n_mels, window_frames) float32, probability), ...], best first.
        """
        labels = self.head(head).labels
        if per_label < 1 or n_samples < 1:
            raise ParameterError(f"per_label and n_samples must be >= 1, got {per_label}, {n_samples}")
        best: dict[int, list[tuple[float, int, np.ndarray]]] = {k: [] for k in range(len(labels))}
        offset = 0
        for z in self._random_z(n_samples, seed):
            windows = self.generate(z)
            p = self.classify(windows, head)
            top = p.argmax(axis=1)
            for k in range(len(labels)):
                idx = np.flatnonzero(top == k)
                if not len(idx):
                    continue
                idx = idx[np.argsort(-p[idx, k], kind="stable")[:per_label]]
                cand = best[k] + [(float(p[i, k]), offset + int(i), windows[i].copy()) for i in idx]
                best[k] = sorted(cand, key=lambda c: (-c[0], c[1]))[:per_label]
            offset += len(z)
            if progress is not None:
                progress(offset, n_samples)
        return {labels[k]: [(w, prob) for prob, _, w in best[k]] for k in range(len(labels))}

    def distribution(
        self,
        head: str = "genre",
        n: int = 10000,
        seed: int = 0,
        batch: int | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """How often each label is on top over ``n`` random generated windows (all dims uniform).

        ``batch`` (default: the map's batch size) changes speed only, not the counts.

        Returns
        -------
        dict
            ``head``, ``labels``, ``counts`` {label: count} (summing to n), ``n``, ``seed``,
            ``generator``, ``classifier``.
        """
        labels = self.head(head).labels
        if n < 1:
            raise ParameterError(f"n must be >= 1, got {n}")
        saved = self.batch_size
        if batch is not None:
            if batch < 1:
                raise ParameterError(f"batch must be >= 1, got {batch}")
            self.batch_size = int(batch)
        try:
            counts = np.zeros(len(labels), np.int64)
            for z in self._random_z(n, seed):
                counts += np.bincount(self.probs(z, head).argmax(axis=1), minlength=len(labels))
                if progress is not None:
                    progress(int(counts.sum()), n)
        finally:
            self.batch_size = saved
        return {
            "head": head,
            "labels": list(labels),
            "counts": {lab: int(c) for lab, c in zip(labels, counts)},
            "n": int(n),
            "seed": int(seed),
            "generator": self.generator.ref,
            "classifier": self.classifier.ref,
        }


def nearest_cells(grid: dict[str, Any], vectors: np.ndarray) -> list[tuple[int, int, float]]:
    """For each probability vector, the grid cell whose probabilities are nearest (L1).

    Parameters
    ----------
    grid : dict
        A :meth:`GenreMap.grid` result.
    vectors : np.ndarray [shape=(m, n_labels)]
        Probabilities in the grid's label order (e.g. a scanned track's head probabilities).

    Returns
    -------
    list of (iy, ix, L1 distance)
    """
    p = np.asarray(grid["probs"], np.float64)
    n_y, n_x, k = p.shape
    v = np.asarray(vectors, np.float64).reshape(-1, k)
    flat = p.reshape(-1, k)
    out = []
    for row in v:
        d = np.abs(flat - row).sum(axis=1)
        i = int(np.argmin(d))
        out.append((i // n_x, i % n_x, float(d[i])))
    return out


def read_tracks(
    path: PathLike, head: str, labels: Sequence[str], classifier: str | None = None
) -> list[dict[str, Any]]:
    """Scanned tracks with the head's probabilities, from ``mirtag scan`` output (CSV, JSONL or JSON).

    Read before any map is computed, so a wrong file fails at once.

    Parameters
    ----------
    path : path-like
        ``.csv`` (the ``<head>_scores`` column), ``.json`` or ``.jsonl`` rows.
    head : str
        The head to read.
    labels : sequence of str
        The head's labels (the classifier's); a row must have all of them.
    classifier : str, optional
        The classifier's ``name@version``: rows tagged by another model are
        counted in a warning (their numbers need not match the map's).

    Returns
    -------
    list of dict
        ``path``, ``stem`` and ``probs`` (in ``labels`` order) of each ok row.

    Raises
    ------
    ParameterError
        No such file, an unknown extension, or no row with the head's probabilities.
    """
    from . import rows as rows_mod

    path = Path(path)
    fmt = {".csv": "csv", ".json": "json", ".jsonl": "jsonl"}.get(path.suffix.lower())
    if fmt is None:
        raise ParameterError(f"{path}: tracks must be mirtag scan output (.csv, .jsonl or .json)")
    if not path.is_file():
        raise ParameterError(f"{path}: no such tracks file (mirtag scan output: .csv, .jsonl or .json)")
    labels = list(labels)
    tracks, skipped, other_model = [], 0, 0
    for row in rows_mod.read_rows(path, fmt):
        probs = _row_probs(row, head) if isinstance(row, dict) else None
        if (row.get("status") or "ok") != "ok" or probs is None or set(probs) != set(labels):
            skipped += 1
            continue
        if classifier and row.get("model") and row["model"] != classifier:
            other_model += 1
        p = rows_mod.path_from_row(row)
        tracks.append({"path": row.get("path", p), "stem": Path(p).stem, "probs": [probs[lab] for lab in labels]})
    if skipped:
        _LOGGER.warning("%s: %d rows skipped (errors, or no %r head with the labels %s)", path, skipped, head, labels)
    if other_model:
        _LOGGER.warning("%s: %d rows were tagged by another model than %s", path, other_model, classifier)
    if not tracks:
        raise ParameterError(f"{path}: no row has {head!r} probabilities with the labels {labels}")
    return tracks


def _row_probs(row: dict[str, Any], head: str) -> dict[str, float] | None:
    """A row's probabilities of ``head``: JSON rows' ``heads`` object or CSV's ``<head>_scores`` column."""
    if "_csv" in row:
        cell = row.get(f"{head}_scores") or ""
        try:
            pairs = [item.rsplit(":", 1) for item in cell.split(";") if item]
            return {lab: float(v) for lab, v in pairs}
        except ValueError:
            return None
    info = (row.get("heads") or {}).get(head)
    probs = info.get("probs") if isinstance(info, dict) else None
    return {k: float(v) for k, v in probs.items()} if isinstance(probs, dict) else None


def place_tracks(grid: dict[str, Any], tracks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each track at the grid cell whose probabilities are nearest (L1) to its own.

    Returns
    -------
    list of dict
        ``path``, ``stem``, ``ix``, ``iy``, ``x``, ``y``; ``l1``: the fit
        distance (0 = the cell says exactly what the track's scan said; up to 2);
        ``top``: the track's own top label; ``cell_top``: the cell's.
    """
    labels, axis, arg = grid["labels"], grid["axis"], grid["argmax"]
    vectors = np.asarray([t["probs"] for t in tracks], np.float64)
    out = []
    for t, v, (iy, ix, dist) in zip(tracks, vectors, nearest_cells(grid, vectors)):
        out.append(
            {
                "path": t["path"],
                "stem": t["stem"],
                "ix": ix,
                "iy": iy,
                "x": axis[ix],
                "y": axis[iy],
                "l1": round(dist, 6),
                "top": labels[int(np.argmax(v))],
                "cell_top": labels[arg[iy][ix]],
            }
        )
    return out


def _rounded(p: np.ndarray) -> list:
    return np.round(p.astype(np.float64), PROB_DIGITS).tolist()
