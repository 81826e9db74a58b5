"""The scan engine: tag a whole library, used by ``mirtag scan`` and by embedders.

Work is split the way a 2-core machine likes it: decoding and the frontend run
in worker processes that this module starts and watches itself (single-threaded
numba each; ``ProcessPoolExecutor`` breaks as a whole when one worker is killed),
and the windows of many tracks are batched into one onnxruntime session in the
parent (CUDA when it works). Workers send windows as they are computed over a
pipe whose OS buffer is the back-pressure, so memory stays flat whatever the
library or the track length (long tracks stream in chunks).

A worker that dies, even by a signal, costs only its file (an error row); it is
replaced and the scan goes on. A file that takes longer than ``time_limit``
seconds gets its worker killed and an error row.

Python API::

    from mirtag.runtime.scan import scan
    for row in scan(["~/Music"], progress=lambda done, total, row: ..., cancel=event):
        print(row["path"], row["status"], row["heads"]["genre"]["top"])
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing.connection as mpc
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .env import starting_env, worker_context
from .card import load_card, resolve_model
from .errors import AudioError, DecodeError, MirtagError, ParameterError
from .rows import SCHEMA_VERSION, path_fields
from .session import Session
from .shard import Shard, shard_files
from .walk import iter_audio_files

if TYPE_CHECKING:  # the tagger (numba, the kernels) loads only when a scan has work
    from .tagger import TagResult, WindowAccumulator

_LOGGER = logging.getLogger(__name__)

KILL_HOOK_ENV = "MIRTAG_TEST_KILL_WORKER_ON"
"""Test hook: a worker that starts a file whose name contains this text kills itself (SIGKILL)."""
_MAX_BUFFERED_WINDOWS = 256


@dataclass
class ScanSettings:
    """What a scan does; the CLI options map one to one."""

    model: str | os.PathLike[str] | None = None
    device: str | None = "auto"
    workers: int = 2
    batch_size: int = 64
    coverage: str = "full"
    """``full`` (every window) or ``sample:N`` (N windows spread over the track, decoding only those regions)."""
    top_k: int | None = None
    min_confidence: float | None = None
    """None = the card's per-label thresholds."""
    time_limit: float = 600.0
    """Seconds one file may take before its worker is killed."""
    threads: int | None = None
    """onnxruntime intra-op threads in the parent (None: 1, so the workers keep the other cores)."""
    embeddings: bool = False
    """Put each track's mean embedding (np.ndarray float32 [D]) into its row as ``embedding`` (not serialisable:
    pop it before writing the row; see :mod:`mirtag.runtime.embeddings`)."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.batch_size < 1:
            raise ParameterError("workers and batch_size must be >= 1")
        parse_coverage(self.coverage)
        if self.top_k is not None and self.top_k < 1:
            raise ParameterError("top_k must be >= 1")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ParameterError("min_confidence must lie in [0, 1]")
        if not (isinstance(self.time_limit, (int, float)) and math.isfinite(self.time_limit) and self.time_limit > 0):
            raise ParameterError(f"time limit must be a positive number of seconds, got {self.time_limit!r}")


def parse_coverage(text: str) -> int | None:
    """``full`` -> None; ``sample:N`` -> N."""
    if text == "full":
        return None
    if text.startswith("sample:"):
        try:
            n = int(text.split(":", 1)[1])
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise ParameterError(f"coverage must be 'full' or 'sample:N' with N >= 1, got {text!r}")


# --------------------------------------------------------------------------- worker side


def worker_main(conn, frontend_config, coverage: str) -> None:  # pragma: no cover - runs in a child
    """Decode + frontend, file after file; send ('win', id, windows, silent) ... ('done', id, seconds)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # Decoder libraries (mpg123, libvorbis) print notes about bad files on the C
    # stderr; here every failure becomes an error row, so the terminal stays clean.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    from . import audio
    from .frontend import Frontend, cut_windows
    from .tagger import finite_windows

    fe = Frontend(frontend_config)
    rate = frontend_config.sample_rate
    n_sample = parse_coverage(coverage)
    hook = os.environ.get(KILL_HOOK_ENV)
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        file_id, path = task
        if hook and hook in os.path.basename(path):
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            bpath = os.fsencode(path)  # soundfile opens bytes paths whatever the name's encoding
            notes: list[str] = []  # decoder warnings (truncated), sent with "done"
            if n_sample is not None and (regions := _sample_regions(audio, bpath, fe, n_sample)) is not None:
                seconds, regions = regions
                try:
                    # Decode every region before sending any: a header that promises more than the
                    # file holds (a truncated MP3) fails here, and the file is read whole instead.
                    decoded = [
                        (audio.load(bpath, rate, offset=offset, duration=_region_seconds(fe))[0], first)
                        for offset, first in regions
                    ]
                except DecodeError as exc:
                    if "past the end" not in exc.reason:
                        raise
                    decoded = None
                    notes.append("truncated")
                if decoded is not None:
                    for y, first in decoded:
                        w, silent = cut_windows(fe.mel(y, rate), np.array([first]), fe.config)
                        conn.send(("win", file_id, finite_windows(w), silent))
                    conn.send(("done", file_id, seconds, notes))
                    continue
            stream = fe.stream(rate)
            n = 0
            for chunk in audio.stream(bpath, rate, block_seconds=10.0, notes=notes):
                n += chunk.size
                out = stream.push(chunk)
                if len(out):
                    conn.send(("win", file_id, finite_windows(out.windows), out.silent))
            out = stream.finish()
            if len(out):
                conn.send(("win", file_id, finite_windows(out.windows), out.silent))
            conn.send(("done", file_id, n / rate, notes))
        except AudioError as exc:
            conn.send(("error", file_id, exc.reason))
        except MirtagError as exc:
            conn.send(("error", file_id, " ".join(str(exc).split())))
        except Exception as exc:  # noqa: BLE001 - one bad file must never end the scan
            conn.send(("error", file_id, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))


