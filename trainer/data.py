"""Datasets for training: manifests -> clips, splits, label targets, noise mixing, feature cache.

Pure numpy (no torch), so features can be cached on a machine without the
``train`` extra. The pieces, in the order the trainer uses them:

1. :func:`data_root` finds the data folder (argument or ``MIRTAG_DATA``);
2. readers turn each dataset's manifest into :class:`Clip` records:
   :func:`read_4q`, :func:`read_emotify`, :func:`read_esc50`, :func:`read_gtzan`
   and the generic :func:`read_manifest`;
3. :func:`make_splits` assigns train / validation / test (group- and
   stratum-aware); the committed assignment is read with :func:`read_splits`;
4. :func:`build_taxonomy` picks the labels of every head, :func:`encode_targets`
   turns clips into target and mask arrays (a mask says which labels supervise a
   clip: each dataset only knows some of the labels);
5. :class:`Augment` / :func:`plan_augments` / :func:`mix_noise` describe and apply
   background-noise mixing (ESC-50 under music at a chosen SNR);
6. :class:`FeatureCache` stores the frontend's pre-window mel spectrogram
   (``Frontend.mel``; windows are cut from it at training time, at any phase) of every (clip, augment)
   as float16 ``.npy`` files, computed in worker processes;
   :func:`load_windows` concatenates them into training arrays.

Paths: a clip's ``file`` is relative to the data root (as in the manifests, e.g.
``4q/audio/Q1/MT0000040632.ogg``) or absolute (GTZAN, which users bring from
elsewhere). Nothing here knows where the data lives.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import re
import unicodedata
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mirtag.runtime._env import SINGLE_THREAD_ENV, child_env
from mirtag.runtime.card import FrontendConfig
from mirtag.runtime.errors import DecodeError, MirtagError, ParameterError

_LOGGER = logging.getLogger(__name__)

DATA_ENV = "MIRTAG_DATA"
"""Environment variable naming the data root."""

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
"""Target shares of the grouped, stratified splits (4Q, Emotify, generic manifests)."""

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")

EMOTIONS = (
    "amazement", "solemnity", "tenderness", "nostalgia", "calmness",
    "power", "joyful_activation", "tension", "sadness",
)
"""The 9 GEMS emotions of Emotify, in its column order."""

EMOTIFY_GENRES = {"classical": "Classical", "electronic": "Electronic", "pop": "Pop/Rock", "rock": "Pop/Rock"}
"""Emotify genre -> AllMusic top-level genre (AllMusic has no separate pop and rock)."""

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

GTZAN_LISTS = {"train_filtered.txt": "train", "valid_filtered.txt": "validation", "test_filtered.txt": "test"}
"""The fault-filtered GTZAN lists (Kereliuk, Sturm & Larsen 2015) and the split each one is."""

MANIFEST_KINDS = ("single", "multi", "soft")

# The heads that map onto Clip's own fields; any other manifest head goes to Clip.extra.
_FIELD_HEADS = {"genre": "genres", "quadrant": "quadrant", "moods": "moods", "emotions": "emotions", "category": "category"}


# --------------------------------------------------------------------------- data root


def data_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``path`` if given, else ``$MIRTAG_DATA``.

    Raises
    ------
    MirtagError
        Neither is set, or the folder does not exist.
    """
    raw = path if path is not None and str(path) != "" else os.environ.get(DATA_ENV) or None
    if raw is None:
        raise MirtagError(f"no data folder: pass --data-root or set {DATA_ENV}")
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise MirtagError(f"{root}: data folder not found (pass --data-root or set {DATA_ENV})")
    return root


# --------------------------------------------------------------------------- clips


