"""Shards of a library: split one scan over several machines with no framework.

``mirtag scan LIB --shard I/N`` scans only the files of shard I (1 <= I <= N).
A file's shard is a stable hash of its path *relative to the scan root it was
found under*, with ``/`` as separator, so two machines that mount the same NAS at
different places (or one on Windows) agree on the split; and a file added later
does not move any other file to another shard. Together the N shards hold every
file once (``mirtag merge`` joins their outputs).

Python API::

    from mirtag.runtime.shard import Shard, shard_files
    mine = shard_files(files, roots=["/mnt/music"], shard=Shard.parse("2/3"))
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import ParameterError


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ParameterError(f"shard must be I/N with 1 <= I <= N, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/3"`` -> ``Shard(2, 3)``; a clear error for anything else."""
        parts = text.strip().split("/")
        try:
            index, count = (int(p) for p in parts)
        except ValueError:
            raise ParameterError(f"shard must be I/N (for example 1/3), got {text!r}") from None
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def relative_key(path: str, roots: Sequence[str | os.PathLike[str]]) -> bytes:
    """The bytes a file's shard is hashed from: its path relative to the first root that holds it.

    Parameters
    ----------
    path : str
        An absolute path as :func:`mirtag.runtime.walk.iter_audio_files` yields it.
    roots : sequence of path-like
        The folders and files the scan was given, in order (the first root
        containing a file is the one the walk found it under).

    Returns
    -------
    bytes
        The relative path with ``/`` separators; for a file given as a root
        itself, its name; for a path under no root, the whole path.
    """
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        if path == root:
            rel = os.path.basename(path)
            break
        prefix = root.rstrip(os.sep) + os.sep
        if path.startswith(prefix):
            rel = path[len(prefix) :]
            break
    else:
        rel = path
    return os.fsencode(rel).replace(os.fsencode(os.sep), b"/")


def shard_of(key: bytes, count: int) -> int:
    """The 1-based shard of a relative path (blake2b, so every Python process and machine agrees)."""
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def shard_files(files: Iterable[str], roots: Sequence[str | os.PathLike[str]], shard: Shard | None) -> list[str]:
    """The files of ``shard`` (all of them when ``shard`` is None), order kept."""
    if shard is None:
        return list(files)
    return [f for f in files if shard_of(relative_key(f, roots), shard.count) == shard.index]
