"""Playlists from scan rows: a small filter language, M3U8 files and Navidrome smart playlists.

The filter (``mirtag playlist --where``) is a boolean expression over a row::

    quadrant=Q4 and genre=Jazz and music>0.9
    (mood=calm or mood=dreamy) and not genre=Rap and duration>=120
    genre.Jazz>=0.5 or path~"*/Jazz/*"

=========================  ====================================================
``HEAD=LABEL``             LABEL is among the head's decisions (the row's
                           ``top`` list; case-insensitive). ``!=`` negates.
``HEAD~GLOB``              some decided label matches the glob (``*``, ``?``)
``HEAD.LABEL OP NUMBER``   the label's probability; OP is ``< <= > >= = !=``
``HEAD OP NUMBER``         the same, for a head with one label (``music>0.9``)
``duration OP NUMBER``     seconds
``path=TEXT``, ``path~GLOB``  the file path
``and``, ``or``, ``not``, parentheses   ``and`` binds tighter than ``or``
=========================  ====================================================

HEAD is a head of the model (``genre``, ``quadrant``, ``moods``, ``music``,
``emotions``...); ``mood``, ``emotion``, ``tag`` and ``genres`` are accepted for
the plural or singular name. Values with spaces or operator characters are
quoted (``genre="New Age"``). Only rows with status ``ok`` are candidates.
A bad expression raises :class:`FilterError` whose one-line message points at
the token (column, counted from 1).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MirtagError
from .rows import path_from_row

_LOGGER = logging.getLogger(__name__)

OPS = ("<=", ">=", "!=", "=", "<", ">", "~")
_ALIASES = {"mood": "moods", "emotion": "emotions", "tag": "tags", "genres": "genre", "quadrants": "quadrant"}
_TOKEN = re.compile(r"""\s*(?:(?P<op><=|>=|!=|=|<|>|~)|(?P<paren>[()])|"(?P<quoted>[^"]*)"|(?P<word>[^\s()<>=!~"]+))""")


class FilterError(MirtagError):
    """A ``--where`` expression that cannot be parsed or does not fit the rows (one line, with the column)."""


class PlaylistError(MirtagError):
    """A playlist cannot be written."""


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Tok:
    kind: str  # op, paren, word, quoted, end
    text: str
    col: int  # 1-based


@dataclass(frozen=True)
class Cond:
    """``field op value``; ``col`` is where it starts in the expression."""

    field: str
    op: str
    value: str | float
    col: int


@dataclass(frozen=True)
class Not:
    arg: Any


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" or "or"
    args: tuple


def _tokens(text: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            col = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            what = "an unclosed quote" if text[col - 1] == '"' else repr(text[col - 1])
            raise FilterError(f"column {col}: unexpected {what} in {text!r}")
        kind = m.lastgroup
        start = m.start(kind) + (0 if kind == "quoted" else 1)  # 1-based; a quoted value: its quote
        toks.append(_Tok(kind, m.group(kind), start))
        pos = m.end()
    toks.append(_Tok("end", "", len(text) + 1))
    return toks


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Tok, what: str) -> FilterError:
        found = "the end" if tok.kind == "end" else repr(tok.text)
        return FilterError(f"column {tok.col}: expected {what}, found {found} in {self.text!r}")

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "word" and tok.text.lower() == word

    def parse(self):
        if self.peek().kind == "end":
            raise FilterError("the expression is empty")
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.fail(self.peek(), "'and', 'or' or the end")
        return node

    def or_expr(self):
        args = [self.and_expr()]
        while self.keyword("or"):
            self.take()
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else BoolOp("or", tuple(args))

    def and_expr(self):
        args = [self.not_expr()]
        while self.keyword("and"):
            self.take()
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else BoolOp("and", tuple(args))

    def not_expr(self):
        if self.keyword("not"):
            self.take()
            return Not(self.not_expr())
        tok = self.peek()
        if tok.kind == "paren" and tok.text == "(":
            self.take()
            node = self.or_expr()
            close = self.take()
            if not (close.kind == "paren" and close.text == ")"):
                raise self.fail(close, "')'")
            return node
        return self.cond()

    def cond(self) -> Cond:
        field = self.take()
        if field.kind != "word" or field.text.lower() in ("and", "or", "not"):
            raise self.fail(field, "a field (genre, quadrant, mood, music, duration, path, HEAD.LABEL)")
        op = self.take()
        if op.kind != "op":
            raise self.fail(op, f"an operator (= != < <= > >= ~) after {field.text!r}")
        value = self.take()
        if value.kind not in ("word", "quoted"):
            raise self.fail(value, f"a value after {field.text}{op.text}")
        v: str | float = value.text
        if value.kind == "word":
            try:
                v = float(value.text)
            except ValueError:
                pass
        if op.text in ("<", "<=", ">", ">=") and not isinstance(v, float):
            raise FilterError(f"column {value.col}: {op.text} needs a number, found {value.text!r} in {self.text!r}")
        return Cond(field.text, op.text, v, field.col)


def parse_filter(text: str):
    """Parse a ``--where`` expression into a tree of :class:`Cond`, :class:`Not` and :class:`BoolOp`."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------- rows


