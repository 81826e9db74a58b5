"""Imported by the scan's forkserver before it forks workers: imports and warms the DSP kernels once.

Every worker then starts with numba's kernels already loaded, instead of each
paying the imports and the cache load (the difference between a first result
in well under two seconds and three).
"""

from .tagger import warmup

warmup()
