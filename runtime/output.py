"""A scan's output file: locked, recognised, resumed.

:func:`open_output` is the one place that decides what a re-run keeps: the CLI
(``mirtag scan --out``) and :func:`mirtag.runtime.scan.scan` (``out=``) both go
through it, so embedders resume exactly as the command line does.

- **Locked.** An advisory lock on ``<out>.lock`` (``flock``) is held while the
  output is open. The OS drops it when the process dies in any way, so a
  ``kill -9`` never leaves a stale lock; a second scan on the same output fails
  at once, naming the holder's PID.
- **Recognised.** Only a file mirtag wrote (rows with ``schema_version``, or
  mirtag's CSV header) is appended to, resumed or rewritten; anything else is
  refused and left untouched, even with ``force``.
- **Resumed.** A stored row is kept when its file's (path, size, mtime_ns) and
  the model's sha256 and the coverage still match; error rows are retried unless
  ``retry_errors=False``. The file is rewritten (atomically) with the kept rows,
  which also drops stale and duplicate rows and a torn last line.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .interrupts import deferred_signals
from .rows import (
    OutputError,
    RowWriter,
    check_own,
    check_settings,
    clean_temp_files,
    path_from_row,
    read_rows,
    row_key,
)

_LOGGER = logging.getLogger(__name__)

__all__ = ["OutputLock", "OutputLockedError", "ScanOutput", "open_output", "row_is_current"]


class OutputLockedError(OutputError):
    """Another process holds the output's lock."""


