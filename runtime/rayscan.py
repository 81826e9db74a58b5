"""The Ray engine: the scan as a Ray Data pipeline, for libraries beyond one machine.

``RayScanner`` is a drop-in for :class:`mirtag.runtime.scan.Scanner` (same
``card``, ``provider``, ``run(files)``, ``close()``), so the CLI's output writer,
row key and resume are the local engine's. Only this module imports ray, and
only when a ``RayScanner`` is made (``import mirtag.runtime`` never does).

The pipeline::

    from_items([{id, path bytes}])              one block per file (up to 20,000 blocks)
      -> map_batches(_decode_file)              CPU tasks (1 CPU each): the local engine's worker
                                                process (worker_main) does decode + frontend,
                                                with its time limit; every failure is a row
      -> map_batches(_Infer, ActorPoolStrategy) actors, each holding one onnxruntime session
                                                (CUDA with --gpus-per-actor); windows of many
                                                files batched per call
      -> iter_batches on the driver             per-window outputs summed per file
                                                (tagger.WindowAccumulator), one row per file

Only paths travel in (never file bytes): every node reads the same paths, so the
library must be on storage every node mounts at the same place. Windows travel
from decode tasks to inference actors through the object store (86 kB each);
only probabilities come back to the driver.

Faults: a decoder that crashes or runs over the time limit costs its file (an
error row), as in the local engine. A Ray worker process that dies mid-file is
retried by Ray Data; the driver counts each (file, window) once,
so a retry neither loses nor doubles anything. A file whose task keeps failing
is dropped by Ray Data (``max_errored_blocks=-1``) and gets an error row. A
driver killed outright leaves the rows written so far; re-running resumes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.connection as mpc
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .card import load_card, resolve_model
from .errors import MirtagError, MissingDependencyError, ParameterError
from .scan import Scanner, ScanSettings, ScanFile, worker_main, load_scan_card
from .tagger import WindowAccumulator

_LOGGER = logging.getLogger(__name__)

RAY_KILL_HOOK_ENV = "MIRTAG_TEST_KILL_RAY_WORKER_ON"
"""Test hook: a Ray decode task whose file name contains this text SIGKILLs its Ray worker process
(once per file: a marker file in ``$MIRTAG_TEST_KILL_RAY_MARKERS`` records it)."""
RAY_KILL_MARKERS_ENV = "MIRTAG_TEST_KILL_RAY_MARKERS"
RAY_FAIL_HOOK_ENV = "MIRTAG_TEST_FAIL_RAY_TASK_ON"
"""Test hook: a decode task whose file name contains this text fails as a whole (an exception outside the
per-file guard), as a task that Ray Data gives up on would."""
MAX_BLOCKS = 20_000
"""One file per block (a Ray worker lost costs one file's work) up to this many files; then several per block."""
WINDOWS_PER_YIELD = 64
DECODE_MEMORY = 256 * 2**20
"""Bytes a decode task reserves: its worker process (numba kernels, decoder, one 10-s block) peaks below this."""


@dataclass
class RaySettings:
    """How the Ray engine uses the cluster; the CLI options map one to one."""

    address: str | None = None
    """None: start a local Ray instance (``num_cpus`` = ScanSettings.workers); ``auto`` or ``HOST:PORT``: join a cluster."""
    gpus_per_actor: float = 0.0
    """GPUs per inference actor (0: CPU actors)."""
    actors: int | None = None
    """Inference actors at most (None: one per GPU share, or one per 8 CPUs of the cluster)."""
    cpus_per_actor: float | None = None
    """CPUs reserved per inference actor (None: 1 with GPUs; 0 on CPUs, where inference is ~5 % of the
    work and shares the cores with decoding, as the local engine's parent process does)."""
    object_store_memory: int | None = None
    """Bytes, for a local instance only (None: Ray's default)."""

    def __post_init__(self) -> None:
        if self.gpus_per_actor < 0 or (self.actors is not None and self.actors < 1):
            raise ParameterError("gpus_per_actor must be >= 0 and actors >= 1")


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's own switch (read when ray is imported) for single-machine instances: "0" makes a local instance use
127.0.0.1 and listen on the loopback interface only, instead of every interface."""


def import_ray(local: bool = False):
    """``ray`` and ``ray.data``, or a clear error naming the extra.

    Parameters
    ----------
    local : bool
        A local instance will be started: unless ray is already imported (or the variable is set), make it
        loopback-only (:data:`LOOPBACK_ENV`), since nothing outside this machine needs to reach it.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            'the Ray engine needs Ray Data: pip install "ray[data]>=2.60"  (the ray extra)'
        ) from None
    return ray


