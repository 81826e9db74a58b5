"""The tag-write journal: what a file held before mirtag wrote it, on disk before the write.

A JSON-lines file, appended and fsynced one record at a time, so a record is on
disk before the file it describes is touched. Records (``op``):

- ``begin``: path, size, mtime_ns, md5 of the decoded audio, tag system and,
  for every field about to change, its ``old`` and ``new`` values (None: absent);
- ``done``: the write finished and was verified; the file's new size and mtime;
- ``error``: the write failed (the file is as it was); ``reason``;
- ``undone``: ``mirtag untag`` restored the file (earlier records of that file are spent).

A torn last line (a kill while appending) is ignored when the journal is read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from .errors import MirtagError
from .rows import path_fields, path_from_row

_LOGGER = logging.getLogger(__name__)

JOURNAL_VERSION = 1


class JournalError(MirtagError):
    """The journal cannot be written or read."""


def default_journal(rows_path: str | os.PathLike[str]) -> Path:
    """Where ``mirtag write`` keeps its journal by default: next to the scan output."""
    p = Path(rows_path)
    return p.with_name(p.name + ".tagjournal.jsonl")


class Journal:
    """Append-only, fsynced journal writer (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new:
                fsync_dir(self.path.parent)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the journal ({exc.strerror or exc})") from None

    def record(self, op: str, path: str, **fields: Any) -> None:
        """Append one record and fsync it before returning."""
        shown, b64 = path_fields(path)
        rec = {"v": JOURNAL_VERSION, "op": op, "time": round(time.time(), 3), "path": shown, "path_b64": b64, **fields}
        line = (json.dumps(rec, ensure_ascii=True, allow_nan=False, separators=(",", ":")) + "\n").encode("ascii")
        try:
            # One write of the whole line, then fsync: the record is durable before the file is touched.
            os.write(self._fd, line)
            os.fsync(self._fd)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot write the journal ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_journal(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records, oldest first (a torn last line is left out)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal ({exc.strerror or exc})") from None
    out = []
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == len(lines) - 1:
                _LOGGER.info("%s: ignoring a torn last line", path)
                continue
            raise JournalError(f"{path}: line {i + 1} is not a journal record") from None
        if not isinstance(rec, dict) or "op" not in rec or "path" not in rec:
            raise JournalError(f"{path}: line {i + 1} is not a journal record")
        rec["path"] = path_from_row(rec)
        out.append(rec)
    return out


def pending_by_path(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each file's records since its last ``undone``, oldest first."""
    by: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if rec["op"] == "undone":
            by.pop(rec["path"], None)
        else:
            by.setdefault(rec["path"], []).append(rec)
    return by


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """fsync a folder so a created or renamed entry in it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
