"""Read the teacher's cached outputs (``scripts/teacher_label.py``): per-window tags and features.

Layout (written by the labelling script, which runs in the teacher's own
virtualenv; nothing here needs TensorFlow)::

    <root>/<12 hex spec>/spec.json        teacher and runtime parameters, tag names per model
    <root>/<12 hex spec>/manifest.jsonl   one line per entry: key, dataset, split, file, entry, n_windows
    <root>/<12 hex spec>/<entry>.npz      starts (n,) int32; mtt, msd (n, 50); mtt_pen, msd_pen (n, 200) float16

``entry`` is the feature cache's name of the clip's clean entry,
``sha256(json.dumps([clip.key, size, mtime_ns, "clean"]))[:32]``: a changed
audio file gets a new name and its old labels are not read. A row that records
the file's ``size`` also matches the same clip key and size under another mtime
(the cache copied to another machine, where the data's mtimes differ).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mirtag.runtime.errors import MirtagError

from .data import Clip


@dataclass(frozen=True)
class TeacherWindows:
    """The teacher's view of one clip.

    Attributes
    ----------
    starts : np.ndarray [shape=(n,), int64]
        First STFT frame (model rate) of each labelled runtime window, ascending.
    probs : dict[str, np.ndarray]
        ``"mtt"``, ``"msd"`` -> (n, 50) float32 tag probabilities.
    features : np.ndarray [shape=(n, 400), float32]
        The two 200-d penultimate layers side by side (MTT, then MSD).
    """

    starts: np.ndarray
    probs: dict[str, np.ndarray]
    features: np.ndarray


def entry_name(key: str, path: Path) -> str:
    """The feature cache's name of the clean entry of the clip ``key`` stored at ``path``."""
    st = os.stat(path)
    return hashlib.sha256(json.dumps([key, st.st_size, st.st_mtime_ns, "clean"]).encode()).hexdigest()[:32]


class TeacherCache:
    """The entries of one teacher spec folder.

    Parameters
    ----------
    root : path-like
        The cache root (holding one spec folder) or the spec folder itself.

    Raises
    ------
    MirtagError
        No ``spec.json`` is found, or several spec folders compete.
    """

    def __init__(self, root: str | os.PathLike[str]):
        root = Path(os.path.expandvars(str(root))).expanduser()
        if (root / "spec.json").is_file():
            folder = root
        else:
            found = sorted(p.parent for p in root.glob("*/spec.json"))
            if len(found) != 1:
                raise MirtagError(f"{root}: expected one teacher spec folder (spec.json), found {len(found)}")
            folder = found[0]
        self.dir = folder
        self.spec = json.loads((folder / "spec.json").read_text())
        self.tags: dict[str, list[str]] = {k: list(v) for k, v in self.spec["tags"].items()}
        self.rows: list[dict] = []
        manifest = folder / "manifest.jsonl"
        if manifest.is_file():
            for line in manifest.read_text().splitlines():
                if line.strip():
                    try:
                        self.rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut short by a killed labelling run
        self._by_key = {r["key"]: r for r in self.rows}
        self._by_file = {r["file"]: r for r in self.rows}

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, clip: Clip, root: str | os.PathLike[str] | None) -> dict | None:
        """The manifest row of ``clip`` when its entry exists and matches the file as it is now."""
        path = clip.resolve(root)
        row = self._by_key.get(clip.key) or self._by_file.get(str(path))
        if row is None:
            return None
        try:
            same = entry_name(row["key"], path) == row["entry"]
            # a copy of the cache on another machine: same clip and size, other mtime
            same = same or (row["key"] == clip.key and row.get("size") == os.stat(path).st_size)
        except OSError:
            return None
        return row if same and (self.dir / f"{row['entry']}.npz").is_file() else None

    def load(self, row: dict) -> TeacherWindows:
        """The arrays of one manifest row."""
        with np.load(self.dir / f"{row['entry']}.npz") as z:
            order = np.argsort(z["starts"], kind="stable")
            return TeacherWindows(
                starts=z["starts"][order].astype(np.int64),
                probs={k: z[k][order].astype(np.float32) for k in ("mtt", "msd")},
                features=np.concatenate([z["mtt_pen"], z["msd_pen"]], axis=1)[order].astype(np.float32),
            )

    def debian_clips(self) -> list[Clip]:
        """Clips of the labelled Debian music (absolute files; ``music`` True, no other labels)."""
        return [Clip(file=r["file"], dataset="debian", music=True) for r in self.rows if r["dataset"] == "debian"]
