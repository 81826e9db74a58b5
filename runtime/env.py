"""Environment for worker processes that import numba and numpy."""

from __future__ import annotations

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
