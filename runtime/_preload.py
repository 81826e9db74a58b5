"""Imported by the scan's forkserver before it forks workers: imports and warms the DSP kernels once.

Every worker then starts with numba's kernels already loaded, instead of each
paying the imports and the cache load (the difference between a first result
in well under two seconds and three).
"""

import numpy as np

from . import audio  # noqa: F401 - soundfile and soxr, imported once for every worker
from .frontend import Frontend

# Only the kernels a worker runs (the frontend's): each cached kernel costs a load.
Frontend().analyze(np.random.default_rng(0).standard_normal(22050 * 4).astype(np.float32), 22050)
