"""The feature cache: the frontend's pre-window mel spectrogram of every (clip, augment).

:class:`FeatureCache` stores ``Frontend.mel`` (windows are cut from it at
training time, at any phase) as float16 ``.npy`` files, computed in worker
processes; :func:`load_windows` concatenates them into training arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirtag.runtime.env import SINGLE_THREAD_ENV, child_env
from mirtag.runtime.card import FrontendConfig
from mirtag.runtime.errors import DecodeError, MirtagError

from .augment import CLEAN, Augment, mix_noise
from .datasets import Clip

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheStats:
    """What one :meth:`FeatureCache.compute` did.

    Attributes
    ----------
    total : int
        Distinct (clip, augment) entries asked for.
    cached : int
        Already present.
    computed : int
        Computed now.
    failed : int
        Could not be computed (missing or undecodable file...).
    failures : tuple of (str, str)
        ``(clip key, reason)`` of each failure.
    """

    total: int
    cached: int
    computed: int
    failed: int
    failures: tuple[tuple[str, str], ...] = ()


def _worker_init() -> None:
    # Also set here, for anything the worker imports later (the frontend itself
    # is imported lazily, inside _compute_entry).
    os.environ.update(SINGLE_THREAD_ENV)


_FRONTENDS: dict[FrontendConfig, Any] = {}


def _compute_entry(task: tuple) -> tuple[bool, str]:
    """Worker: decode, mix, analyse, save atomically. Returns (ok, reason)."""
    audio_path, noise_path, snr_db, offset, config, out_path = task
    try:
        from mirtag.runtime import audio
        from mirtag.runtime.frontend import Frontend

        fe = _FRONTENDS.get(config)
        if fe is None:
            fe = _FRONTENDS[config] = Frontend(config, parallel=False)
        y, sr = audio.load(audio_path, sr=config.sample_rate)
        if noise_path is not None:
            noise, _ = audio.load(noise_path, sr=config.sample_rate)
            y = mix_noise(y, noise, snr_db, offset)
        mel = fe.mel(y, sr)
        # float16 halves the cache; mel amplitudes sit far inside its range, but
        # keep float32 for the (pathological) entry that would overflow.
        windows = mel.astype(np.float16) if float(mel.max(initial=0.0)) < 6e4 else mel
        out = Path(out_path)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, windows)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - one bad file must not end a long caching run
        return False, " ".join(f"{type(exc).__name__}: {exc}".split())


class FeatureCache:
    """Frontend mel spectrograms of (clip, augment) pairs, one float16 ``.npy`` per entry.

    Layout: ``<cache_dir>/<12 hex of sha256(frontend config JSON)>/<32 hex>.npy``,
    each ``(2, n_mels, n_frames)`` float16 (``Frontend.mel``: harmonic and
    percussive mel before compression and windowing). The entry name
    hashes the clip key, the audio file's size and mtime (ns), the augment id
    and the noise file's size and mtime: a changed file or spec gets a new
    entry, and a different frontend a different folder. Stale entries are
    never read (and not deleted).

    Parameters
    ----------
    cache_dir : path-like
        Root of the cache (created).
    frontend_config : FrontendConfig
        The frontend the spectrograms come from.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], frontend_config: FrontendConfig | None = None):
        self.config = frontend_config or FrontendConfig()
        spec = json.dumps(dataclasses.asdict(self.config), sort_keys=True)
        self.dir = Path(cache_dir) / hashlib.sha256(spec.encode()).hexdigest()[:12]
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _stat(path: Path) -> tuple[int, int]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise DecodeError(path, "file not found") from None
        except OSError as exc:
            raise DecodeError(path, f"cannot access file ({exc.strerror or exc})") from None
        return st.st_size, st.st_mtime_ns

    def path(self, clip: Clip, augment: Augment = CLEAN, root: str | os.PathLike[str] | None = None) -> Path:
        """Where the entry of ``(clip, augment)`` lives (stats the audio files).

        Raises
        ------
        DecodeError
            The audio or noise file is missing.
        """
        parts: list[Any] = [clip.key, *self._stat(clip.resolve(root)), augment.id]
        if augment.noise_file is not None:
            noise = Clip(augment.noise_file, "noise").resolve(root)
            parts += [*self._stat(noise)]
        name = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]
        return self.dir / f"{name}.npy"

    def has(self, clip: Clip, augment: Augment = CLEAN, root: str | os.PathLike[str] | None = None) -> bool:
        """Whether the entry exists (False also when the audio is missing)."""
        try:
            return self.path(clip, augment, root).is_file()
        except DecodeError:
            return False

    def load(
        self, clip: Clip, augment: Augment = CLEAN, root: str | os.PathLike[str] | None = None, mmap: bool = True
    ) -> np.ndarray:
        """The mel spectrogram of an entry, ``(2, n_mels, n_frames)`` float16 (memory-mapped)."""
        p = self.path(clip, augment, root)
        try:
            return np.load(p, mmap_mode="r" if mmap else None)
        except FileNotFoundError:
            raise MirtagError(f"{clip.key} [{augment.id}]: not in the feature cache (run compute first)") from None

    def compute(
        self,
        items: Iterable[tuple[Clip, Augment]],
        root: str | os.PathLike[str] | None,
        workers: int = 2,
        progress: Callable[[int, int], None] | None = None,
    ) -> CacheStats:
        """Compute the missing entries.

        Parameters
        ----------
        items : iterable of (Clip, Augment)
            Entries wanted (duplicates count once).
        root : path-like or None
            The data root relative clip and noise files resolve against.
        workers : int
            Worker processes (spawned, one thread each); ``<= 1`` computes in
            this process.
        progress : callable(done, total), optional
            Called as entries are found or finished.

        Returns
        -------
        CacheStats
            A failing file is logged (one WARNING line naming it) and counted;
            the run goes on. An interrupted run resumes: finished entries exist.
        """
        tasks: dict[Path, tuple[str, tuple]] = {}
        failures: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        cached = 0
        for clip, aug in items:
            if (clip.key, aug.id) in seen:
                continue
            seen.add((clip.key, aug.id))
            try:
                out = self.path(clip, aug, root)
                noise = None if aug.noise_file is None else str(Clip(aug.noise_file, "noise").resolve(root))
            except MirtagError as exc:
                failures.append((clip.key, str(exc)))
                _LOGGER.warning("feature cache: %s [%s] failed: %s", clip.key, aug.id, exc)
                continue
            if out.is_file():
                cached += 1
            elif out not in tasks:
                tasks[out] = (
                    clip.key,
                    (str(clip.resolve(root)), noise, aug.snr_db, aug.noise_offset, self.config, str(out)),
                )
        total = len(seen)
        done = cached + len(failures)
        if progress is not None:
            progress(done, total)
        computed = 0

        def finish(key: str, ok: bool, reason: str) -> None:
            nonlocal done, computed
            done += 1
            if ok:
                computed += 1
            else:
                failures.append((key, reason))
                _LOGGER.warning("feature cache: %s failed: %s", key, reason)
            if progress is not None:
                progress(done, total)

        if tasks and workers <= 1:
            for key, task in tasks.values():
                finish(key, *_compute_entry(task))
        elif tasks:
            ctx = multiprocessing.get_context("spawn")
            n = min(int(workers), len(tasks))
            with child_env(SINGLE_THREAD_ENV):
                pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_worker_init)
                # Processes start during submit, inside the patched environment.
                futures = {pool.submit(_compute_entry, task): key for key, task in tasks.values()}
            with pool:
                for fut in as_completed(futures):
                    try:
                        ok, reason = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker (BrokenProcessPool) fails its items
                        ok, reason = False, f"{type(exc).__name__}: {exc}"
                    finish(futures[fut], ok, reason)
        stats = CacheStats(
            total=total, cached=cached, computed=computed, failed=len(failures), failures=tuple(failures)
        )
        _LOGGER.info(
            "feature cache %s: %d entries, %d cached, %d computed, %d failed",
            self.dir,
            total,
            cached,
            computed,
            len(failures),
        )
        return stats


def load_windows(
    cache: FeatureCache, items: Sequence[tuple[Clip, Augment]], root: str | os.PathLike[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the runtime's standard windows from cached entries into one array.

    Returns
    -------
    X : np.ndarray [shape=(N, 2, n_mels, window_frames), dtype=float16]
        Every window of every item, in item order.
    clip_index : np.ndarray [shape=(N,), dtype=int64]
        Position in ``items`` of each window's item.

    Raises
    ------
    MirtagError
        An entry is missing (compute first; drop the items that failed).
    """
    from mirtag.runtime.frontend import cut_windows, window_starts

    c = cache.config
    parts, owner = [], []
    for i, (clip, aug) in enumerate(items):
        mel = np.asarray(cache.load(clip, aug, root, mmap=True), dtype=np.float32)
        windows, _ = cut_windows(mel, window_starts(mel.shape[2], c), c)
        parts.append(windows.astype(np.float16))
        owner.append(np.full(len(windows), i, np.int64))
    if not parts:
        return np.zeros((0, 2, c.n_mels, c.window_frames), np.float16), np.zeros(0, np.int64)
    return np.concatenate(parts), np.concatenate(owner)
