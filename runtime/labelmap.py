"""Label maps: model label -> the names written into files (rename, split, drop).

Players split genre fields on ``/``, ``;`` and ``,`` (Navidrome, LMS, Jellyfin),
so a written name must contain none of them. The default map ships as
``labelmap.toml`` next to this module; a user's map (``--label-map``) is laid
over it, head by head and label by label.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MirtagError, ParameterError

_LOGGER = logging.getLogger(__name__)

DEFAULT_PATH = Path(__file__).with_name("labelmap.toml")
SPLIT_CHARS = re.compile(r"[/;,]")
"""Characters players split a genre or mood field on."""


class LabelMapError(MirtagError):
    """A label map file cannot be read or says something invalid."""


def _toml_load(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            from .errors import MissingDependencyError

            raise MissingDependencyError("reading a label map on Python 3.10 needs tomli: pip install tomli") from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise LabelMapError(f"{path}: cannot read the label map ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise LabelMapError(f"{path}: not valid TOML ({exc})") from None


@dataclass
class LabelMap:
    """Head -> label -> written names (empty tuple: never written).

    Examples
    --------
    >>> m = LabelMap.load()
    >>> m.names("genre", "Pop/Rock")
    ('Pop', 'Rock')
    >>> m.names("moods", "calm")
    ('calm',)
    """

    entries: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    dropped: set[tuple[str, str]] = field(default_factory=set)
    """(head, label) pairs left out because their name would be split by players (logged once each)."""

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> LabelMap:
        """The default map, with ``path`` (a user's TOML map) laid over it."""
        m = cls()
        m._merge(_toml_load(DEFAULT_PATH), DEFAULT_PATH)
        if path is not None:
            m._merge(_toml_load(Path(path)), Path(path))
        return m

    def _merge(self, doc: dict[str, Any], where: Path) -> None:
        for head, table in doc.items():
            if not isinstance(table, dict):
                raise LabelMapError(f"{where}: [{head}] must be a table of label = name(s)")
            dest = self.entries.setdefault(head, {})
            for label, value in table.items():
                names = (value,) if isinstance(value, str) else value
                if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
                    raise LabelMapError(f"{where}: [{head}] {label!r} must map to a string or a list of strings")
                for n in names:
                    if not n.strip() or SPLIT_CHARS.search(n):
                        raise LabelMapError(
                            f"{where}: [{head}] {label!r} -> {n!r}: a written name must be non-empty "
                            "and contain no '/', ';' or ',' (players split on them)"
                        )
                dest[label] = tuple(n.strip() for n in names)

    def names(self, head: str, label: str) -> tuple[str, ...]:
        """What to write for ``label`` of ``head`` (possibly nothing)."""
        if not isinstance(label, str):
            raise ParameterError(f"label must be a string, got {type(label).__name__}")
        mapped = self.entries.get(head, {}).get(label)
        if mapped is not None:
            return mapped
        if SPLIT_CHARS.search(label):
            if (head, label) not in self.dropped:
                self.dropped.add((head, label))
                _LOGGER.warning(
                    "label %r of head %r is not written: players would split it on '/', ';' or ','; "
                    "map it in a --label-map file",
                    label,
                    head,
                )
            return ()
        return (label,)

    def apply(self, head: str, labels: list[str]) -> list[str]:
        """Written names for ``labels`` in order, without duplicates (case-insensitive)."""
        out: list[str] = []
        seen: set[str] = set()
        for lab in labels:
            for n in self.names(head, lab):
                if n.casefold() not in seen:
                    seen.add(n.casefold())
                    out.append(n)
        return out
