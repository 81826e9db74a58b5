"""Join the outputs of several scans (shards, machines, re-runs) into one.

Rows are deduplicated by file: rows with the same row key (path bytes, size,
mtime, model, coverage) are the same result, and an ``ok`` row wins over an
``error`` one (a shard re-run that got further); when one path has rows with
different keys (the file changed between two scans), the newest file version
(``mtime_ns``) wins. Parts made with another model, other settings
(``top_k``, ``min_confidence``, coverage) or another row schema are refused:
their rows would not mean the same thing.

Python API::

    from mirtag.runtime.merge import merge_outputs
    report = merge_outputs("all.csv", ["part1.csv", "part2.csv"])
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import rows as rows_mod
from .output import OutputLock
from .errors import ParameterError
from .rows import BASE_COLUMNS, SCHEMA_VERSION, OutputError

_LOGGER = logging.getLogger(__name__)


@dataclass
class MergeReport:
    """What a merge did."""

    parts: int
    rows_read: int
    rows_written: int
    duplicates: int
    """Rows dropped because another row had the same key."""
    replaced: int
    """Rows dropped because the same path had a row for a newer file version."""


@dataclass
class _Part:
    path: str
    fmt: str
    rows: list[dict[str, Any]]
    sidecar: dict[str, Any] | None
    header: list[str] | None


def _read_part(part: str) -> _Part:
    fmt = rows_mod.format_of(part, None)
    p = Path(part)
    if not (p.is_file() or (fmt == "json" and rows_mod.journal_path(p).is_file())):
        raise OutputError(f"{part}: no such output")
    rows = rows_mod.read_rows(p, fmt)
    sidecar = None
    side = rows_mod.settings_path(p)
    if side.is_file():
        try:
            sidecar = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise OutputError(f"{side}: unreadable settings sidecar") from None
    header = None
    if fmt == "csv":
        with open(p, encoding="utf-8", errors="replace", newline="") as fh:
            first = fh.readline()
        header = next(csv.reader([first]), None)
        if not header or header[: len(BASE_COLUMNS)] != BASE_COLUMNS:
            raise OutputError(f"{part}: not a mirtag CSV output (unexpected header)")
    return _Part(part, fmt, rows, sidecar, header)


def _one_value(what: str, pairs: list[tuple[str, Any]]) -> Any:
    """The single value of ``what`` over ``(part, value)`` pairs, or an error naming two parts that differ."""
    first: dict[str, tuple[str, Any]] = {}
    for part, value in pairs:
        first.setdefault(json.dumps(value, sort_keys=True), (part, value))
    if len(first) > 1:
        (a, va), (b, vb) = list(first.values())[:2]
        raise OutputError(f"cannot merge: {b} was made with {what} {vb!r}, {a} with {va!r}")
    return pairs[0][1] if pairs else None


def _check(parts: list[_Part]) -> dict[str, Any] | None:
    """Refuse parts that disagree; the shared settings (sidecar minus schema_version) or None."""
    for part in parts:
        versions = {r["schema_version"] for r in part.rows if r.get("schema_version") not in (None, "")}
        if part.sidecar is not None:
            versions.add(part.sidecar.get("schema_version"))
        for v in versions:
            if str(v) != str(SCHEMA_VERSION):
                raise OutputError(
                    f"cannot merge: {part.path} has schema_version {v}, this mirtag writes {SCHEMA_VERSION}"
                )
    _one_value("model sha256", [(p.path, r["model_sha256"]) for p in parts for r in p.rows if r.get("model_sha256")])
    _one_value("coverage", [(p.path, r["coverage"]) for p in parts for r in p.rows if r.get("coverage")])
    sides = [(p.path, {k: v for k, v in p.sidecar.items() if k != "schema_version"}) for p in parts if p.sidecar]
    settings = _one_value("settings", sides)
    if any(p.fmt == "csv" for p in parts):
        if not all(p.fmt == "csv" for p in parts):
            raise OutputError("cannot merge CSV with JSON parts: CSV rows keep only top labels and 4-decimal scores")
        _one_value("CSV columns", [(p.path, p.header) for p in parts])
    return settings


def _heads(parts: list[_Part]) -> list[str]:
    for part in parts:
        if part.header is not None:
            return part.header[len(BASE_COLUMNS) :: 2]
        for row in part.rows:
            if row.get("heads"):
                return list(row["heads"])
    return []


def _mtime(row: dict[str, Any]) -> int:
    v = row.get("mtime_ns")
    return int(v) if v not in (None, "") else -1


def parse_path_map(items: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """``["FROM=TO", ...]`` -> ``[(FROM bytes, TO bytes), ...]``, with a clear error for anything else."""
    mapping = []
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise ParameterError(f"--path-map must be FROM=TO (two path prefixes), got {item!r}")
        mapping.append((os.fsencode(old).rstrip(b"/") or b"/", os.fsencode(new).rstrip(b"/") or b"/"))
    return mapping


def remap_row(row: dict[str, Any], mapping: Sequence[tuple[bytes, bytes]]) -> dict[str, Any]:
    """``row`` with its path's first matching prefix replaced (whole path components only); else ``row``."""
    raw = os.fsencode(rows_mod.path_from_row(row))
    for old, new in mapping:
        if raw == old or raw.startswith(old.rstrip(b"/") + b"/"):
            raw = new.rstrip(b"/") + raw[len(old.rstrip(b"/")) :]
            break
    else:
        return row
    display, b64 = rows_mod.path_fields(os.fsdecode(raw))
    row = dict(row, path=display, path_b64=b64)
    if "_csv" in row:  # a CSV record is rewritten verbatim: patch its two path columns
        rec = list(row["_csv"])
        rec[0], rec[1] = display.encode("utf-8", "backslashreplace").decode("utf-8"), b64 or ""
        row["_csv"] = rec
    return row