class OutputLock:
    """An exclusive advisory lock on ``<out>.lock``, released by the OS on any death.

    Parameters
    ----------
    out : path-like
        The output file; the lock file sits beside it.
    """

    def __init__(self, out: str | os.PathLike[str]):
        self.path = Path(os.fspath(out) + ".lock")
        self._name = os.fspath(self.path)  # a str: os.unlink(Path) would call Path.__fspath__, a Python method
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`OutputLockedError` at once (never waits).

        Ctrl-C and SIGTERM are held back until the lock is either fully taken (and
        known to :meth:`release`) or not taken at all, so an interrupt can never
        leave a lock file behind.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with deferred_signals():
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    _lock_fd(fd)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise OutputLockedError(
                            f"{self._target()} is being written by another mirtag scan "
                            f"({self._holder()}); wait for it to finish or use another --out"
                        ) from None
                    raise
                # The holder before us may have unlinked the file between our open and
                # our lock: then we locked an orphan inode, and must start over.
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            self._fd = fd
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError:
                self.release()
                raise

    def _target(self) -> str:
        return str(self.path)[: -len(".lock")]

    def _holder(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        return f"PID {pid}" if pid.isdigit() else "PID unknown"

    def release(self) -> None:
        """Drop the lock and remove the lock file (unlinked while still held, so no one can race us)."""
        fd = self._fd
        if fd is None:
            return
        # Only C calls from here on: Python checks for signals when a Python function starts, so a
        # Ctrl-C can land on entry to this method but not between the unlink and the close.
        try:
            os.unlink(self._name)
        except OSError:
            pass
        finally:
            self._fd = None
            os.close(fd)

    @classmethod
    def remove_stale(cls, out: str | os.PathLike[str]) -> bool:
        """Remove ``<out>.lock`` when no process holds it (left by an interrupt that landed as
        the lock was being dropped); True when one was removed. Never waits, never takes a held lock."""
        lock = cls(out)
        if not lock.path.exists():
            return False
        try:
            lock.acquire()
        except (OutputLockedError, OSError):  # held, or unreadable: not ours to remove
            return False
        lock.release()
        return True

    def __del__(self) -> None:
        # A lock dropped unreleased (its owner's close() interrupted on entry) is released when
        # it is collected, as a file object closes, so the process does not hold it for ever.
        if getattr(self, "_fd", None) is not None:
            self.release()

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lock_fd(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the first byte
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def row_is_current(row: dict[str, Any], model_sha256: str, coverage: str) -> bool:
    """True when a stored row still describes its file: same (path, size, mtime_ns), model and coverage."""
    path = path_from_row(row)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return row_key(row) == (os.fsencode(path), st.st_size, st.st_mtime_ns, model_sha256, coverage)


class ScanOutput:
    """An open, locked output (see :func:`open_output`).

    Attributes
    ----------
    kept : dict of str to dict
        Rows from earlier runs that stay, by exact path; their files need no scan.
    kept_errors : int
        How many of those are error rows (only with ``retry_errors=False``).
    """

    def __init__(self, writer: RowWriter, lock: OutputLock | None, kept: dict[str, dict[str, Any]]):
        self._writer = writer
        self._lock = lock
        self.kept = kept
        self.kept_errors = sum(1 for r in kept.values() if r.get("status") == "error")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row and flush it to the OS."""
        self._writer.write(row)

    def close(self, complete: bool = True) -> None:
        """Close the file (finishing a ``.json`` when ``complete``) and release the lock."""
        try:
            self._writer.close(complete=complete)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None


def open_output(
    out: str | os.PathLike[str],
    fmt: str,
    *,
    heads: Sequence[str],
    model_sha256: str,
    coverage: str,
    settings: dict[str, Any] | None = None,
    resume: bool = True,
    retry_errors: bool = True,
    select: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
) -> ScanOutput:
    """Lock an output, check it is mirtag's, and keep the rows that are still current.

    Parameters
    ----------
    out : path-like or ``"-"``
        The output file (``.csv``, ``.jsonl`` or ``.json``), or ``-`` for stdout
        (nothing locked, kept or checked).
    fmt : str
        ``csv``, ``jsonl`` or ``json`` (see :func:`mirtag.runtime.rows.format_of`).
    heads : sequence of str
        The model's head names (CSV columns).
    model_sha256, coverage : str
        What the scan will use; rows made with anything else are rescanned.
    settings : dict, optional
        Output settings that change what a row says (``top_k``, ``min_confidence``),
        kept in the ``<out>.mirtag.json`` sidecar; a resume with other values is refused.
    resume : bool
        False (``--force``): keep nothing, rescan everything.
    retry_errors : bool
        True: error rows of earlier runs are dropped, so their files are scanned again
        (a time-out, a crashed worker or a decoder installed since may succeed now).
    select : callable(rows) -> rows, optional
        A last say on the current rows before the file is rewritten with them,
        called holding the lock (a scan keeping embeddings drops the rows that
        have no vector, so their files are analysed again).

    Returns
    -------
    ScanOutput
        Holds the lock until ``close()``.

    Raises
    ------
    OutputLockedError
        Another scan holds the output.
    OutputConflictError
        The file is not a mirtag output, or holds rows made with other settings.
    OutputError
        The output cannot be read or written.
    """
    if os.fspath(out) == "-":
        return ScanOutput(RowWriter("-", fmt, heads), None, {})
    out = os.fspath(out)
    lock = OutputLock(out)
    try:
        lock.acquire()
    except OSError as exc:
        raise OutputError(f"{out}: cannot lock the output ({exc.strerror or exc})") from None
    try:
        check_own(Path(out), fmt)
        if resume and settings is not None:
            check_settings(Path(out), settings)
        clean_temp_files(Path(out), fmt)
        kept: dict[str, dict[str, Any]] = {}
        if resume:
            for row in read_rows(out, fmt):
                if retry_errors and row.get("status") == "error":
                    continue
                if row_is_current(row, model_sha256, coverage):
                    kept[path_from_row(row)] = row  # the last row of a path wins: one row per file
        if select is not None:
            kept = {path_from_row(r): r for r in select(list(kept.values()))}
        writer = RowWriter(out, fmt, heads, kept.values(), settings)
    except BaseException:
        lock.release()
        raise
    return ScanOutput(writer, lock, kept)
