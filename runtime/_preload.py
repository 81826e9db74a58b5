"""Imported by the scan's forkserver before it forks workers: imports and warms the DSP kernels once.

Every worker then starts with numba's kernels already loaded, instead of each
paying the imports and the cache load (the difference between a first result
in well under two seconds and three).
"""

import os
import sys

from .env import SINGLE_THREAD_ENV

# Before numpy and numba load (they read these once): one thread per worker. Set here, in the
# server, rather than in the parent's os.environ around the server's start, where the edit
# could race other threads of the parent (onnxruntime's, Ray's) reading the environment.
os.environ.update(SINGLE_THREAD_ENV)

import numpy as np  # noqa: E402

from . import audio  # noqa: E402, F401 - soundfile and soxr, imported once for every worker

# numba's first kernel load imports numba.np.arraymath, which imports scipy.linalg (when
# scipy is installed) only to learn whether np.dot may be used inside kernels: a quarter
# of a second of CPU, on the path to the first result. The frontend's kernels use no BLAS,
# and this process and its workers run nothing else, so scipy is hidden for that load
# (an import of it fails, numba notes "no BLAS") and put back for anything later.
_hidden = "scipy" not in sys.modules
if _hidden:
    sys.modules["scipy"] = None  # type: ignore[assignment] - the documented way to make an import fail
try:
    from .frontend import Frontend

    # Only the kernels a worker runs (the frontend's): each cached kernel costs a load.
    Frontend().analyze(np.random.default_rng(0).standard_normal(22050 * 4).astype(np.float32), 22050)
finally:
    if _hidden and sys.modules.get("scipy", 0) is None:
        del sys.modules["scipy"]

# From here on the server only forks workers, and each worker silences its own stderr. A scan
# killed while the server hands a new worker its start-up data leaves that child reading EOF,
# and multiprocessing prints its traceback to the terminal the scan shared: errors of the
# server after a successful preload reach the scan as a crashed worker instead.
_devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(_devnull, 2)
os.close(_devnull)