@dataclass(frozen=True)
class Clip:
    """One labelled audio file.

    Attributes
    ----------
    file : str
        Path relative to the data root (POSIX separators), or absolute.
    dataset : str
        ``"4q"``, ``"emotify"``, ``"esc50"``, ``"gtzan"`` or a manifest's name;
        decides which labels the clip supervises (:func:`encode_targets`).
    group : str
        Clips sharing a non-empty group never straddle splits (4Q: normalised
        artist; ESC-50: category); ``""`` means the clip is its own group.
    genres : tuple of str
        AllMusic-style genres (Emotify's mapped; GTZAN's own lower-case names).
    quadrant : str or None
        ``"Q1"`` .. ``"Q4"`` (4Q).
    moods : tuple of str
        AllMusic mood tags (4Q).
    music : bool
        False for environmental sound (ESC-50).
    emotions : tuple of (str, float) or None
        Soft targets: the share of listeners who felt each emotion (Emotify).
    category : str or None
        ESC-50 sound category.
    stratum : str
        The label splits are balanced on (4Q quadrant, Emotify's own genre,
        GTZAN genre, ESC-50 category).
    split : str or None
        A split fixed by the dataset itself (GTZAN lists, a manifest's split
        column); :func:`make_splits` keeps it.
    extra : tuple of (str, tuple)
        Generic heads from :func:`read_manifest` that are not fields above:
        ``(head, labels)`` where ``labels`` is a tuple of str (single / multi
        label) or of ``(label, value)`` pairs (soft targets).
    """

    file: str
    dataset: str
    group: str = ""
    genres: tuple[str, ...] = ()
    quadrant: str | None = None
    moods: tuple[str, ...] = ()
    music: bool = True
    emotions: tuple[tuple[str, float], ...] | None = None
    category: str | None = None
    stratum: str = ""
    split: str | None = None
    extra: tuple[tuple[str, tuple], ...] = ()

    @property
    def key(self) -> str:
        """Unique id across datasets: ``"<dataset>/<file>"``."""
        return f"{self.dataset}/{self.file}"

    def resolve(self, root: str | os.PathLike[str] | None) -> Path:
        """Absolute path of the audio file (``root / file`` unless ``file`` is absolute)."""
        p = Path(self.file)
        if p.is_absolute():
            return p
        if root is None:
            raise ParameterError(f"{self.key}: a relative clip needs the data root")
        return Path(root) / p


_FEAT_RE = re.compile(r"\s(?:feat(?:uring)?|ft)\b\.?|[&/,;+]")


def normalise_artist(name: str) -> str:
    """Grouping key of an artist name, so one artist's songs land in one split.

    Lower-case, accents stripped, the first name of a collaboration
    ("X feat. Y", "X ft. Y", "X & Y", "X / Y", "X, Y", "X + Y"; ``;`` counts as a
    comma because the 4Q manifest rewrote commas inside names as ``;``), runs of
    non-alphanumerics collapsed to one space, a leading "the " dropped.
    "feat" must be a whole word ("Leonard Feather" stays whole).

    Examples
    --------
    >>> normalise_artist("The Beatles"), normalise_artist("Beyoncé feat. Jay-Z")
    ('beatles', 'beyonce')
    """
    s = unicodedata.normalize("NFKD", name)
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).lower()
    first = _FEAT_RE.split(s, maxsplit=1)[0]
    if not re.sub(r"[\W_]+", "", first):
        first = s  # "& Friends": nothing before the separator, keep the whole name
    out = re.sub(r"[\W_]+", " ", first).strip()
    if out.startswith("the ") and len(out) > 4:
        out = out[4:]
    return out


def _split_multi(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(";") if v.strip())


