"""Dataset readers: each dataset's manifest -> :class:`Clip` records.

:func:`data_root` finds the data folder (argument or ``MIRTAG_DATA``); the
readers :func:`read_4q`, :func:`read_emotify`, :func:`read_esc50`,
:func:`read_gtzan` and the generic :func:`read_manifest` turn manifests into
clips. Paths: a clip's ``file`` is relative to the data root (as in the
manifests, e.g. ``4q/audio/Q1/MT0000040632.ogg``) or absolute (GTZAN, which
users bring from elsewhere). Nothing here knows where the data lives.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mirtag.runtime.errors import MirtagError, ParameterError

_LOGGER = logging.getLogger(__name__)

DATA_ENV = "MIRTAG_DATA"
"""Environment variable naming the data root."""

SPLITS = ("train", "validation", "test")
"""The split names, in order."""

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")

EMOTIONS = (
    "amazement",
    "solemnity",
    "tenderness",
    "nostalgia",
    "calmness",
    "power",
    "joyful_activation",
    "tension",
    "sadness",
)
"""The 9 GEMS emotions of Emotify, in its column order."""

EMOTIFY_GENRES = {"classical": "Classical", "electronic": "Electronic", "pop": "Pop/Rock", "rock": "Pop/Rock"}
"""Emotify genre -> AllMusic top-level genre (AllMusic has no separate pop and rock)."""

EMOTIFY_GENRE_LABELS = tuple(sorted(set(EMOTIFY_GENRES.values())))
"""The AllMusic genres Emotify's four genres map onto: the only genre labels an Emotify clip supervises."""

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

GTZAN_LISTS = {"train_filtered.txt": "train", "valid_filtered.txt": "validation", "test_filtered.txt": "test"}
"""The fault-filtered GTZAN lists (Kereliuk, Sturm & Larsen 2015) and the split each one is."""

MANIFEST_KINDS = ("single", "multi", "soft")


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


def read_csv_rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
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
    rows = read_csv_rows(path, ("file", "quadrant", "artist", "allmusic_genres", "moods"))
    clips = []
    for i, r in enumerate(rows, start=2):
        q = r["quadrant"].strip()
        if q not in QUADRANTS:
            raise MirtagError(f"{path}:{i}: quadrant must be one of {QUADRANTS}, got {q!r}")
        clips.append(
            Clip(
                file=r["file"].strip(),
                dataset="4q",
                group=normalise_artist(r["artist"]),
                genres=_split_multi(r["allmusic_genres"]),
                quadrant=q,
                moods=_split_multi(r["moods"]),
                music=True,
                stratum=q,
            )
        )
    return clips


def read_emotify(root: str | os.PathLike[str]) -> list[Clip]:
    """Clips of Emotify (``<root>/emotify/emotify.csv``).

    ``genres`` is the mapped AllMusic genre (:data:`EMOTIFY_GENRES`), ``stratum``
    Emotify's own (classical / electronic / pop / rock), ``emotions`` the
    ``frac_<emotion>`` shares. There is no artist column, so ``group`` is empty.
    """
    path = Path(root) / "emotify" / "emotify.csv"
    rows = read_csv_rows(path, ("file", "genre", *(f"frac_{e}" for e in EMOTIONS)))
    clips = []
    for i, r in enumerate(rows, start=2):
        g = r["genre"].strip().lower()
        if g not in EMOTIFY_GENRES:
            raise MirtagError(f"{path}:{i}: unknown Emotify genre {g!r} (expected {sorted(EMOTIFY_GENRES)})")
        try:
            emotions = tuple((e, float(r[f"frac_{e}"])) for e in EMOTIONS)
        except ValueError as exc:
            raise MirtagError(f"{path}:{i}: bad emotion fraction ({exc})") from None
        clips.append(
            Clip(
                file=r["file"].strip(),
                dataset="emotify",
                genres=(EMOTIFY_GENRES[g],),
                music=True,
                emotions=emotions,
                stratum=g,
            )
        )
    return clips


def read_esc50(root: str | os.PathLike[str]) -> list[Clip]:
    """Clips of ESC-50 (``<root>/esc50/esc50.csv``): not music, grouped by category."""
    path = Path(root) / "esc50" / "esc50.csv"
    rows = read_csv_rows(path, ("file", "category"))
    return [
        Clip(
            file=r["file"].strip(),
            dataset="esc50",
            group=r["category"].strip(),
            music=False,
            category=r["category"].strip(),
            stratum=r["category"].strip(),
        )
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
        clips.append(
            Clip(file=str(p.resolve()), dataset="gtzan", genres=(genre,), music=True, stratum=genre, split=split)
        )
    if excluded:
        _LOGGER.info("GTZAN %s: %d files not in the fault-filtered lists were excluded", genres_dir, excluded)
    if not clips:
        raise MirtagError(
            f"{genres_dir}: no GTZAN files matching the lists (expected genres/<genre>/<genre>.000NN.wav)"
        )
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
    specs = parse_label_columns(label_columns)
    required = ["file", *specs, *(c for c in (group_column, split_column) if c)]
    rows = read_csv_rows(csv_path, required)
    clips = []
    for i, r in enumerate(rows, start=2):
        file = r["file"].strip()
        if root is None and not Path(file).is_absolute():
            file = str((csv_path.parent / file).resolve())
        fields, extra = _row_labels(r, specs, f"{csv_path}:{i}")
        split = (r.get(split_column) or "").strip() if split_column else ""
        if split and split not in SPLITS:
            raise MirtagError(f"{csv_path}:{i}: split must be one of {SPLITS}, got {split!r}")
        genres = fields.get("genres", ())
        clips.append(
            Clip(
                file=file,
                dataset=dataset,
                group=normalise_artist(r[group_column]) if group_column else "",
                music=music,
                extra=tuple(sorted(extra)),
                stratum=fields.get("quadrant") or (genres[0] if genres else "") or fields.get("category") or "",
                split=split or None,
                **fields,
            )
        )
    return clips


def parse_label_columns(label_columns: Mapping[str, tuple]) -> dict[str, tuple[str, str, str]]:
    """Validated ``label_columns`` of :func:`read_manifest`: column -> ``(head, kind, label)``.

    Raises
    ------
    ParameterError
        A spec is malformed, a built-in head gets the wrong kind, or a head
        mixes soft and hard columns.
    """
    specs: dict[str, tuple[str, str, str]] = {}
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
    return specs


def _row_labels(
    row: Mapping[str, str], specs: Mapping[str, tuple[str, str, str]], where: str
) -> tuple[dict[str, Any], list[tuple[str, tuple]]]:
    """One manifest row's labels: Clip fields (``genres``, ``quadrant``, ...) and :attr:`Clip.extra` pairs."""
    hard: dict[str, list[str]] = defaultdict(list)
    soft: dict[str, list[tuple[str, float]] | None] = {}
    for col, (head, kind, label) in specs.items():
        cell = (row.get(col) or "").strip()
        if kind == "soft":
            if head in soft and soft[head] is None:
                continue
            if not cell:
                soft[head] = None  # one empty share: the head is not labelled on this clip
                continue
            try:
                soft.setdefault(head, []).append((label, float(cell)))
            except ValueError:
                raise MirtagError(f"{where}: column {col!r} is not a number: {cell!r}") from None
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
    return fields, extra