def _context_frames(fe) -> int:
    return fe.config.hpss_kernel[0] // 2 + fe.config.n_fft // fe.config.hop_length + 1


def _region_seconds(fe) -> float:
    c = fe.config
    return (c.window_frames + 2 * _context_frames(fe)) * c.hop_length / c.sample_rate


def _sample_regions(audio, path, fe, n: int):
    """N evenly spread regions (offset s, first window frame) or None when the track is short."""
    c = fe.config
    info = audio.info(path)
    ctx = _context_frames(fe)
    span = _region_seconds(fe)
    if info.duration_s <= n * span:
        return None  # a short track: full coverage costs no more
    win_s = c.window_seconds
    regions = []
    for i in range(n):
        centre = (i + 0.5) * info.duration_s / n
        offset = max(0.0, centre - win_s / 2 - ctx * c.hop_length / c.sample_rate)
        offset = min(offset, info.duration_s - span)
        regions.append((offset, ctx))
    return info.duration_s, regions


# --------------------------------------------------------------------------- parent side


@dataclass
class ScanFile:
    """A file being tagged: its id in the run, path, stat, and the running sums over its windows (the Ray engine
    keeps the same records)."""

    file_id: int
    path: str
    size: int | None
    mtime_ns: int | None
    acc: WindowAccumulator
    seconds: float = 0.0
    done: bool = False
    error: str | None = None
    pending: int = 0  # windows buffered, not yet inferred
    notes: list[str] = dataclasses.field(default_factory=list)  # decoder warnings (truncated)


@dataclass
class _Worker:
    proc: Any
    conn: Any
    current: int | None = None
    started: float = 0.0


