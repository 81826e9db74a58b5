"""Environment for worker processes that import numba and numpy."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

SINGLE_THREAD_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
"""One thread per worker: on a 2-core machine two single-threaded processes beat threads."""


@contextmanager
def child_env(env: Mapping[str, str] = SINGLE_THREAD_ENV) -> Iterator[None]:
    """Set variables in ``os.environ`` while child processes are started, then restore them.

    A spawned or forked child reads ``NUMBA_NUM_THREADS`` and the BLAS thread
    counts when it imports numba and numpy, before any initializer of ours runs;
    only the environment it is started with reaches those imports.
    """
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def worker_context():
    """The multiprocessing context decode workers start from.

    A forkserver whose preload (:mod:`mirtag.runtime._preload`) sets the one-thread
    environment, imports numba and loads the kernels once, so every worker forks warm;
    where there is no forkserver (Windows, some macOS builds), ``spawn``.
    """
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["mirtag.runtime._preload"])
    except ValueError:
        ctx = multiprocessing.get_context("spawn")
    return ctx


def starting_env(ctx) -> contextlib.AbstractContextManager:
    """What to wrap a worker's ``start()`` in: :func:`child_env` for a spawned child (it reads
    the parent's environment at start), nothing for a forkserver's (its preload sets it, and
    editing ``os.environ`` would race the parent's other threads reading it)."""
    return child_env() if ctx.get_start_method() == "spawn" else contextlib.nullcontext()