def row_heads(row: dict[str, Any]) -> dict[str, tuple[dict[str, float], list[str]]]:
    """Head -> (label probabilities, decided labels) of a JSON row or a CSV record."""
    heads = row.get("heads")
    if isinstance(heads, dict):
        return {h: (dict(i.get("probs") or {}), list(i.get("top") or [])) for h, i in heads.items() if i}
    out = {}
    for col, text in row.items():
        if col.startswith("_") or not col.endswith("_scores") or text in (None, ""):
            continue
        head = col[: -len("_scores")]
        probs = {}
        for item in str(text).split(";"):
            label, _, p = item.rpartition(":")
            probs[label] = float(p)
        top = row.get(head) or ""
        out[head] = (probs, [t for t in str(top).split(";") if t])
    return out


def _num(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return None if v in (None, "") else float(v)


def _compare(a: float, op: str, b: float) -> bool:
    return {
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
        "=": abs(a - b) < 1e-9,
        "!=": abs(a - b) >= 1e-9,
    }[op]


class Filter:
    """A compiled ``--where`` expression, checked against the heads and labels of the rows.

    Parameters
    ----------
    text : str
        The expression (see the module docstring).
    labels : dict[str, list[str]]
        Head -> its labels (from the rows or the model card); fields and labels are checked against it.
    """

    def __init__(self, text: str, labels: dict[str, Sequence[str]]):
        self.text = text
        self.labels = {h: list(v) for h, v in labels.items()}
        self.tree = parse_filter(text)
        self._check(self.tree)

    # Resolution of a field to (kind, head, label).
    def resolve(self, c: Cond) -> tuple[str, str | None, str | None]:
        name = c.field
        low = name.lower()
        if low in ("path", "duration"):
            return low, None, None
        head, _, label = name.partition(".")
        head = self._head(head, c)
        if label:
            match = [lab for lab in self.labels[head] if lab.lower() == label.lower()]
            if not match:
                raise self._bad_label(c, head, label)
            return "prob", head, match[0]
        return "head", head, None

    def _head(self, name: str, c: Cond) -> str:
        for cand in (name, name.lower(), _ALIASES.get(name.lower(), "")):
            if cand in self.labels:
                return cand
        fields = ", ".join(sorted(self.labels) + ["duration", "path"])
        raise FilterError(f"column {c.col}: unknown field {name!r} (fields: {fields}) in {self.text!r}")

    def _bad_label(self, c: Cond, head: str, label: str) -> FilterError:
        shown = ", ".join(self.labels[head][:12]) + (", ..." if len(self.labels[head]) > 12 else "")
        return FilterError(f"column {c.col}: {head} has no label {label!r} (labels: {shown}) in {self.text!r}")

    def _check(self, node) -> None:
        if isinstance(node, BoolOp):
            for a in node.args:
                self._check(a)
        elif isinstance(node, Not):
            self._check(node.arg)
        else:
            kind, head, _ = self.resolve(node)
            numeric = isinstance(node.value, float)
            if kind == "path" and node.op not in ("=", "!=", "~"):
                raise FilterError(f"column {node.col}: path takes =, != or ~ in {self.text!r}")
            if kind in ("duration", "prob") and (not numeric or node.op == "~"):
                raise FilterError(f"column {node.col}: {node.field} compares with a number in {self.text!r}")
            if kind == "head":
                if numeric and len(self.labels[head]) != 1:
                    raise FilterError(
                        f"column {node.col}: {head} has several labels; compare one of them, "
                        f"e.g. {head}.{self.labels[head][0]}{node.op}{node.value:g}, in {self.text!r}"
                    )
                if not numeric and node.op not in ("=", "!=", "~"):
                    raise FilterError(f"column {node.col}: {head} takes =, != or ~ with a label in {self.text!r}")
                if not numeric and node.op != "~":
                    if not any(lab.lower() == str(node.value).lower() for lab in self.labels[head]):
                        raise self._bad_label(node, head, str(node.value))

    def __call__(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` (status ok) matches."""
        if row.get("status") != "ok":
            return False
        return self._eval(self.tree, row, row_heads(row))

    def _eval(self, node, row, heads) -> bool:
        if isinstance(node, BoolOp):
            parts = (self._eval(a, row, heads) for a in node.args)
            return all(parts) if node.op == "and" else any(parts)
        if isinstance(node, Not):
            return not self._eval(node.arg, row, heads)
        kind, head, label = self.resolve(node)
        if kind == "path":
            path = path_from_row(row)
            if node.op == "~":
                return fnmatch.fnmatch(path, str(node.value))
            return (path == str(node.value)) == (node.op == "=")
        if kind == "duration":
            d = _num(row, "duration_s")
            return d is not None and _compare(d, node.op, float(node.value))
        probs, top = heads.get(head, ({}, []))
        if kind == "prob" or isinstance(node.value, float):
            p = probs.get(label if kind == "prob" else self.labels[head][0])
            return p is not None and _compare(p, node.op, float(node.value))
        want = str(node.value).lower()
        if node.op == "~":
            return any(fnmatch.fnmatch(t.lower(), want) for t in top)
        return any(t.lower() == want for t in top) == (node.op == "=")


def labels_of(rows: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Head -> labels, as the rows' probabilities list them (the first row that has each head)."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        for head, (probs, _) in row_heads(row).items():
            out.setdefault(head, list(probs))
    return out


def select(rows: Sequence[dict[str, Any]], where: str | None, limit: int | None = None) -> list[dict[str, Any]]:
    """The ok rows matching ``where`` (all ok rows when None), ordered by path, at most ``limit``."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if where:
        keep = Filter(where, labels_of(ok))
        ok = [r for r in ok if keep(r)]
    ok.sort(key=lambda r: os.fsencode(path_from_row(r)))
    return ok[:limit] if limit else ok


# --------------------------------------------------------------------------- M3U8


@dataclass(frozen=True)
class Entry:
    """One playlist line: the exact file path, its length in seconds (None: unknown) and a title."""

    path: str
    duration_s: float | None = None
    title: str | None = None


def entry_of(row: dict[str, Any]) -> Entry:
    """A playlist entry from a scan row (or an embeddings key record)."""
    return Entry(path_from_row(row), _num(row, "duration_s"))


def _location(path: str, base: Path, relative: bool) -> str:
    """``path`` relative to the playlist's folder when they share more than the root, else absolute."""
    absolute = os.path.abspath(path)
    if relative:
        base_abs = os.path.abspath(base)
        try:
            common = os.path.commonpath([absolute, base_abs])
        except ValueError:  # another drive (Windows)
            return absolute
        if common not in (os.sep, os.path.splitdrive(absolute)[0] + os.sep):
            return os.path.relpath(absolute, base_abs)
    return absolute


def write_m3u8(out: str | os.PathLike[str], entries: Iterable[Entry], *, relative: bool = True) -> int:
    """Write an extended M3U playlist in UTF-8; returns the number of entries.

    Each entry is ``#EXTINF:<whole seconds, -1 when unknown>,<title>`` and the
    path, relative to the playlist's folder when it shares more than the root
    with it (``relative=False``: always absolute). A name that is not valid
    UTF-8 is written as its raw bytes (the only way to name that file) with a
    warning. The file is written to a temporary name and renamed into place.
    """
    out = Path(out)
    base = out.parent if str(out.parent) else Path(".")
    lines = [b"#EXTM3U\n"]
    n = 0
    for e in entries:
        loc = _location(e.path, base, relative)
        title = (e.title or os.path.splitext(os.path.basename(e.path))[0]).replace("\n", " ")
        secs = -1 if e.duration_s is None else int(round(e.duration_s))
        raw = os.fsencode(loc)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            _LOGGER.warning("%s: the name is not UTF-8; written as its raw bytes", loc)
        head = f"#EXTINF:{secs},".encode() + title.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode(
            "utf-8"
        )
        lines += [head + b"\n", raw + b"\n"]
        n += 1
    _atomic_write(out, b"".join(lines))
    return n


def _atomic_write(out: Path, data: bytes) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise PlaylistError(f"{out}: cannot write the playlist ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------- Navidrome smart playlists

NSP_FIELDS = {"genre": "genre", "moods": "mood", "quadrant": "mirtag_quadrant", "music": "mirtag_music"}
"""Head -> the Navidrome field its rule reads. ``genre`` and ``mood`` are Navidrome tags out of the box;
``mirtag_quadrant`` and ``mirtag_music`` are read once declared as custom tags (see README)."""
_NSP_NUM = {"<": "lt", ">": "gt", "<=": "lt", ">=": "gt"}


def nsp_rules(flt: Filter, label_name: Callable[[str, str], Any] | None = None) -> dict[str, Any]:
    """The filter as Navidrome smart-playlist rules (``{"all": [...]}`` / ``{"any": [...]}``).

    Parameters
    ----------
    flt : Filter
    label_name : callable(head, label) -> str or sequence of str, optional
        The name(s) written into files for a label (the label map, e.g.
        ``LabelMap.load().names``); default: the label itself.

    Raises
    ------
    FilterError
        A condition Navidrome cannot express (a path glob, a probability of a
        label, a ``not`` around a group).
    """
    name = label_name or (lambda head, label: label)

    def rule(node, negate=False):
        if isinstance(node, Not):
            return rule(node.arg, not negate)
        if isinstance(node, BoolOp):
            if negate:
                raise FilterError(f"Navidrome rules cannot negate a group: 'not (...)' in {flt.text!r}")
            return {"all" if node.op == "and" else "any": [rule(a) for a in node.args]}
        kind, head, label = flt.resolve(node)
        if kind == "head" and isinstance(node.value, float) and head in NSP_FIELDS:
            return _nsp_number(node, NSP_FIELDS[head], negate, flt)
        if kind == "duration":
            return _nsp_number(node, "duration", negate, flt)
        if kind != "head" or head not in NSP_FIELDS or node.op == "~":
            raise FilterError(
                f"column {node.col}: {node.field}{node.op}... has no Navidrome rule "
                f"(fields: {', '.join(sorted(NSP_FIELDS))}, duration; = and != only) in {flt.text!r}"
            )
        label = next(lab for lab in flt.labels[head] if lab.lower() == str(node.value).lower())
        positive = (node.op == "=") != negate
        names = name(head, label)
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise FilterError(f"column {node.col}: {head} label {label!r} is never written into files (label map)")
        rules = [{"is" if positive else "isNot": {NSP_FIELDS[head]: n}} for n in names]
        # A label written as several names (Pop/Rock -> Pop, Rock): any of them / none of them.
        return rules[0] if len(rules) == 1 else {"any" if positive else "all": rules}

    tree = rule(flt.tree)
    return tree if set(tree) & {"all", "any"} else {"all": [tree]}


def _nsp_number(node: Cond, field: str, negate: bool, flt: Filter) -> dict[str, Any]:
    op = node.op
    if negate:
        op = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "=": "!=", "!=": "="}[op]
    if op in ("<=", ">="):
        raise FilterError(f"column {node.col}: Navidrome has only < and > (use {op[0]}) in {flt.text!r}")
    if op in ("=", "!="):
        return {"is" if op == "=" else "isNot": {field: node.value}}
    return {_NSP_NUM[op]: {field: node.value}}


def write_nsp(
    out: str | os.PathLike[str],
    flt: Filter,
    *,
    name: str | None = None,
    limit: int | None = None,
    label_name: Callable[[str, str], str] | None = None,
) -> dict[str, Any]:
    """Write a Navidrome smart playlist (``.nsp`` JSON); returns the document."""
    out = Path(out)
    doc: dict[str, Any] = {"name": name or out.stem, "comment": f"mirtag: {flt.text}"}
    doc.update(nsp_rules(flt, label_name))
    doc["sort"] = "title"
    if limit:
        doc["limit"] = int(limit)
    _atomic_write(out, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return doc
