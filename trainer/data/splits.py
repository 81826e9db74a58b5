"""Train / validation / test: grouped, stratified assignment and the committed split files.

:func:`make_splits` assigns splits (group- and stratum-aware, one seeded stream
per dataset); the committed assignment is written with :func:`write_splits`
and read with :func:`read_splits`.
"""

from __future__ import annotations

import csv
import os
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from mirtag.runtime.errors import MirtagError, ParameterError

from .datasets import SPLITS, Clip, read_csv_rows

SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
"""Target shares of the grouped, stratified splits (4Q, Emotify, generic manifests)."""


def _dataset_rng(seed: int, dataset: str) -> np.random.Generator:
    # One stream per dataset: adding a dataset never reshuffles another.
    return np.random.default_rng([int(seed), zlib.crc32(dataset.encode())])


def _grouped_stratified(clips: Sequence[Clip], rng: np.random.Generator) -> dict[str, str]:
    """Assign whole groups greedily so each split's per-stratum counts track their targets.

    Groups go largest first (ties in seeded random order); each goes to the
    split where it least increases the summed squared deviation of per-stratum
    counts from ``fraction * stratum total``, ties to the split furthest below
    its overall target.
    """
    groups: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        groups[c.group or "\0" + c.key].append(c)
    strata = sorted({c.stratum for c in clips})
    col = {s: j for j, s in enumerate(strata)}
    total = np.zeros(len(strata))
    for c in clips:
        total[col[c.stratum]] += 1
    frac = np.array([SPLIT_FRACTIONS[s] for s in SPLITS])
    target = frac[:, None] * total[None, :]
    cur = np.zeros_like(target)
    names = sorted(groups)
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda g: -len(groups[g]))  # stable: the permutation breaks ties
    out = {}
    for g in order:
        vec = np.zeros(len(strata))
        for c in groups[g]:
            vec[col[c.stratum]] += 1
        cost = (vec[None, :] * (2.0 * (cur - target) + vec[None, :])).sum(axis=1)
        deficit = (target.sum(axis=1) - cur.sum(axis=1)) / target.sum(axis=1)
        best = min(range(len(SPLITS)), key=lambda s: (round(cost[s], 9), -deficit[s]))
        cur[best] += vec
        for c in groups[g]:
            out[c.key] = SPLITS[best]
    return out


def _by_category(clips: Sequence[Clip], rng: np.random.Generator) -> dict[str, str]:
    """Whole categories per split: 10 % of them to validation, 10 % to test (ESC-50: 40/5/5)."""
    cats = sorted({c.category or c.group or c.key for c in clips})
    perm = [cats[i] for i in rng.permutation(len(cats))]
    n_held = max(1, int(round(0.1 * len(cats)))) if len(cats) >= 3 else 0
    where = {cat: "test" for cat in perm[:n_held]}
    where.update({cat: "validation" for cat in perm[n_held : 2 * n_held]})
    return {c.key: where.get(c.category or c.group or c.key, "train") for c in clips}


def make_splits(clips: Sequence[Clip], seed: int = 0) -> dict[str, str]:
    """Train / validation / test for every clip: ``{clip.key: split}``.

    - A clip whose dataset fixed its split (:attr:`Clip.split`: GTZAN lists, a
      manifest's split column) keeps it.
    - ESC-50: whole categories, 40 train / 5 validation / 5 test chosen with the
      seed, so the noise mixed into evaluation clips is a kind of sound never
      heard in training.
    - 4Q: grouped by normalised artist (no artist in two splits), about
      70/15/15, stratified by quadrant (:func:`_grouped_stratified`).
    - Emotify: 70/15/15 stratified by its own genre, clip by clip. Emotify has
      no artist column, so one artist's excerpts can land in two splits: a
      leakage risk that can flatter its validation numbers.
    - Other manifests: like 4Q, with their ``group`` and ``stratum``.

    Deterministic given ``seed`` and the clips (their order does not matter).
    """
    out: dict[str, str] = {}
    by_dataset: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        if c.split is not None:
            out[c.key] = c.split
        else:
            by_dataset[c.dataset].append(c)
    for dataset, group in sorted(by_dataset.items()):
        group = sorted(group, key=lambda c: c.key)
        rng = _dataset_rng(seed, dataset)
        if dataset == "esc50":
            out.update(_by_category(group, rng))
        else:
            out.update(_grouped_stratified(group, rng))
    return out


def leaking_groups(clips: Iterable[Clip], splits: Mapping[str, str]) -> dict[str, set[str]]:
    """Non-empty groups whose clips sit in more than one split: ``{group: {splits}}``."""
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in clips:
        if c.group and c.key in splits:
            seen[(c.dataset, c.group)].add(splits[c.key])
    return {f"{d}/{g}": s for (d, g), s in seen.items() if len(s) > 1}


def _splits_dir() -> Path:
    try:
        return Path(str(resources.files("mirtag.trainer.splits")))
    except ModuleNotFoundError:
        # Until the installed metadata knows the subpackage, read it beside this file.
        return Path(__file__).parents[1] / "splits"


def write_splits(mapping: Mapping[str, str], path: str | os.PathLike[str], *, dataset: str | None = None) -> int:
    """Write the clips of one dataset as a ``file,split`` CSV, sorted by file.

    Parameters
    ----------
    mapping : mapping
        ``{clip.key: split}`` (e.g. :func:`make_splits` over several datasets).
    path : path-like
        The CSV; its stem names the dataset unless ``dataset`` is given. Only
        keys ``"<dataset>/..."`` are written, with that prefix removed.

    Returns
    -------
    int
        Rows written.
    """
    path = Path(path)
    dataset = dataset or path.stem
    prefix = f"{dataset}/"
    rows = sorted((k[len(prefix) :], s) for k, s in mapping.items() if k.startswith(prefix))
    bad = sorted({s for _, s in rows} - set(SPLITS))
    if bad:
        raise ParameterError(f"unknown split names {bad} (expected {SPLITS})")
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "split"])
        w.writerows(rows)
    os.replace(tmp, path)
    return len(rows)


def read_splits(dataset: str, path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The committed split of a dataset: ``{clip.key: split}``.

    Parameters
    ----------
    dataset : str
        ``"4q"``, ``"emotify"`` or ``"esc50"`` (package data ``mirtag.trainer.splits``).
    path : path-like, optional
        Read this CSV instead.
    """
    path = Path(path) if path is not None else _splits_dir() / f"{dataset}.csv"
    rows = read_csv_rows(path, ("file", "split"))
    out = {}
    for i, r in enumerate(rows, start=2):
        if r["split"] not in SPLITS:
            raise MirtagError(f"{path}:{i}: split must be one of {SPLITS}, got {r['split']!r}")
        out[f"{dataset}/{r['file']}"] = r["split"]
    return out