def merge_outputs(
    out: str, parts: Sequence[str], fmt: str | None = None, force: bool = False, path_map: Sequence[str] = ()
) -> MergeReport:
    """Join scan outputs ``parts`` into ``out`` (one row per file).

    Parameters
    ----------
    out : str
        The merged output (.csv, .jsonl or .json, or ``-`` with ``fmt``). It may be
        one of ``parts``; any other existing file is replaced only with ``force``.
    parts : sequence of str
        Outputs of ``mirtag scan`` (their format from the extension).
    fmt : str, optional
        Output format when ``out`` has no telling extension.
    force : bool
        Replace an existing ``out`` that is not one of the parts.
    path_map : sequence of str
        ``FROM=TO`` path prefixes: rows of a machine that mounts the library
        elsewhere get this machine's paths (first match wins), so the merged
        output resumes here.

    Raises
    ------
    OutputError
        A part is missing, unreadable or still being written by a scan, or parts
        differ in model, settings, coverage or schema version, or CSV would have
        to become JSON, or ``out`` is a file mirtag did not write.
    """
    if not parts:
        raise OutputError("nothing to merge: give at least one part")
    mapping = parse_path_map(path_map)
    out_fmt = rows_mod.format_of(out, fmt)
    if out == "-" and out_fmt == "json":
        raise OutputError("--out - supports csv and jsonl")
    same = {os.path.realpath(p) for p in parts}
    if out != "-":
        if not force and Path(out).exists() and os.path.realpath(out) not in same:
            raise OutputError(f"{out} exists and is not one of the parts: use --force to replace it")
        rows_mod.check_own(Path(out), out_fmt)  # never replaces a file mirtag did not write, even with force
    # Every file involved is locked like a scan's output: a shard still being scanned is not merged half-done,
    # and no scan starts writing into OUT while it is replaced.
    with contextlib.ExitStack() as locks:
        for name in {os.path.realpath(p): p for p in [*parts, *([out] if out != "-" else [])]}.values():
            locks.enter_context(OutputLock(name))
        return _merge(out, out_fmt, parts, mapping)


def _merge(out: str, out_fmt: str, parts: Sequence[str], mapping: list[tuple[bytes, bytes]]) -> MergeReport:
    loaded = [_read_part(p) for p in parts]
    settings = _check(loaded)
    if any(p.fmt == "csv" for p in loaded) and out_fmt != "csv":
        raise OutputError(f"{out}: CSV parts can only be merged into a CSV output")
    chosen: dict[bytes, dict[str, Any]] = {}
    duplicates = replaced = read = 0
    for part in loaded:
        for row in part.rows:
            read += 1
            row = remap_row(row, mapping) if mapping else row
            path = os.fsencode(rows_mod.path_from_row(row))
            old = chosen.get(path)
            if old is None:
                chosen[path] = row
            elif rows_mod.row_key(old) == rows_mod.row_key(row):
                duplicates += 1
                if old.get("status") != "ok" and row.get("status") == "ok":
                    chosen[path] = row
            else:
                replaced += 1
                if _mtime(row) > _mtime(old):
                    chosen[path] = row
    keep = list(chosen.values())
    writer = rows_mod.RowWriter(out, out_fmt, _heads(loaded), keep, None if out == "-" else settings)
    if out == "-":
        for row in keep:
            writer.write(row)
    writer.close(complete=True)
    if out != "-":  # the parts' `scan --embeddings auto` sidecars follow the rows
        from .embeddings import merge_sidecars

        merge_sidecars(out, parts, keep)
    if replaced:
        _LOGGER.warning("%d rows were for an older version of a file that another part scanned again", replaced)
    return MergeReport(len(loaded), read, len(keep), duplicates, replaced)
