"""Scan results on disk: the row schema (version 1), CSV / JSONL / JSON writers, and resume.

Rows are appended and flushed one by one, so a killed scan loses at most the row
being written; a torn last line is ignored when the file is read back. A ``.json``
output keeps a ``.partial.jsonl`` journal and is renamed into place at the end.
Settings that change what a row says (``top_k``, ``min_confidence``) are kept in
a small sidecar (``<out>.mirtag.json``), so a re-run with other settings is
refused instead of mixing rows.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import MirtagError

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FORMATS = ("csv", "jsonl", "json")
BASE_COLUMNS = [
    "path",
    "path_b64",
    "status",
    "error",
    "warning",
    "duration_s",
    "n_windows",
    "size",
    "mtime_ns",
    "model",
    "model_sha256",
    "coverage",
]


class OutputError(MirtagError):
    """The output file cannot be read or written."""


class OutputConflictError(OutputError):
    """The output is not a mirtag output, or holds rows made with other settings (a usage error)."""


def path_fields(path: str) -> tuple[str, str | None]:
    """``path`` for display/JSON and ``path_b64`` (raw bytes) when the name is not valid UTF-8."""
    raw = os.fsencode(path)
    try:
        raw.decode("utf-8")
        return path, None
    except UnicodeDecodeError:
        return path, base64.b64encode(raw).decode("ascii")


def path_from_row(row: dict[str, Any]) -> str:
    """The exact file path of a row (from ``path_b64`` when present)."""
    if row.get("path_b64"):
        return os.fsdecode(base64.b64decode(row["path_b64"]))
    return row["path"]


def row_key(row: dict[str, Any]) -> tuple:
    """What makes a stored row still valid: (path bytes, size, mtime_ns, model sha256, coverage)."""
    return (
        os.fsencode(path_from_row(row)),
        int(row["size"]) if row.get("size") not in (None, "") else None,
        int(row["mtime_ns"]) if row.get("mtime_ns") not in (None, "") else None,
        row.get("model_sha256") or "",
        row.get("coverage") or "",
    )


def format_of(out: str, fmt: str | None) -> str:
    """The output format from ``--format`` or the file's extension."""
    if fmt:
        if fmt not in ("csv", "jsonl", "json"):
            raise OutputError(f"unknown format {fmt!r} (csv, jsonl or json)")
        return fmt
    if out == "-":
        raise OutputError("--out - needs --format csv or jsonl")
    ext = Path(out).suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise OutputError(f"{out}: the output must end in .csv, .jsonl or .json (or use --format)")
    return ext


# --------------------------------------------------------------------------- encoding rows


def csv_columns(heads: Sequence[str]) -> list[str]:
    cols = list(BASE_COLUMNS)
    for h in heads:
        cols += [h, f"{h}_scores"]
    return cols


def to_csv_record(row: dict[str, Any], heads: Sequence[str]) -> list[str]:
    rec = []
    for col in BASE_COLUMNS:
        v = row.get(col)
        if col == "path":
            # CSV is text: a name that is not UTF-8 is shown escaped; path_b64 has its bytes.
            v = v.encode("utf-8", "backslashreplace").decode("utf-8")
        rec.append("" if v is None else str(v))
    for h in heads:
        info = (row.get("heads") or {}).get(h)
        if info is None:
            rec += ["", ""]
            continue
        probs = info["probs"]
        ranked = sorted(probs, key=lambda lab: -probs[lab])
        rec.append(";".join(info["top"]))
        rec.append(";".join(f"{lab}:{probs[lab]:.4f}" for lab in ranked))
    return rec


def from_csv_record(rec: dict[str, str]) -> dict[str, Any]:
    """Enough of a row, read back from CSV, for resume (keys and the row text)."""
    return {k: (v if v != "" else None) for k, v in rec.items()}


def to_json_line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------- reading back


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        torn = i == len(lines) - 1  # no newline after it: the writer was killed mid-line
        try:
            rows.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            if torn:
                _LOGGER.info("%s: ignoring a torn last line", path)
                continue
            raise OutputError(f"{path}: line {i + 1} is not a JSON object; use --force or a new --out") from None
    return rows


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as fh:
        data = fh.read()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]  # drop a torn last record
    text = data.decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    rows = []
    for rec in reader:
        if len(rec) != len(header):
            continue
        row = from_csv_record(dict(zip(header, rec)))
        row["_csv"] = rec  # rewritten verbatim when the row is kept
        row["_header"] = header
        rows.append(row)
    return rows