# --------------------------------------------------------------------------- decode tasks (Ray workers)


class _DecodeWorker:
    """The local engine's worker process, one per Ray worker process, fed one file at a time."""

    def __init__(self, frontend_config, coverage: str):
        from .env import worker_context

        self._ctx = worker_context()
        self._args = (frontend_config, coverage)
        self._seq = 0  # the id of the file in hand: messages about an earlier file (abandoned mid-way) are skipped
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        from .env import starting_env

        with starting_env(self._ctx):
            self.proc = self._ctx.Process(
                target=worker_main, args=(child, *self._args), daemon=True, name="mirtag-ray-decoder"
            )
            self.proc.start()
        child.close()
        self.conn = parent

    def _restart(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.join(1.0)
            self.conn.close()
        self._start()

    def windows(self, path: str, time_limit: float) -> Iterator[tuple]:
        """Yield ('win', windows, silent) ..., then ('done', seconds) or ('error', reason)."""
        self._seq += 1
        try:
            self.conn.send((self._seq, path))
        except (BrokenPipeError, OSError):
            self._restart()
            self.conn.send((self._seq, path))
        started = time.monotonic()
        while True:
            left = time_limit - (time.monotonic() - started)
            if left <= 0:
                self._restart()
                yield ("error", f"timed out after {time_limit:g} s")
                return
            ready = mpc.wait([self.conn, self.proc.sentinel], timeout=left)
            if self.conn in ready:
                try:
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is not None and msg[1] != self._seq:
                    continue
                if msg is not None:
                    if msg[0] == "win":
                        yield ("win", msg[2], msg[3])
                        continue
                    yield (msg[0], msg[2])
                    return
            if self.proc.sentinel in ready or not self.proc.is_alive():
                self.proc.join(1.0)
                code = self.proc.exitcode
                why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                self._restart()
                yield ("error", f"decoder worker crashed ({why})")
                return


_DECODER: _DecodeWorker | None = None


def _decode_file(
    batch: dict[str, np.ndarray], frontend_config, coverage: str, time_limit: float, window_shape: tuple[int, ...]
) -> Iterator[dict[str, np.ndarray]]:  # pragma: no cover - Ray worker
    """Decode + frontend of the files in ``batch``: rows of windows, then one marker row per file.

    Columns: ``id`` (file), ``k`` (window index; -1 on the marker), ``win`` (the window; zeros on the
    marker), ``silent``, ``n`` (the file's window count, on the marker), ``seconds``, ``error`` ('' = none).
    """
    global _DECODER
    if _DECODER is None:
        _DECODER = _DecodeWorker(frontend_config, coverage)
    hook = os.environ.get(RAY_KILL_HOOK_ENV)
    fail = os.environ.get(RAY_FAIL_HOOK_ENV)
    for file_id, raw in zip(batch["id"], batch["path"], strict=True):
        path = os.fsdecode(bytes(raw))
        if fail and fail in os.path.basename(path):
            raise RuntimeError(f"test hook: this task fails ({path})")
        state = {"k": 0, "seconds": 0.0, "error": ""}
        try:
            yield from _file_rows(int(file_id), path, time_limit, window_shape, hook, state)
        except Exception as exc:  # noqa: BLE001 - one bad file must never fail a block
            state["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        marker = _rows(file_id, -1, np.zeros((1, *window_shape), np.float32), np.zeros(1, bool), window_shape)
        marker["n"][:] = state["k"]
        marker["seconds"][:] = state["seconds"]
        marker["error"] = np.array([state["error"]], dtype=object)
        yield marker


def _file_rows(
    file_id: int, path: str, time_limit: float, window_shape, hook: str | None, state: dict
) -> Iterator[dict[str, np.ndarray]]:  # pragma: no cover - Ray worker
    """The window rows of one file, ``WINDOWS_PER_YIELD`` at a time; ``state`` gets k, seconds, error."""
    wins, sils = [], []
    for msg in _DECODER.windows(path, time_limit):
        if msg[0] == "win":
            wins.append(msg[1])
            sils.append(msg[2])
            if sum(len(w) for w in wins) < WINDOWS_PER_YIELD:
                continue
        elif msg[0] == "done":
            state["seconds"] = float(msg[1])
        else:
            state["error"] = str(msg[1])
        if wins:
            w = np.concatenate(wins)
            yield _rows(file_id, state["k"], w, np.concatenate(sils), window_shape)
            state["k"] += len(w)
            wins, sils = [], []
            if hook and hook in os.path.basename(path):
                _kill_once(path)  # test hook: die with windows of this file already sent


def _kill_once(path: str) -> None:  # pragma: no cover - Ray worker
    markers = os.environ.get(RAY_KILL_MARKERS_ENV)
    if not markers:
        return
    mark = os.path.join(markers, os.path.basename(path) + ".killed")
    if os.path.exists(mark):
        return
    with open(mark, "w") as fh:
        fh.write(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def _rows(file_id, k0: int, w: np.ndarray, silent: np.ndarray, window_shape) -> dict[str, np.ndarray]:
    n = len(w)
    return {
        "id": np.full(n, int(file_id), np.int64),
        "k": (np.arange(n, dtype=np.int64) + k0) if k0 >= 0 else np.full(n, -1, np.int64),
        "win": np.ascontiguousarray(w, dtype=np.float32).reshape(n, *window_shape),
        "silent": np.asarray(silent, bool),
        "n": np.zeros(n, np.int64),
        "seconds": np.zeros(n, np.float64),
        "error": np.array([""] * n, dtype=object),
    }


# --------------------------------------------------------------------------- inference actors


class _Infer:  # pragma: no cover - Ray actor
    """One onnxruntime session per actor; windows in, per-output probabilities out (windows dropped)."""

    def __init__(self, model: str | None, sha256: str, device: str, threads: int, batch_size: int, outputs: list):
        from .session import Session

        card = resolve_model(None) if model is None else load_card(model)
        if card.sha256 != sha256:
            raise MirtagError(
                f"{card.path}: this node's model differs from the driver's (sha256 {card.sha256[:12]} "
                f"vs {sha256[:12]}); every node needs the same model"
            )
        self.session = Session(card, device, threads, batch_size)
        self.widths = {o.name: int(o.shape[1]) for o in card.outputs}
        self.outputs = outputs  # what the driver needs: the heads (and the embedding only when rows keep it)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        real = batch["k"] >= 0
        n = len(real)
        out = {key: batch[key] for key in ("id", "k", "silent", "n", "seconds", "error")}
        outs = self.session.run(batch["win"][real]) if real.any() else {}
        for name in self.outputs:
            full = np.zeros((n, self.widths[name]), np.float32)
            if name in outs:
                full[real] = outs[name]
            out[f"out_{name}"] = full
        return out


# --------------------------------------------------------------------------- driver


@dataclass
class _Pending:
    file: ScanFile
    got: set
    n: int | None = None
    marker: bool = False


class RayScanner:
    """A loaded model and a Ray connection; ``run(files)`` yields one row per file, like ``Scanner``.

    Parameters
    ----------
    settings : ScanSettings
        As for the local engine; ``workers`` is the CPU count of a local Ray instance.
    ray_settings : RaySettings
        Cluster address, GPUs per actor, actor count.
    card : ModelCard, optional
        The classifier, already loaded (default: from ``settings.model``).

    Examples
    --------
    As the engine of :func:`mirtag.runtime.scan.scan` (resume, output and progress as for the local engine):

    >>> from mirtag.runtime.rayscan import RayScanner, RaySettings
    >>> from mirtag.runtime.scan import ScanSettings, scan
    >>> ray_engine = lambda settings, card: RayScanner(settings, RaySettings(address="auto"), card=card)
    >>> rows = scan(["/mnt/music"], ScanSettings(), out="tags.jsonl", engine=ray_engine)  # doctest: +SKIP
    """

    def __init__(self, settings: ScanSettings | None = None, ray_settings: RaySettings | None = None, *, card=None):
        self.settings = settings or ScanSettings()
        self.ray_settings = rs = ray_settings or RaySettings()
        self.card = card if card is not None else load_scan_card(self.settings)
        self._ray = import_ray(local=rs.address is None)
        self._owns_ray = False
        self._connected = False
        self.provider = "Ray (local)" if rs.address is None else f"Ray ({rs.address})"

    def _connect(self) -> None:
        """Start or join Ray (on first use, so a re-run with nothing to do starts nothing)."""
        if self._connected:
            return
        ray, s, rs = self._ray, self.settings, self.ray_settings
        quiet = not _LOGGER.isEnabledFor(logging.INFO)
        if quiet:  # Ray Data logs every execution plan at INFO on stderr
            for name in ("ray", "ray.data"):
                logging.getLogger(name).setLevel(logging.WARNING)
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": not quiet,
            }
            if rs.address is None:
                kwargs.update(num_cpus=s.workers, object_store_memory=rs.object_store_memory)
            else:
                kwargs["address"] = rs.address
            try:
                ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ValueError
                raise MirtagError(
                    f"cannot start or join Ray ({type(exc).__name__}: {' '.join(str(exc).split())})"
                ) from None
            self._owns_ray = True
        self._connected = True
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        if rs.gpus_per_actor > 0:
            if gpus < rs.gpus_per_actor:
                self.close()
                raise MirtagError(f"--gpus-per-actor {rs.gpus_per_actor:g}: the Ray cluster has {gpus:g} GPUs")
            self._actors = rs.actors or max(1, int(gpus // rs.gpus_per_actor))
            self._device = "cuda"
            self._actor_cpus = 1.0 if rs.cpus_per_actor is None else rs.cpus_per_actor
        else:
            if s.device and s.device.startswith("cuda"):
                self.close()
                raise MirtagError(f"--device {s.device} with the Ray engine needs --gpus-per-actor (GPU actors)")
            self._actors = rs.actors or max(1, round(cpus / 8))
            self._device = "cpu"
            self._actor_cpus = 0.0 if rs.cpus_per_actor is None else rs.cpus_per_actor
        where = (
            f"{self._actors} GPU actor(s) x {rs.gpus_per_actor:g} GPU"
            if rs.gpus_per_actor
            else f"{self._actors} CPU actor(s)"
        )
        self.provider = f"Ray ({cpus:g} CPUs, {gpus:g} GPUs; {where})"

    def close(self) -> None:
        """Disconnect from Ray (and stop the local instance this scanner started)."""
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_ray = self._connected = False

    def __enter__(self) -> RayScanner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    _row = Scanner._row  # the local engine's row builder (uses self.card and self.settings)

    def _dataset(self, items: list[dict[str, Any]]):
        ray, s, rs = self._ray, self.settings, self.ray_settings
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller shows progress
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # ...so no note that they are off
        ctx.max_errored_blocks = -1  # a file whose task keeps failing is dropped, then reported here
        fe = self.card.frontend
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), MAX_BLOCKS))
        # One CPU and DECODE_MEMORY per decode task: what a decoder really takes; as these differ from the
        # actors' resources, Ray Data does not fuse the two stages, so the actors only infer. A task whose Ray
        # worker dies is retried by Ray Data (system failures are retried by default).
        ds = ds.map_batches(
            _decode_file,
            batch_size=1,
            num_cpus=1,
            memory=DECODE_MEMORY,
            fn_kwargs={
                "frontend_config": fe,
                "coverage": s.coverage,
                "time_limit": s.time_limit,
                "window_shape": tuple(fe.input_shape),
            },
        )
        model = None if s.model is None else str(self.card.path)
        return ds.map_batches(
            _Infer,
            batch_size=s.batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self._actors),
            num_cpus=self._actor_cpus,
            num_gpus=rs.gpus_per_actor or None,
            fn_constructor_kwargs={
                "model": model,
                "outputs": self._outputs(),
                "sha256": self.card.sha256,
                "device": self._device,
                "threads": s.threads or 1,
                "batch_size": s.batch_size,
            },
        )

    def run(self, files: Iterable[str], cancel: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        """Tag ``files``; yields a row dict per file as it finishes (order of completion)."""
        pending: dict[int, _Pending] = {}
        items = []
        for file_id, path in enumerate(files):
            f = self._new_file(file_id, path)
            f.acc = None  # made when its first window arrives: a million waiting files cost only their stat
            if f.error:
                yield self._row(f, None)
                continue
            pending[file_id] = _Pending(f, set())
            items.append({"id": file_id, "path": os.fsencode(path)})
        if not items:
            return
        self._connect()
        outputs = self._outputs()
        for batch in self._batches(items):
            if cancel is not None and cancel.is_set():
                _LOGGER.info("scan cancelled")
                return
            ids, ks = batch["id"], batch["k"]
            for file_id in np.unique(ids):
                p = pending.get(int(file_id))
                if p is None:
                    continue  # already written (a retried task sent it again)
                idx = np.flatnonzero(ids == file_id)
                fresh = [i for i in idx if ks[i] >= 0 and int(ks[i]) not in p.got]
                if fresh:
                    p.got.update(int(ks[i]) for i in fresh)
                    if p.file.acc is None:
                        p.file.acc = WindowAccumulator(self.card)
                    p.file.acc.add({name: batch[f"out_{name}"][fresh] for name in outputs}, batch["silent"][fresh])
                for i in idx:
                    if ks[i] < 0:
                        p.marker, p.n = True, int(batch["n"][i])
                        p.file.seconds = float(batch["seconds"][i])
                        p.file.error = str(batch["error"][i]) or None
                if p.marker and (p.file.error or len(p.got) >= (p.n or 0)):
                    del pending[int(file_id)]
                    f = p.file
                    if f.acc is None:
                        f.acc = WindowAccumulator(self.card)
                    yield self._row(f, None if f.error else f.acc.result(f.seconds))
        for p in pending.values():  # Ray Data dropped their blocks after the retries
            p.file.error = "lost in the Ray pipeline (its task failed and Ray Data dropped it)"
            yield self._row(p.file, None)

    _new_file = Scanner._new_file

    def _batches(self, items: list[dict[str, Any]]) -> Iterator[dict[str, np.ndarray]]:
        """The pipeline's output; a failure of the pipeline itself (not of a file) is one MirtagError line."""
        try:
            yield from self._dataset(items).iter_batches(batch_size=None, batch_format="numpy")
        except MirtagError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray wraps actor and task failures in its own types
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            raise MirtagError(f"the Ray pipeline failed ({type(exc).__name__}: {first.strip()[:300]})") from None

    def _outputs(self) -> list[str]:
        """Model outputs sent back to the driver: the heads, and the embedding (1 kB a window) only when kept."""
        return [o.name for o in self.card.outputs if o.name != "embedding" or self.settings.embeddings]
