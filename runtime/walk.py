"""Finding the audio files of a library: recursive, deterministic, hidden files skipped.

Paths are ``str`` as the OS gives them (names that are not valid UTF-8 keep their
bytes through ``surrogateescape``; ``os.fsencode`` recovers them exactly).
Symbolic links are followed only on request, and then a directory already on
the current path (a loop) is not entered twice.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Iterable, Iterator, Sequence

from .audio import AUDIO_EXTENSIONS

_LOGGER = logging.getLogger(__name__)


def _matches(path: str, patterns: Sequence[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


def _wanted(path: str, include: Sequence[str], exclude: Sequence[str], extensions) -> bool:
    if exclude and _matches(path, exclude):
        return False
    if include:
        return _matches(path, include)
    return os.path.splitext(path)[1].lower() in extensions


def iter_audio_files(
    paths: Iterable[str | os.PathLike[str]],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
) -> Iterator[str]:
    """Absolute paths of the audio files under ``paths``, in a deterministic order.

    Parameters
    ----------
    paths : iterable of path-like
        Folders (walked recursively) or files (always yielded, whatever their extension).
    include : sequence of str
        Glob patterns (on the file name or the whole path); when given, only
        matching files are yielded instead of those with an audio extension.
    exclude : sequence of str
        Glob patterns of files to skip.
    follow_symlinks : bool
        Follow symbolic links to files and folders (loops are detected).
    extensions : iterable of str
        Lower-case extensions with the dot (default: every format mirtag decodes).

    Yields
    ------
    str
        Absolute, normalised paths; folders in byte order of their names,
        hidden entries (``.name``) skipped, each file once.
    """
    exts = frozenset(e.lower() for e in extensions)
    seen: set[str] = set()
    for root in paths:
        root = os.path.abspath(os.fspath(root))
        if os.path.isdir(root):
            for path in _walk(root, include, exclude, follow_symlinks, exts):
                if path not in seen:
                    seen.add(path)
                    yield path
        elif root not in seen:
            seen.add(root)
            yield root  # an explicit file: the caller asked for it (a missing one becomes an error row)


def _skipped_kind(entry: os.DirEntry, follow: bool) -> str:
    """What a directory entry that is neither a folder nor a regular file is, in words."""
    try:
        st = entry.stat(follow_symlinks=follow)
    except OSError:
        return "dangling symbolic link" if entry.is_symlink() else "cannot stat"
    mode = st.st_mode
    link = "symbolic link to " if entry.is_symlink() else ""
    if stat.S_ISFIFO(mode):
        return f"{link}a FIFO (named pipe), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"{link}a device, not a file"
    if stat.S_ISSOCK(mode):
        return f"{link}a socket, not a file"
    return f"{link}not a regular file"


def _walk(folder: str, include, exclude, follow: bool, exts) -> Iterator[str]:
    """Depth-first, iterative (a tree thousands of folders deep must not hit Python's recursion limit)."""
    on_path: set[tuple[int, int]] = set()  # (dev, inode) of the folders being walked: a link loop
    stack: list[tuple[tuple[int, int], Iterator[os.DirEntry]]] = []

    def enter(path: str) -> None:
        try:
            st = os.stat(path)
            ident = (st.st_dev, st.st_ino)
            if ident in on_path:
                _LOGGER.warning("%s: symbolic link loop, not entered again", path)
                return
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            _LOGGER.warning("%s: cannot list folder (%s)", path, exc.strerror or exc)
            return
        on_path.add(ident)
        stack.append((ident, iter(entries)))

    enter(folder)
    while stack:
        ident, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            on_path.discard(ident)
            continue
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_symlink() and not follow:
                _LOGGER.info("%s: symbolic link, not followed (--follow-symlinks follows links)", entry.path)
                continue
            if entry.is_dir(follow_symlinks=follow):
                enter(entry.path)
            elif entry.is_file(follow_symlinks=follow):
                if _wanted(entry.path, include, exclude, exts):
                    yield entry.path
            else:
                _LOGGER.info("%s: skipped (%s)", entry.path, _skipped_kind(entry, follow))
        except OSError as exc:
            _LOGGER.warning("%s: skipped (%s)", entry.path, exc.strerror or exc)
