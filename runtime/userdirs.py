"""Where the user's files are: the music folder a scan with no path walks."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path


def music_dir(environ: Mapping[str, str] | None = None, home: str | os.PathLike[str] | None = None) -> Path:
    """The user's music folder (it may not exist).

    In order: ``$XDG_MUSIC_DIR``; ``XDG_MUSIC_DIR`` in the XDG user-dirs file
    (``$XDG_CONFIG_HOME/user-dirs.dirs``, default ``~/.config/user-dirs.dirs``,
    written by xdg-user-dirs on Linux desktops, in the user's language:
    ``~/Musik``, ``~/Musique``...); else ``~/Music`` (also macOS's and Windows's).

    Parameters
    ----------
    environ : mapping, optional
        The environment (default ``os.environ``).
    home : path-like, optional
        The home folder (default ``~``).
    """
    env = os.environ if environ is None else environ
    home = Path(home) if home is not None else Path.home()
    if env.get("XDG_MUSIC_DIR"):
        return Path(os.path.expandvars(env["XDG_MUSIC_DIR"])).expanduser()
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    value = _user_dirs_entry(config / "user-dirs.dirs", "XDG_MUSIC_DIR")
    if value:
        value = value.replace("$HOME", str(home))
        path = Path(value)
        # xdg-user-dirs sets a disabled folder to $HOME itself: scanning all of home is not what a user meant.
        if path.is_absolute() and path != home:
            return path
    return home / "Music"


def _user_dirs_entry(path: Path, key: str) -> str | None:
    """``KEY="value"`` from a user-dirs.dirs file (shell syntax), or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(f"{key}="):
            try:
                parts = shlex.split(line[len(key) + 1 :])
            except ValueError:
                return None
            return parts[0] if parts else None
    return None