class Scanner:
    """A loaded model plus worker processes; ``run(files)`` yields one row per file.

    Create it once (it loads the model and starts the workers), run it, close it
    (or use it as a context manager).
    """

    def __init__(self, settings: ScanSettings | None = None, *, card=None):
        self.settings = settings or ScanSettings()
        s = self.settings
        self.card = card if card is not None else load_scan_card(s)
        self._ctx = worker_context()
        self._workers: list[_Worker] = []
        # The forkserver is spawned first and boots (imports, numba cache loads: about half a
        # second) while this thread loads the session; the first worker's start then waits for
        # the server. (The session once loaded on a second thread: setenv around process starts
        # racing onnxruntime's getenv crashed a CI run.) Workers fork from the server, never
        # from this process, so onnxruntime's threads stay out of them.
        try:
            self._boot_server()
            from . import tagger  # noqa: F401 - the accumulator's import, off the first file's path

            # One intra-op thread: on the CPU the workers keep the other cores; on CUDA it is plenty.
            self.session = Session(self.card, s.device, s.threads or 1, s.batch_size)
            self.provider = self.session.provider
            for _ in range(s.workers):
                self._workers.append(self._start_worker())
        except BaseException:
            self.close()
            raise

    def _boot_server(self) -> None:
        """Spawn the forkserver now (without waiting for it) so that it boots while the session loads."""
        if self._ctx.get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def _start_worker(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        with starting_env(self._ctx):
            proc = self._ctx.Process(
                target=worker_main,
                args=(child, self.card.frontend, self.settings.coverage),
                daemon=True,
                name="mirtag-scan-worker",
            )
            proc.start()
        child.close()
        return _Worker(proc, parent)

    def close(self) -> None:
        """Stop the workers."""
        for w in self._workers:
            with contextlib.suppress(OSError, BrokenPipeError):
                w.conn.send(None)
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join()
            w.conn.close()
        self._workers = []

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop
    def run(self, files: Iterable[str], cancel: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Tag ``files``; yields a row dict per file as it finishes (order of completion)."""
        queue = deque(enumerate(files))
        state: dict[int, ScanFile] = {}
        buffer: list[tuple[int, np.ndarray, np.ndarray]] = []
        ready_rows: deque = deque()
        while queue or any(w.current is not None for w in self._workers) or buffer or ready_rows:
            if cancel is not None and cancel.is_set():
                _LOGGER.info("scan cancelled")
                return
            while ready_rows:
                yield ready_rows.popleft()
            # Hand out work.
            for w in self._workers:
                while w.current is None and queue:
                    file_id, path = queue.popleft()
                    f = self._new_file(file_id, path)
                    if f.error:
                        ready_rows.append(self._row(f, None))
                        continue
                    state[file_id] = f
                    try:
                        w.conn.send((file_id, path))
                    except (BrokenPipeError, OSError):
                        self._replace(w)
                        queue.appendleft((file_id, path))
                        state.pop(file_id)
                        break
                    w.current, w.started = file_id, time.monotonic()
            busy = [w for w in self._workers if w.current is not None]
            n_buf = sum(len(b[1]) for b in buffer)
            timeout = 0.0 if n_buf else 0.05
            if busy and n_buf < _MAX_BUFFERED_WINDOWS:
                waitables = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
                ready = mpc.wait(waitables, timeout=timeout)
                for w in busy:
                    if w.conn in ready:
                        self._drain(w, state, buffer)
                    if w.current is not None and w.proc.sentinel in ready and not w.proc.is_alive():
                        self._drain(w, state, buffer)  # whatever it sent before dying
                        if w.current is not None:
                            f = state[w.current]
                            code = w.proc.exitcode
                            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                            f.error = f"decoder worker crashed ({why})"
                            f.done = True
                        self._replace(w)
                now = time.monotonic()
                for w in busy:
                    if w.current is not None and now - w.started > self.settings.time_limit:
                        f = state[w.current]
                        f.error = f"timed out after {self.settings.time_limit:g} s"
                        f.done = True
                        self._replace(w)
            # Infer: when a batch is full, or nothing else is ready right now.
            n_buf = sum(len(b[1]) for b in buffer)
            if buffer and (
                n_buf >= self.settings.batch_size
                or not busy
                or any(state[i].done for i, _, _ in buffer)
                or n_buf >= _MAX_BUFFERED_WINDOWS
                or self._idle(busy)
            ):
                self._infer(buffer, state)
                buffer = []
            for file_id in [i for i, f in state.items() if f.done and f.pending == 0]:
                f = state.pop(file_id)
                ready_rows.append(self._row(f, None if f.error else f.acc.result(f.seconds)))
        while ready_rows:
            yield ready_rows.popleft()

    @staticmethod
    def _idle(busy: list[_Worker]) -> bool:
        return not any(w.conn.poll() for w in busy)

    def _new_file(self, file_id: int, path: str) -> ScanFile:
        from .tagger import WindowAccumulator

        f = ScanFile(file_id, path, None, None, WindowAccumulator(self.card))
        try:
            st = os.stat(path)
            f.size, f.mtime_ns = st.st_size, st.st_mtime_ns
        except OSError as exc:
            f.error = f"cannot read file: {exc.strerror or exc}"
            f.done = True
        return f

    def _drain(self, w: _Worker, state: dict[int, ScanFile], buffer: list) -> None:
        while True:
            try:
                if not w.conn.poll():
                    return
                msg = w.conn.recv()
            except (EOFError, OSError):
                return
            kind, file_id = msg[0], msg[1]
            f = state.get(file_id)
            if f is None:
                continue
            if kind == "win":
                buffer.append((file_id, msg[2], msg[3]))
                f.pending += len(msg[2])
            elif kind == "done":
                f.seconds, f.done = float(msg[2]), True
                f.notes = list(msg[3]) if len(msg) > 3 else []
                w.current = None
            elif kind == "error":
                f.error, f.done = msg[2], True
                w.current = None

    def _replace(self, w: _Worker) -> None:
        with contextlib.suppress(Exception):
            w.proc.kill()
            w.proc.join(1.0)
            w.conn.close()
        fresh = self._start_worker()
        w.proc, w.conn, w.current = fresh.proc, fresh.conn, None

    def _infer(self, buffer: list, state: dict[int, ScanFile]) -> None:
        x = np.concatenate([b[1] for b in buffer])
        outs = self.session.run(x)
        pos = 0
        for file_id, w, silent in buffer:
            n = len(w)
            f = state.get(file_id)
            if f is not None:
                part = {k: v[pos : pos + n] for k, v in outs.items()}
                if all(np.isfinite(v).all() for v in part.values()):
                    f.acc.add(part, silent)
                elif f.error is None:
                    f.error = "non-finite model output (NaN or Inf)"
                f.pending -= n
            pos += n

    # ------------------------------------------------------------------ rows
    def _row(self, f: ScanFile, result: TagResult | None) -> dict[str, Any]:
        s = self.settings
        path, b64 = path_fields(f.path)
        row: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "path": path,
            "path_b64": b64,
            "status": "error" if result is None else "ok",
            "error": f.error if result is None else None,
            "warning": None,
            "duration_s": None if result is None else round(result.duration_s, 3),
            "n_windows": None if result is None else result.n_windows,
            "size": f.size,
            "mtime_ns": f.mtime_ns,
            "model": self.card.ref,
            "model_sha256": self.card.sha256,
            "coverage": s.coverage,
            "heads": None,
        }
        if result is None:
            return row
        if not result.finite(embedding=s.embeddings):
            row.update(status="error", error="non-finite probabilities (NaN or Inf)", duration_s=None, n_windows=None)
            return row
        warnings = list(result.warnings) + [n for n in f.notes if n not in result.warnings]
        heads = {}
        for head in self.card.heads:
            heads[head.name] = {
                "probs": {lab: round(p, 6) for lab, p in result.heads[head.name].items()},
                "top": result.top(head.name, self.card, s.top_k, s.min_confidence),
                "vote": result.votes[head.name],
            }
        if "music" in result.heads and "silent" not in warnings:
            p = result.heads["music"].get("music")
            if p is not None and p < self.card.head("music").threshold("music"):
                warnings.append("not music")
        row["heads"] = heads
        row["warning"] = "; ".join(warnings) or None
        if s.embeddings and result.embedding is not None:
            row["embedding"] = result.embedding
        return row


@dataclass
class ScanStats:
    """What a scan did, filled in as it runs (see ``on_start`` of :func:`scan`).

    Attributes
    ----------
    model : str
        ``name@version`` of the classifier.
    provider : str or None
        The onnxruntime execution provider (None when there was nothing to scan).
    total : int
        Files to scan in this run.
    skipped : int
        Files left out because the output already holds a current row for them.
    kept_errors : int
        Error rows of earlier runs kept in the output (only with ``retry_errors=False``).
    ok, error : int
        Rows produced so far, by status.
    audio_s : float
        Seconds of audio tagged so far.
    """

    model: str
    provider: str | None = None
    total: int = 0
    skipped: int = 0
    kept_errors: int = 0
    ok: int = 0
    error: int = 0
    audio_s: float = 0.0

    @property
    def output_errors(self) -> int:
        """Error rows in the whole output: this run's plus those kept from earlier runs."""
        return self.error + self.kept_errors


def output_settings(settings: ScanSettings) -> dict[str, Any]:
    """The settings that change what a row says, stored beside an output and checked on resume."""
    return {"top_k": settings.top_k, "min_confidence": settings.min_confidence}


def scan(
    paths: Iterable[str | os.PathLike[str]],
    settings: ScanSettings | None = None,
    *,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    follow_symlinks: bool = False,
    skip: Callable[[str], bool] | None = None,
    progress: Callable[[int, int, dict[str, Any] | None], None] | None = None,
    cancel: threading.Event | None = None,
    shard: Shard | None = None,
    out: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    resume: bool = True,
    retry_errors: bool = True,
    on_start: Callable[[ScanStats], None] | None = None,
    embeddings: str | os.PathLike[str] | None = None,
    engine: Callable[[ScanSettings, Any], Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Tag every audio file under ``paths``; yields one row dict per file as it finishes.

    Parameters
    ----------
    paths : iterable of path-like
        Folders and files.
    settings : ScanSettings
        Model, device, workers, coverage, output filters.
    include, exclude : tuple of str
        Glob patterns (see :func:`mirtag.runtime.walk.iter_audio_files`).
    follow_symlinks : bool
    skip : callable(path) -> bool, optional
        More files to leave out; counted as skipped.
    progress : callable(done, total, row), optional
        Called once with ``(0, total, None)`` when the walk is done, then after each file.
    cancel : threading.Event, optional
        Set it to stop early (workers are stopped; rows already yielded stand).
    shard : Shard, optional
        Only the files of this shard (see :mod:`mirtag.runtime.shard`).
    out : path-like, optional
        An output file (``.csv``, ``.jsonl``, ``.json``, or ``-`` for stdout) that
        each row is appended to before it is yielded. The output is locked for
        the scan, and files it already holds a current row for are skipped
        (resume), exactly as ``mirtag scan --out`` does; see
        :func:`mirtag.runtime.output.open_output`.
    fmt : str, optional
        The format of ``out`` (default: from its extension).
    resume : bool
        False: rescan everything, replacing ``out`` (``--force``).
    retry_errors : bool
        False: keep the error rows of earlier runs instead of retrying their files.
    on_start : callable(ScanStats), optional
        Called once before the first file with the scan's statistics object, which
        is then updated as rows arrive (the CLI prints its summary from it).
    embeddings : path-like or ``"auto"``, optional
        Keep each analysed track's embedding in this file (``auto``: beside
        ``out``, see :func:`mirtag.runtime.embeddings.sidecar_for`), resumed with
        the rows: a kept row whose vector is missing is analysed again.
    engine : callable(settings, card) -> scanner, optional
        Makes the object that tags the files (default: a local :class:`Scanner`);
        anything with ``card``, ``provider``, ``run(files, cancel)`` and ``close()``,
        such as :class:`mirtag.runtime.rayscan.RayScanner`.

    Yields
    ------
    dict
        A schema-version-1 row (see README): path, status, error, warning, duration,
        windows, file identity, model, coverage and per-head probabilities / top / vote.

    Raises
    ------
    OutputLockedError, OutputConflictError, OutputError
        ``out`` is in use by another scan, is not a mirtag output or holds rows
        made with other settings, or cannot be written.
    """
    from .interrupts import deferred_signals
    from .output import open_output
    from .rows import format_of, row_key

    paths = list(paths)
    settings = settings or ScanSettings()
    if embeddings is not None and not settings.embeddings:
        settings = dataclasses.replace(settings, embeddings=True)
    card = load_scan_card(settings)
    emb = None

    def open_embeddings(kept_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal emb
        from . import embeddings as emb_mod

        if embeddings == "auto" and (out is None or os.fspath(out) == "-"):
            raise ParameterError("embeddings='auto' names the file after out; give a file name")
        emb_file = emb_mod.sidecar_for(out) if embeddings == "auto" else embeddings
        emb, have = emb_mod.open_for_scan(emb_file, emb_mod.embedding_dim(card), emb_mod.card_meta(card), kept_rows)
        # A kept track without its vector is analysed again (error rows have none to want).
        return [r for r in kept_rows if r.get("status") != "ok" or row_key(r) in have]

    output = None
    complete = False
    try:
        if out is not None:
            fmt = format_of(os.fspath(out), fmt)
            # Signals wait until ``output`` holds the locked file, so the finally below always closes it.
            with deferred_signals():
                output = open_output(
                    out,
                    fmt,
                    heads=[h.name for h in card.heads],
                    model_sha256=card.sha256,
                    coverage=settings.coverage,
                    settings=output_settings(settings),
                    resume=resume,
                    retry_errors=retry_errors,
                    select=open_embeddings if embeddings is not None else None,
                )
        elif embeddings is not None:
            open_embeddings([])
        kept = output.kept if output is not None else {}
        files = list(iter_audio_files(paths, include=include, exclude=exclude, follow_symlinks=follow_symlinks))
        files = shard_files(files, paths, shard)
        todo = [f for f in files if f not in kept and (skip is None or not skip(f))]
        stats = ScanStats(
            card.ref,
            total=len(todo),
            skipped=len(files) - len(todo),
            kept_errors=output.kept_errors if output is not None else 0,
        )
        if not todo:
            if on_start:
                on_start(stats)
            if progress:
                progress(0, 0, None)
            complete = True
            return
        scanner = Scanner(settings, card=card) if engine is None else engine(settings, card)
        with contextlib.closing(scanner):
            stats.provider = scanner.provider
            if on_start:
                on_start(stats)
            if progress:
                progress(0, stats.total, None)
            for i, row in enumerate(scanner.run(todo, cancel), 1):
                vector = row.get("embedding")
                if output is not None:
                    output.write({k: v for k, v in row.items() if k != "embedding"} if vector is not None else row)
                if emb is not None and vector is not None:
                    emb.add(row, vector)
                if row["status"] == "ok":
                    stats.ok += 1
                    stats.audio_s += row["duration_s"] or 0.0
                else:
                    stats.error += 1
                if progress:
                    progress(i, stats.total, row)
                yield row
            complete = cancel is None or not cancel.is_set()
    finally:
        try:
            if output is not None:
                output.close(complete=complete)
        finally:
            if emb is not None:
                emb.close()


def load_scan_card(settings: ScanSettings):
    """The classifier card a scan with ``settings`` uses (the shipped default when ``settings.model`` is None)."""
    card = resolve_model(None) if settings.model is None else load_card(settings.model)
    if card.model_type != "classifier":
        raise MirtagError(f"{card.path}: is a {card.model_type}, not a classifier")
    return card