def read_rows(out: str | os.PathLike[str], fmt: str) -> list[dict[str, Any]]:
    """Rows already in an output (its journal for ``.json``); [] when there is none."""
    out = Path(out)
    if fmt == "json":
        journal = journal_path(out)
        if journal.is_file():
            return _read_jsonl(journal)
        if out.is_file():
            try:
                data = json.loads(out.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise OutputError(f"{out}: not a mirtag JSON output; use --force or a new --out") from None
            if not isinstance(data, list):
                raise OutputError(f"{out}: not a mirtag JSON output; use --force or a new --out")
            return data
        return []
    if not out.is_file():
        return []
    return _read_jsonl(out) if fmt == "jsonl" else _read_csv(out)


def journal_path(out: Path) -> Path:
    return (
        out.with_name(out.name[: -len(".json")] + ".partial.jsonl")
        if out.name.endswith(".json")
        else out.with_name(out.name + ".partial.jsonl")
    )


def settings_path(out: Path) -> Path:
    return out.with_name(out.name + ".mirtag.json")


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to mix rows made with other top-k / min-confidence settings (exit 2 at the CLI)."""
    side = settings_path(out)
    if not side.is_file():
        return
    try:
        stored = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return
    diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if diff:
        what = ", ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise OutputConflictError(f"{out} holds rows made with other settings ({what}): use --force or a new --out")


def _foreign(path: Path, why: str) -> OutputConflictError:
    return OutputConflictError(f"{path}: not a mirtag output ({why}); it was left untouched: choose another --out")


def _check_jsonl_own(path: Path) -> None:
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == len(lines) - 1:
                continue  # a torn last line: a killed writer
            raise _foreign(path, f"line {i + 1} is not JSON") from None
        if not (isinstance(obj, dict) and "schema_version" in obj and "path" in obj):
            raise _foreign(path, f"line {i + 1} is not a mirtag row")


def check_own(out: Path, fmt: str) -> None:
    """Raise :class:`OutputConflictError` unless ``out`` is absent, empty or written by mirtag.

    mirtag appends to, resumes or rewrites only its own files: JSONL/JSON rows with
    ``schema_version`` and ``path``, or a CSV whose header starts with mirtag's columns.
    """
    try:
        if fmt == "json" and journal_path(out).is_file() and journal_path(out).stat().st_size:
            _check_jsonl_own(journal_path(out))
        if not out.exists():
            return
        if not out.is_file():
            raise _foreign(out, "not a regular file")
        if out.stat().st_size == 0:
            return
        if fmt == "jsonl":
            _check_jsonl_own(out)
        elif fmt == "csv":
            with open(out, newline="", encoding="utf-8", errors="replace") as fh:
                header = next(csv.reader(fh), [])
            if header[: len(BASE_COLUMNS)] != BASE_COLUMNS:
                raise _foreign(out, "its CSV header is not mirtag's")
        else:
            try:
                data = json.loads(out.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise _foreign(out, "not JSON") from None
            if not isinstance(data, list) or not all(
                isinstance(r, dict) and "schema_version" in r and "path" in r for r in data
            ):
                raise _foreign(out, "not a JSON list of mirtag rows")
    except OSError as exc:
        raise OutputError(f"{out}: cannot read the output ({exc.strerror or exc})") from None


def clean_temp_files(out: Path, fmt: str) -> None:
    """Remove temporary files an interrupted writer left beside ``out`` (call it holding the lock)."""
    targets = [out] + ([journal_path(out)] if fmt == "json" else [])
    for target in targets:
        prefix = f".{target.name}."
        try:
            names = [n for n in os.listdir(target.parent or ".") if n.startswith(prefix) and n.endswith(".tmp")]
        except OSError:
            names = []
        for name in names:
            tmp = target.with_name(name)
            try:
                tmp.unlink()
                _LOGGER.info("%s: removed a temporary file left by an interrupted scan", tmp)
            except FileNotFoundError:
                pass
            except OSError as exc:
                _LOGGER.warning("%s: cannot remove a leftover temporary file (%s)", tmp, exc.strerror or exc)


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


# --------------------------------------------------------------------------- writing


class RowWriter:
    """Append rows to an output, flushing each; ``close()`` finishes a ``.json``.

    Parameters
    ----------
    out : str
        File path, or ``-`` for stdout.
    fmt : str
        ``csv``, ``jsonl`` or ``json``.
    heads : sequence of str
        The model's heads (CSV columns).
    keep : list of dict
        Rows from an earlier run that stay; the file is rewritten with them first
        (atomically), which also drops stale and duplicate rows.
    settings : dict
        Written to the sidecar, checked by the next run.
    """

    def __init__(
        self,
        out: str,
        fmt: str,
        heads: Sequence[str],
        keep: Iterable[dict[str, Any]] = (),
        settings: dict[str, Any] | None = None,
    ):
        self.out, self.fmt, self.heads = out, fmt, list(heads)
        self._stdout = out == "-"
        keep = list(keep)
        try:
            if self._stdout:
                self._fh: TextIO = sys.stdout
                if fmt == "csv":
                    csv.writer(self._fh).writerow(csv_columns(self.heads))
            else:
                target = Path(out)
                target.parent.mkdir(parents=True, exist_ok=True)
                if settings is not None:
                    _atomic_write(
                        settings_path(target),
                        lambda fh: fh.write(json.dumps({"schema_version": SCHEMA_VERSION, **settings}) + "\n"),
                    )
                self._path = journal_path(target) if fmt == "json" else target
                self._rewrite(keep)
                self._fh = open(self._path, "a", encoding="utf-8", newline="")
        except OSError as exc:
            raise OutputError(f"{out}: cannot write the output ({exc.strerror or exc})") from None
        self._csv = csv.writer(self._fh) if fmt == "csv" else None

    def _rewrite(self, keep: list[dict[str, Any]]) -> None:
        def body(fh):
            if self.fmt == "csv":
                w = csv.writer(fh)
                w.writerow(csv_columns(self.heads))
                for row in keep:
                    same = row.get("_header") == csv_columns(self.heads)
                    w.writerow(row["_csv"] if "_csv" in row and same else to_csv_record(row, self.heads))
            else:
                for row in keep:
                    fh.write(to_json_line(row) + "\n")

        _atomic_write(self._path, body)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush it to the OS.

        Raises
        ------
        OutputError
            The row could not be written (disk full, I/O error); the rows before it stand.
        """
        try:
            if self._csv is not None:
                self._csv.writerow(to_csv_record(row, self.heads))
            else:
                self._fh.write(to_json_line(row) + "\n")
            self._fh.flush()
        except OSError as exc:
            self._failed = True
            raise OutputError(
                f"{self.out}: cannot write the output ({exc.strerror or exc}); the rows written so "
                "far are kept: run the same command again to resume"
            ) from None

    def close(self, complete: bool = True) -> None:
        """Close; for ``.json`` and a completed scan, turn the journal into the final file."""
        if self._stdout:
            with contextlib.suppress(OSError, ValueError):
                self._fh.flush()
            return
        try:
            self._fh.close()
        except OSError as exc:
            # What did not reach the disk is a torn line for the next run to drop.
            raise OutputError(
                f"{self.out}: cannot write the output ({exc.strerror or exc}); the rows written so "
                "far are kept: run the same command again to resume"
            ) from None
        if self.fmt == "json" and complete and not getattr(self, "_failed", False):
            rows = _read_jsonl(self._path)

            def body(fh):
                json.dump(rows, fh, ensure_ascii=True, indent=1)
                fh.write("\n")

            try:
                _atomic_write(Path(self.out), body)
            except OSError as exc:
                raise OutputError(
                    f"{self.out}: cannot write the output ({exc.strerror or exc}); its rows are kept in "
                    f"{self._path.name}: run the same command again to finish"
                ) from None
            self._path.unlink()


def _atomic_write(path: Path, body) -> None:
    """Write a file through a temporary beside it (this process's own name), fsync, rename into place."""
    tmp = _temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            body(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