def _read_csv(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise MirtagError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MirtagError(f"{path}: unreadable manifest ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise MirtagError(f"{path}: manifest lacks columns {missing} (has {header})")
    return rows


def read_4q(root: str | os.PathLike[str]) -> list[Clip]:
    """Clips of the 4Q emotion dataset (``<root>/4q/4q.csv``).

    Genres and moods are ``;``-separated; ``group`` is :func:`normalise_artist`
    of the artist; ``stratum`` is the quadrant.
    """
    path = Path(root) / "4q" / "4q.csv"
    rows = _read_csv(path, ("file", "quadrant", "artist", "allmusic_genres", "moods"))
    clips = []
    for i, r in enumerate(rows, start=2):
        q = r["quadrant"].strip()
        if q not in QUADRANTS:
            raise MirtagError(f"{path}:{i}: quadrant must be one of {QUADRANTS}, got {q!r}")
        clips.append(Clip(
            file=r["file"].strip(), dataset="4q", group=normalise_artist(r["artist"]),
            genres=_split_multi(r["allmusic_genres"]), quadrant=q, moods=_split_multi(r["moods"]),
            music=True, stratum=q,
        ))
    return clips


def read_emotify(root: str | os.PathLike[str]) -> list[Clip]:
    """Clips of Emotify (``<root>/emotify/emotify.csv``).

    ``genres`` is the mapped AllMusic genre (:data:`EMOTIFY_GENRES`), ``stratum``
    Emotify's own (classical / electronic / pop / rock), ``emotions`` the
    ``frac_<emotion>`` shares. There is no artist column, so ``group`` is empty.
    """
    path = Path(root) / "emotify" / "emotify.csv"
    rows = _read_csv(path, ("file", "genre", *(f"frac_{e}" for e in EMOTIONS)))
    clips = []
    for i, r in enumerate(rows, start=2):
        g = r["genre"].strip().lower()
        if g not in EMOTIFY_GENRES:
            raise MirtagError(f"{path}:{i}: unknown Emotify genre {g!r} (expected {sorted(EMOTIFY_GENRES)})")
        try:
            emotions = tuple((e, float(r[f"frac_{e}"])) for e in EMOTIONS)
        except ValueError as exc:
            raise MirtagError(f"{path}:{i}: bad emotion fraction ({exc})") from None
        clips.append(Clip(
            file=r["file"].strip(), dataset="emotify", genres=(EMOTIFY_GENRES[g],), music=True,
            emotions=emotions, stratum=g,
        ))
    return clips


def read_esc50(root: str | os.PathLike[str]) -> list[Clip]:
    """Clips of ESC-50 (``<root>/esc50/esc50.csv``): not music, grouped by category."""
    path = Path(root) / "esc50" / "esc50.csv"
    rows = _read_csv(path, ("file", "category"))
    return [
        Clip(file=r["file"].strip(), dataset="esc50", group=r["category"].strip(), music=False,
             category=r["category"].strip(), stratum=r["category"].strip())
        for r in rows
    ]


def _gtzan_lists(lists_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """stem (``blues.00012``) -> split, from the fault-filtered lists."""
    if lists_dir is not None:
        base: Any = Path(lists_dir)
    else:
        base = resources.files("mirtag.trainer.lists")
    stems: dict[str, str] = {}
    for name, split in GTZAN_LISTS.items():
        entry = base / name
        try:
            text = entry.read_text(encoding="utf-8")
        except OSError as exc:
            raise MirtagError(f"{entry}: GTZAN list unreadable ({exc})") from None
        # Lines look like "blues/blues.00012.wav".
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                stems[Path(line).stem] = split
    return stems


def read_gtzan(folder: str | os.PathLike[str], lists_dir: str | os.PathLike[str] | None = None) -> list[Clip]:
    """Clips of a GTZAN folder, split by the fault-filtered artist-disjoint lists.

    Parameters
    ----------
    folder : path-like
        Holds ``genres/<genre>/<genre>.000NN.wav`` (or ``.au``); the ``genres``
        folder itself is accepted too.
    lists_dir : path-like, optional
        Folder with ``train_filtered.txt``, ``valid_filtered.txt`` and
        ``test_filtered.txt``; default: the copies shipped in
        ``mirtag.trainer.lists``.

    Returns
    -------
    list of Clip
        ``file`` absolute, ``genres=(genre,)``, ``split`` from the lists. Files
        the lists leave out (GTZAN's faulty, repeated and mislabelled excerpts)
        are excluded, with one INFO line.
    """
    folder = Path(folder)
    genres_dir = folder / "genres" if (folder / "genres").is_dir() else folder
    if not genres_dir.is_dir():
        raise MirtagError(f"{folder}: GTZAN folder not found")
    stems = _gtzan_lists(lists_dir)
    found: dict[str, Path] = {}
    for p in sorted(genres_dir.glob("*/*")):
        if p.suffix.lower() not in (".wav", ".au") or not p.is_file():
            continue
        # Both forms present (a converted copy): keep the first, .au sorts before .wav.
        found.setdefault(p.stem, p)
    clips, excluded = [], 0
    for stem, p in sorted(found.items()):
        split = stems.get(stem)
        genre = p.parent.name
        if split is None:
            excluded += 1
            continue
        clips.append(Clip(file=str(p.resolve()), dataset="gtzan", genres=(genre,), music=True,
                          stratum=genre, split=split))
    if excluded:
        _LOGGER.info("GTZAN %s: %d files not in the fault-filtered lists were excluded", genres_dir, excluded)
    if not clips:
        raise MirtagError(f"{genres_dir}: no GTZAN files matching the lists (expected genres/<genre>/<genre>.000NN.wav)")
    return clips


def read_manifest(
    csv_path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    label_columns: Mapping[str, tuple],
    dataset: str | None = None,
    group_column: str | None = None,
    split_column: str | None = None,
    music: bool = True,
) -> list[Clip]:
    """Clips of any CSV manifest with a ``file`` column.

    Parameters
    ----------
    csv_path : path-like
        The manifest.
    root : path-like, optional
        The folder ``file`` is relative to. Given: ``file`` is kept as written
        (pass the same root to the cache). None: relative files are made
        absolute against the CSV's folder.
    label_columns : mapping
        Column -> ``(head, kind)`` or ``(head, kind, label)``. ``kind``:

        - ``"single"``: one label per cell;
        - ``"multi"``: ``;``-separated labels;
        - ``"soft"``: the cell is one label's share in [0, 1]; the label is the
          third element, else the column name without a leading ``frac_``.
          Several soft columns with the same head make one soft head.

        Heads ``genre``, ``quadrant``, ``moods``, ``emotions`` (soft) and
        ``category`` fill the clip fields of those names; any other head goes
        to :attr:`Clip.extra`. An empty cell means "not labelled" for that head
        (for a soft head: any empty cell).
    dataset : str, optional
        The clips' dataset name (default: the CSV's stem).
    group_column : str, optional
        A column of artists (normalised with :func:`normalise_artist`) keeping
        each artist in one split.
    split_column : str, optional
        A column fixing ``train`` / ``validation`` / ``test``.
    music : bool
        Whether the clips are music.
    """
    csv_path = Path(csv_path)
    dataset = dataset or csv_path.stem
    specs: dict[str, tuple[str, str, str | None]] = {}
    for col, spec in label_columns.items():
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3) or spec[1] not in MANIFEST_KINDS:
            raise ParameterError(f"label_columns[{col!r}] must be (head, kind[, label]) with kind in {MANIFEST_KINDS}")
        head, kind = spec[0], spec[1]
        if head in ("quadrant", "category") and kind != "single":
            raise ParameterError(f"head {head!r} takes one label per clip (kind 'single')")
        if head == "emotions" and kind != "soft":
            raise ParameterError("head 'emotions' takes soft columns")
        label = spec[2] if len(spec) == 3 else (col[5:] if col.startswith("frac_") else col)
        specs[col] = (head, kind, label)
    heads_kind: dict[str, str] = {}
    for head, kind, _ in specs.values():
        if heads_kind.setdefault(head, "soft" if kind == "soft" else "hard") != ("soft" if kind == "soft" else "hard"):
            raise ParameterError(f"head {head!r} mixes soft and hard columns")
    required = ["file", *specs, *(c for c in (group_column, split_column) if c)]
    rows = _read_csv(csv_path, required)
    base = csv_path.parent
    clips = []
    for i, r in enumerate(rows, start=2):
        file = r["file"].strip()
        if root is None and not Path(file).is_absolute():
            file = str((base / file).resolve())
        hard: dict[str, list[str]] = defaultdict(list)
        soft: dict[str, list[tuple[str, float]] | None] = {}
        for col, (head, kind, label) in specs.items():
            cell = (r.get(col) or "").strip()
            if kind == "soft":
                if head in soft and soft[head] is None:
                    continue
                if not cell:
                    soft[head] = None
                    continue
                try:
                    soft.setdefault(head, []).append((label, float(cell)))
                except ValueError:
                    raise MirtagError(f"{csv_path}:{i}: column {col!r} is not a number: {cell!r}") from None
            elif cell:
                hard[head].extend(_split_multi(cell) if kind == "multi" else (cell,))
        fields: dict[str, Any] = {}
        extra = []
        for head, labels in hard.items():
            labels = list(dict.fromkeys(labels))  # de-duplicated, order kept
            if head == "genre":
                fields["genres"] = tuple(labels)
            elif head == "moods":
                fields["moods"] = tuple(labels)
            elif head in ("quadrant", "category"):
                fields[head] = labels[0]
            else:
                extra.append((head, tuple(labels)))
        for head, pairs in soft.items():
            if pairs is None:
                continue
            if head == "emotions":
                fields["emotions"] = tuple(pairs)
            else:
                extra.append((head, tuple(pairs)))
        split = (r.get(split_column) or "").strip() if split_column else ""
        if split and split not in SPLITS:
            raise MirtagError(f"{csv_path}:{i}: split must be one of {SPLITS}, got {split!r}")
        genres = fields.get("genres", ())
        clips.append(Clip(
            file=file, dataset=dataset,
            group=normalise_artist(r[group_column]) if group_column else "",
            music=music, extra=tuple(sorted(extra)),
            stratum=fields.get("quadrant") or (genres[0] if genres else "") or fields.get("category") or "",
            split=split or None, **fields,
        ))
    return clips


# --------------------------------------------------------------------------- splits


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
    where.update({cat: "validation" for cat in perm[n_held: 2 * n_held]})
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
        return Path(__file__).parent / "splits"


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
    rows = sorted((k[len(prefix):], s) for k, s in mapping.items() if k.startswith(prefix))
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
    rows = _read_csv(path, ("file", "split"))
    out = {}
    for i, r in enumerate(rows, start=2):
        if r["split"] not in SPLITS:
            raise MirtagError(f"{path}:{i}: split must be one of {SPLITS}, got {r['split']!r}")
        out[f"{dataset}/{r['file']}"] = r["split"]
    return out


# --------------------------------------------------------------------------- taxonomy and targets


def build_taxonomy(
    clips: Iterable[Clip], min_genre: int = 30, min_mood: int = 25, *, genre_datasets: Sequence[str] = ("4q", "emotify")
) -> dict[str, list[str]]:
    """The labels of every head.

    Heads: ``genre`` (genres of ``genre_datasets`` clips on at least ``min_genre``
    clips, by count then name; GTZAN's lower-case names are another
    vocabulary and stay out by default), ``quadrant`` (Q1-Q4), ``moods`` (tags
    on at least ``min_mood`` clips, sorted), ``music`` (one label),
    ``emotions`` (the 9 GEMS emotions), and every :attr:`Clip.extra` head
    (its labels sorted).
    """
    clips = list(clips)
    genres = Counter(g for c in clips if c.dataset in genre_datasets for g in set(c.genres))
    moods = Counter(m for c in clips for m in set(c.moods))
    tax = {
        "genre": [g for g, n in sorted(genres.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_genre],
        "quadrant": list(QUADRANTS),
        "moods": sorted(m for m, n in moods.items() if n >= min_mood),
        "music": ["music"],
        "emotions": list(EMOTIONS),
    }
    extra: dict[str, set[str]] = defaultdict(set)
    for c in clips:
        for head, labels in c.extra:
            extra[head].update(lab[0] if isinstance(lab, tuple) else lab for lab in labels)
    for head in sorted(extra):
        if head in tax:
            raise ParameterError(f"extra head {head!r} clashes with a built-in head")
        tax[head] = sorted(extra[head])
    return tax


def encode_targets(
    clips: Sequence[Clip], taxonomy: Mapping[str, Sequence[str]]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Targets and supervision masks of every head.

    Returns
    -------
    targets, masks : dict of str -> np.ndarray [shape=(n_clips, n_labels), dtype=float32]
        ``masks[h][i, j] = 1`` where label ``j`` of head ``h`` supervises clip
        ``i``; the loss must ignore the rest. Per dataset:

        - 4Q: genre, quadrant (one-hot), moods, music (=1), all labels: its
          genre and mood lists are complete, so absent labels are negatives;
        - Emotify: genre only on Classical, Electronic and Pop/Rock (the labels
          its 4 genres can say anything about: a classical excerpt is not
          evidence against jazz), music (=1), emotions (soft shares);
        - ESC-50: music (=0) only;
        - GTZAN: music (=1); genre on the taxonomy labels that are GTZAN genre
          names, only if the clip's genre is one (exact match: AllMusic names
          are capitalised, so by default GTZAN clips leave genre masked);
        - other manifests: music, and every head the clip has labels for, on
          all its labels.
    """
    n = len(clips)
    index = {h: {lab: j for j, lab in enumerate(labels)} for h, labels in taxonomy.items()}
    targets = {h: np.zeros((n, len(labels)), np.float32) for h, labels in taxonomy.items()}
    masks = {h: np.zeros((n, len(labels)), np.float32) for h, labels in taxonomy.items()}

    def hard(h: str, i: int, labels: Iterable[str], supervise: Iterable[str] | None = None) -> None:
        if h not in index:
            return
        for lab in labels:
            j = index[h].get(lab)
            if j is not None:
                targets[h][i, j] = 1.0
        if supervise is None:
            masks[h][i] = 1.0
        else:
            for lab in supervise:
                if lab in index[h]:
                    masks[h][i, index[h][lab]] = 1.0

    def soft(h: str, i: int, pairs: Iterable[tuple[str, float]]) -> None:
        if h not in index:
            return
        for lab, v in pairs:
            j = index[h].get(lab)
            if j is not None:
                targets[h][i, j] = v
                masks[h][i, j] = 1.0

    for i, c in enumerate(clips):
        if "music" in index:
            targets["music"][i] = 1.0 if c.music else 0.0
            masks["music"][i] = 1.0
        if c.dataset == "esc50":
            continue
        if c.dataset == "emotify":
            hard("genre", i, c.genres, supervise=sorted(set(EMOTIFY_GENRES.values())))
            soft("emotions", i, c.emotions or ())
            continue
        if c.dataset == "gtzan":
            if "genre" in index and all(g in index["genre"] for g in c.genres):
                hard("genre", i, c.genres, supervise=GTZAN_GENRES)
            continue
        # 4Q and generic manifests: every head the clip is labelled on, fully.
        if c.genres or c.dataset == "4q":
            hard("genre", i, c.genres)
        if c.quadrant is not None:
            hard("quadrant", i, (c.quadrant,))
        if c.moods or c.dataset == "4q":
            hard("moods", i, c.moods)
        if c.emotions is not None:
            soft("emotions", i, c.emotions)
        for head, labels in c.extra:
            if labels and isinstance(labels[0], tuple):
                soft(head, i, labels)
            else:
                hard(head, i, labels)
    return targets, masks


# --------------------------------------------------------------------------- noise augmentation


@dataclass(frozen=True)
class Augment:
    """How one training example is derived from its clip: clean, or with noise mixed in.

    Attributes
    ----------
    noise_file : str or None
        The noise clip's ``file`` (relative to the data root, or absolute); None = clean.
    snr_db : float or None
        Music-to-noise ratio in dB (RMS over the whole clip).
    noise_offset : int
        Noise sample (at the model rate) mixed under the music's first sample;
        taken modulo the noise length.
    """

    noise_file: str | None = None
    snr_db: float | None = None
    noise_offset: int = 0

    def __post_init__(self) -> None:
        if (self.noise_file is None) != (self.snr_db is None):
            raise ParameterError("an Augment needs both noise_file and snr_db, or neither")
        if self.noise_offset < 0:
            raise ParameterError(f"noise_offset must be >= 0, got {self.noise_offset}")

    @property
    def id(self) -> str:
        """``"clean"``, or ``"n-<8 hex>"`` hashed from the fields (stable across runs)."""
        if self.noise_file is None:
            return "clean"
        spec = json.dumps([self.noise_file, float(self.snr_db), int(self.noise_offset)])
        return "n-" + hashlib.sha256(spec.encode()).hexdigest()[:8]


CLEAN = Augment()


def plan_augments(
    clips: Iterable[Clip],
    noise_clips: Sequence[Clip],
    k: int,
    seed: int,
    snr_range: tuple[float, float] = (0.0, 20.0),
    *,
    max_offset: int = 5 * 22050,
    k_mix: int = 0,
    mix_snr_range: tuple[float, float] = (-6.0, 6.0),
) -> dict[str, list[Augment]]:
    """The examples to compute per clip: ``{clip.key: [CLEAN, noisy_1 .. noisy_k]}``.

    Each music clip gets ``k`` noisy variants: a noise clip drawn from
    ``noise_clips``, an SNR uniform in ``snr_range`` dB (rounded to 0.01 dB) and
    an offset uniform in ``[0, max_offset)`` samples (default: the length of an
    ESC-50 clip at 22,050 Hz). Each non-music clip gets ``k_mix`` mixtures with
    another noise clip at an SNR uniform in ``mix_snr_range`` (two sounds at
    once are still not music: more varied negatives for the ``music`` head
    than the few clips of each category). Each clip draws from its own seeded
    stream, so its plan does not depend on the other clips.
    """
    if k < 0:
        raise ParameterError(f"k must be >= 0, got {k}")
    noise = sorted(noise_clips, key=lambda c: c.key)
    if k and not noise:
        raise ParameterError("noisy variants need at least one noise clip")
    lo, hi = float(snr_range[0]), float(snr_range[1])
    if not lo <= hi:
        raise ParameterError(f"snr_range must be (low, high), got {snr_range}")
    if k_mix < 0:
        raise ParameterError(f"k_mix must be >= 0, got {k_mix}")
    def draw(rng: np.random.Generator, pool: Sequence[Clip], snr_lo: float, snr_hi: float) -> Augment:
        nc = pool[int(rng.integers(len(pool)))]
        snr = round(float(rng.uniform(snr_lo, snr_hi)), 2)
        return Augment(nc.file, snr, int(rng.integers(max(1, int(max_offset)))))

    out = {}
    for c in clips:
        rng = np.random.default_rng([int(seed), zlib.crc32(c.key.encode())])
        if c.music:
            extra = [draw(rng, noise, lo, hi) for _ in range(k)]
        else:
            others = [n for n in noise if n.key != c.key]
            extra = [draw(rng, others, *mix_snr_range) for _ in range(k_mix if others else 0)]
        out[c.key] = [CLEAN, *extra]
    return out


def mix_noise(y: np.ndarray, noise: np.ndarray, snr_db: float, offset: int = 0) -> np.ndarray:
    """Music plus looped noise at a given SNR.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), floating]
        Music samples.
    noise : np.ndarray [shape=(m,), floating]
        Noise at the same rate; repeated from sample ``offset % m`` to cover ``n``.
    snr_db : float
        Wanted ``20 * log10(rms(y) / rms(scaled noise))``, RMS over the clip.
    offset : int
        First noise sample used.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
        ``y + g * noise_segment``; ``y`` unchanged (a float32 copy) when the
        music or the noise segment is silent (no gain reaches the SNR).
    """
    y = np.asarray(y)
    noise = np.asarray(noise)
    if y.ndim != 1 or noise.ndim != 1:
        raise ParameterError(f"mix_noise takes 1-D signals, got {y.shape} and {noise.shape}")
    if noise.size == 0:
        raise ParameterError("noise is empty")
    if not np.isfinite(snr_db):
        raise ParameterError(f"snr_db must be finite, got {snr_db}")
    y32 = y.astype(np.float32, copy=True)
    if y.size == 0:
        return y32
    start = int(offset) % noise.size
    seg = np.resize(np.roll(noise.astype(np.float64), -start), y.size)
    rms_y = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    rms_n = float(np.sqrt(np.mean(np.square(seg))))
    if rms_y == 0.0 or rms_n == 0.0:
        return y32
    gain = rms_y / (rms_n * 10.0 ** (float(snr_db) / 20.0))
    return (y.astype(np.float64) + gain * seg).astype(np.float32)


# --------------------------------------------------------------------------- feature cache


@dataclass(frozen=True)
class CacheStats:
    """What one :meth:`FeatureCache.compute` did.

    Attributes
    ----------
    total : int
        Distinct (clip, augment) entries asked for.
    cached : int
        Already present.
    computed : int
        Computed now.
    failed : int
        Could not be computed (missing or undecodable file...).
    failures : tuple of (str, str)
        ``(clip key, reason)`` of each failure.
    """

    total: int
    cached: int
    computed: int
    failed: int
    failures: tuple[tuple[str, str], ...] = ()


def _worker_init() -> None:
    # Also set here, for anything the worker imports later (the frontend itself
    # is imported lazily, inside _compute_entry).
    os.environ.update(SINGLE_THREAD_ENV)


_FRONTENDS: dict[FrontendConfig, Any] = {}


def _compute_entry(task: tuple) -> tuple[bool, str]:
    """Worker: decode, mix, analyse, save atomically. Returns (ok, reason)."""
    audio_path, noise_path, snr_db, offset, config, out_path = task
    try:
        from mirtag.runtime import audio
        from mirtag.runtime.frontend import Frontend

        fe = _FRONTENDS.get(config)
        if fe is None:
            fe = _FRONTENDS[config] = Frontend(config, parallel=False)
        y, sr = audio.load(audio_path, sr=config.sample_rate)
        if noise_path is not None:
            noise, _ = audio.load(noise_path, sr=config.sample_rate)
            y = mix_noise(y, noise, snr_db, offset)
        mel = fe.mel(y, sr)
        # float16 halves the cache; mel amplitudes sit far inside its range, but
        # keep float32 for the (pathological) entry that would overflow.
        windows = mel.astype(np.float16) if float(mel.max(initial=0.0)) < 6e4 else mel
        out = Path(out_path)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, windows)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - one bad file must not end a long caching run
        return False, " ".join(f"{type(exc).__name__}: {exc}".split())


class FeatureCache:
    """Frontend mel spectrograms of (clip, augment) pairs, one float16 ``.npy`` per entry.

    Layout: ``<cache_dir>/<12 hex of sha256(frontend config JSON)>/<32 hex>.npy``,
    each ``(2, n_mels, n_frames)`` float16 (``Frontend.mel``: harmonic and
    percussive mel before compression and windowing). The entry name
    hashes the clip key, the audio file's size and mtime (ns), the augment id
    and the noise file's size and mtime: a changed file or spec gets a new
    entry, and a different frontend a different folder. Stale entries are
    never read (and not deleted).

    Parameters
    ----------
    cache_dir : path-like
        Root of the cache (created).
    frontend_config : FrontendConfig
        The frontend the spectrograms come from.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], frontend_config: FrontendConfig | None = None):
        self.config = frontend_config or FrontendConfig()
        spec = json.dumps(dataclasses.asdict(self.config), sort_keys=True)
        self.dir = Path(cache_dir) / hashlib.sha256(spec.encode()).hexdigest()[:12]
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _stat(path: Path) -> tuple[int, int]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise DecodeError(path, "file not found") from None
        except OSError as exc:
            raise DecodeError(path, f"cannot access file ({exc.strerror or exc})") from None
        return st.st_size, st.st_mtime_ns

    def path(self, clip: Clip, augment: Augment = CLEAN, root: str | os.PathLike[str] | None = None) -> Path:
        """Where the entry of ``(clip, augment)`` lives (stats the audio files).

        Raises
        ------
        DecodeError
            The audio or noise file is missing.
        """
        parts: list[Any] = [clip.key, *self._stat(clip.resolve(root)), augment.id]
        if augment.noise_file is not None:
            noise = Clip(augment.noise_file, "noise").resolve(root)
            parts += [*self._stat(noise)]
        name = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
        return self.dir / f"{name}.npy"

    def has(self, clip: Clip, augment: Augment = CLEAN, root: str | os.PathLike[str] | None = None) -> bool:
        """Whether the entry exists (False also when the audio is missing)."""
        try:
            return self.path(clip, augment, root).is_file()
        except DecodeError:
            return False

    def load(
        self, clip: Clip, augment: Augment = CLEAN, root: str | os.PathLike[str] | None = None, mmap: bool = True
    ) -> np.ndarray:
        """The mel spectrogram of an entry, ``(2, n_mels, n_frames)`` float16 (memory-mapped)."""
        p = self.path(clip, augment, root)
        try:
            return np.load(p, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise MirtagError(f"{clip.key} [{augment.id}]: not in the feature cache (run compute first)") from None

    def compute(
        self,
        items: Iterable[tuple[Clip, Augment]],
        root: str | os.PathLike[str] | None,
        workers: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> CacheStats:
        """Compute the missing entries.

        Parameters
        ----------
        items : iterable of (Clip, Augment)
            Entries wanted (duplicates count once).
        root : path-like or None
            The data root relative clip and noise files resolve against.
        workers : int
            Worker processes (spawned, one thread each); ``<= 1`` computes in
            this process.
        progress : callable(done, total), optional
            Called as entries are found or finished.

        Returns
        -------
        CacheStats
            A failing file is logged (one WARNING line naming it) and counted;
            the run goes on. An interrupted run resumes: finished entries exist.
        """
        tasks: dict[Path, tuple[str, tuple]] = {}
        failures: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        cached = 0
        for clip, aug in items:
            if (clip.key, aug.id) in seen:
                continue
            seen.add((clip.key, aug.id))
            try:
                out = self.path(clip, aug, root)
                noise = None if aug.noise_file is None else str(Clip(aug.noise_file, "noise").resolve(root))
            except MirtagError as exc:
                failures.append((clip.key, str(exc)))
                _LOGGER.warning("feature cache: %s [%s] failed: %s", clip.key, aug.id, exc)
                continue
            if out.is_file():
                cached += 1
            elif out not in tasks:
                tasks[out] = (clip.key, (str(clip.resolve(root)), noise, aug.snr_db, aug.noise_offset,
                                         self.config, str(out)))
        total = len(seen)
        done = cached + len(failures)
        if progress is not None:
            progress(done, total)
        computed = 0

        def finish(key: str, ok: bool, reason: str) -> None:
            nonlocal done, computed
            done += 1
            if ok:
                computed += 1
            else:
                failures.append((key, reason))
                _LOGGER.warning("feature cache: %s failed: %s", key, reason)
            if progress is not None:
                progress(done, total)

        if tasks and workers <= 1:
            for key, task in tasks.values():
                finish(key, *_compute_entry(task))
        elif tasks:
            ctx = multiprocessing.get_context("spawn")
            n = min(int(workers), len(tasks))
            with child_env(SINGLE_THREAD_ENV):
                pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_worker_init)
                # Processes start during submit, inside the patched environment.
                futures = {pool.submit(_compute_entry, task): key for key, task in tasks.values()}
            with pool:
                for fut in as_completed(futures):
                    try:
                        ok, reason = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker (BrokenProcessPool) fails its items
                        ok, reason = False, f"{type(exc).__name__}: {exc}"
                    finish(futures[fut], ok, reason)
        stats = CacheStats(total=total, cached=cached, computed=computed, failed=len(failures),
                           failures=tuple(failures))
        _LOGGER.info("feature cache %s: %d entries, %d cached, %d computed, %d failed",
                     self.dir, total, cached, computed, len(failures))
        return stats


def load_windows(
    cache: FeatureCache, items: Sequence[tuple[Clip, Augment]], root: str | os.PathLike[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the runtime's standard windows from cached entries into one array.

    Returns
    -------
    X : np.ndarray [shape=(N, 2, n_mels, window_frames), dtype=float16]
        Every window of every item, in item order.
    clip_index : np.ndarray [shape=(N,), dtype=int64]
        Position in ``items`` of each window's item.

    Raises
    ------
    MirtagError
        An entry is missing (compute first; drop the items that failed).
    """
    from mirtag.runtime.frontend import cut_windows, window_starts

    c = cache.config
    parts, owner = [], []
    for i, (clip, aug) in enumerate(items):
        mel = np.asarray(cache.load(clip, aug, root, mmap=True), dtype=np.float32)
        windows, _ = cut_windows(mel, window_starts(mel.shape[2], c), c)
        parts.append(windows.astype(np.float16))
        owner.append(np.full(len(windows), i, np.int64))
    if not parts:
        return np.zeros((0, 2, c.n_mels, c.window_frames), np.float16), np.zeros(0, np.int64)
    return np.concatenate(parts), np.concatenate(owner)
