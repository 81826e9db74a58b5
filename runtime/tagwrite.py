"""Write scan results into the files' own tags, safely, and undo it.

The library behind ``mirtag write`` and ``mirtag untag``; host applications use
it directly::

    from mirtag.runtime.tagwrite import WriteOptions, write_tags, untag
    for res in write_tags("tags.csv", WriteOptions(policy="fill"), apply=True):
        print(res.path, res.status, res.reason)
    for res in untag("tags.csv.tagjournal.jsonl", apply=True):
        ...

What a write does to one file, in order:

1. skips it, with a reason, when its scan row is an error, it is a WAV (unless
   ``wav``), hard-linked (unless ``allow_hardlinks``), read-only, or changed
   since it was scanned (size or mtime differ from its row);
2. decides the new values (:func:`decide`: the card's thresholds or
   ``min_confidence``, at most ``top_k`` labels, nothing for a not-music track,
   names from the label map) and merges them with the file's values under the
   policy (``fill``, ``merge``, ``replace``); a file already holding them is not
   written (idempotent: its mtime stays);
3. records the old and new values, size, mtime and an md5 of the decoded audio in
   the journal and fsyncs it;
4. saves in place only when the new tag fits the existing padding (mutagen's
   padding callback aborts before any byte changes otherwise); else saves into a
   copy in the same folder, fsyncs it, verifies it, ``os.replace``-s it over the
   original and fsyncs the folder, so a kill at any moment leaves the old or the
   new file, never a torn one;
5. verifies: the re-read values are the new ones and the decoded audio is identical.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import rows as rows_mod
from .card import ModelCard, exported_dir, load_card, read_registry
from .decisions import decide as decide_labels
from .errors import MirtagError, ParameterError
from .labelmap import LabelMap
from .tagfields import BY_HEAD, BY_VALUE, FIELDS, WRITABLE_HEADS
from .tagfile import NoRoom, TagFile, TagFileError, refuse_growth
from .tagjournal import Journal, fsync_dir, default_journal, pending_by_path, read_journal

_LOGGER = logging.getLogger(__name__)

POLICIES = ("fill", "merge", "replace")
DEFAULT_TOP_K = {"genre": 2, "moods": 3, "tags": 5}
"""At most this many labels per head unless ``top_k`` says otherwise."""
ID3_ALIASES = {"TMOO": ("TXXX:MOOD",), "TXXX:MOOD": ("TMOO",)}
"""Where other taggers put the mood in the other ID3 version: ``fill`` counts it as the file's own."""
KILL_HOOK_ENV = "MIRTAG_TEST_KILL_TAGWRITE"
"""Test hook: ``copy`` makes the process SIGKILL itself after the temporary copy is saved, before it replaces the file."""
TMP_SUFFIX = ".mirtag-tmp"


class TagWriteError(MirtagError):
    """A tag write cannot start (rows, card, options) or one file cannot be written."""


@dataclass
class WriteOptions:
    """What ``mirtag write`` does; the CLI options map one to one."""

    policy: str = "fill"
    """``fill`` (genre/mood only where the file has none), ``merge`` (union, the file's first) or ``replace``."""
    heads: tuple[str, ...] = WRITABLE_HEADS
    """Heads to write (``genre``, ``moods``, ``quadrant``, ``tags``); the music probability and model are always written."""
    min_confidence: float | None = None
    """Probability floor for every label (default: the model card's per-label thresholds)."""
    top_k: int | None = None
    """At most K labels per head (default: :data:`DEFAULT_TOP_K`)."""
    label_map: str | os.PathLike[str] | None = None
    """A TOML label map laid over the default (see :mod:`mirtag.runtime.labelmap`)."""
    model: str | os.PathLike[str] | None = None
    """Where the rows' model card is, when it is not a shipped model."""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    wav: bool = False
    """Write WAV files too (their ID3 chunk is read by mutagen and TagLib, ignored by ffmpeg and iTunes)."""
    allow_hardlinks: bool = False
    """Write files with several hard links (a copy-and-replace write leaves the other names with the old file)."""
    id3v24: bool = False
    """Save ID3 tags as v2.4 even in v2.3 files."""
    in_place: bool = True
    """Save in place when the tag fits its padding (one write of the tag region: safe against a kill, not
    against a power cut mid-write); False: always a verified copy, fsynced, then renamed over the file."""

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ParameterError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        self.heads = tuple(self.heads)
        bad = [h for h in self.heads if h not in WRITABLE_HEADS]
        if bad:
            raise ParameterError(f"unknown head(s) {', '.join(bad)}: choose from {', '.join(WRITABLE_HEADS)}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ParameterError("min_confidence must lie in [0, 1]")
        if self.top_k is not None and self.top_k < 1:
            raise ParameterError("top_k must be >= 1")


@dataclass
class FileResult:
    """The outcome for one file.

    Attributes
    ----------
    status : str
        ``written``, ``would write`` (dry run), ``unchanged`` (already holds the
        values), ``skipped`` (see ``reason``) or ``error``.
    changes : dict[str, tuple[list | None, list | None]]
        Field value name (``genres``, ``moods``, ``mirtag_quadrant``, ...) -> (old, new); None = absent.
    method : str or None
        ``in place`` or ``copy`` for a write.
    """

    path: str
    status: str
    reason: str | None = None
    changes: dict[str, tuple[list[str] | None, list[str] | None]] = field(default_factory=dict)
    method: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    """Field value name -> the tag key in this file (``TCON``, ``GENRE``, ...)."""
    journaled: bool = field(default=False, repr=False)


# --------------------------------------------------------------------------- scan rows


def read_scan_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a scan output (.csv, .jsonl, .json), the last row of each file winning."""
    path = Path(path)
    if not path.is_file() and not (path.suffix == ".json" and rows_mod.journal_path(path).is_file()):
        raise TagWriteError(f"{path}: no such scan output")
    fmt = rows_mod.format_of(str(path), None)
    by_path: dict[str, dict[str, Any]] = {}
    for row in rows_mod.read_rows(path, fmt):
        if "path" not in row:
            raise TagWriteError(f"{path}: not a mirtag scan output (a row has no path)")
        by_path[rows_mod.path_from_row(row)] = row
    return list(by_path.values())


def row_probs(row: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Head -> label -> probability, from a JSON row or a CSV record."""
    heads = row.get("heads")
    if isinstance(heads, dict):
        return {h: dict(info.get("probs") or {}) for h, info in heads.items() if isinstance(info, dict)}
    out: dict[str, dict[str, float]] = {}
    for col, text in row.items():
        if not col.endswith("_scores") or col.startswith("_") or not text:
            continue
        probs = {}
        for item in text.split(";"):
            label, _, p = item.rpartition(":")
            try:
                probs[label] = float(p)
            except ValueError:
                raise TagWriteError(f"{row.get('path')}: unreadable scores in column {col}") from None
        out[col[: -len("_scores")]] = probs
    return out


def find_card(sha256: str, model: str | os.PathLike[str] | None = None) -> ModelCard | None:
    """The card of the model with this sha256: ``model`` when given, else a shipped one."""
    if model is not None:
        p = Path(model)
        if p.is_dir():
            reg = read_registry(p)
            cards = [load_card(p / e["card"], check_hash=False) for e in reg["models"].values()]
        else:
            cards = [load_card(p, check_hash=False)]
        for card in cards:
            if card.sha256 == sha256:
                return card
        return None
    try:
        reg = read_registry(exported_dir())
    except MirtagError:
        return None
    for entry in reg["models"].values():
        if entry.get("sha256") == sha256:
            return load_card(exported_dir() / entry["card"], check_hash=False)
    return None


def is_not_music(row: dict[str, Any], probs: dict[str, dict[str, float]], card: ModelCard | None) -> bool:
    """The scan flagged the track as not music or silent (or the music head says so)."""
    warning = row.get("warning") or ""
    if "not music" in warning or "silent" in warning:
        return True
    p = probs.get("music", {}).get("music")
    if p is None:
        return False
    threshold = card.head("music").threshold("music") if card is not None and _has_head(card, "music") else 0.5
    return p < threshold


def _has_head(card: ModelCard, name: str) -> bool:
    return any(h.name == name for h in card.heads)


def decide(
    row: dict[str, Any], card: ModelCard | None, options: WriteOptions, label_map: LabelMap
) -> dict[str, list[str] | None]:
    """The values to write for one row: field value name -> names (None: nothing for that field).

    A label is kept when its probability reaches ``options.min_confidence`` or,
    by default, the card's threshold for it; a softmax head (``quadrant``) keeps
    its best label only if that passes. A track the scan flagged as not music
    gets only the music probability and the model name. Writing nothing for a head
    is allowed (unlike the scan's at-least-one ``top`` list).
    """
    probs = row_probs(row)
    if card is None and options.min_confidence is None:
        raise TagWriteError(
            f"{row.get('path')}: the card of model {row.get('model')} is not found: "
            "pass --model (the model the scan used) or --min-confidence"
        )
    out: dict[str, list[str] | None] = {}
    not_music = is_not_music(row, probs, card)
    for head in options.heads:
        if head not in probs:
            continue
        fld = BY_HEAD[head]
        if not_music:
            out[fld.value] = None
            continue
        p = probs[head]
        spec = card.head(head) if card is not None and _has_head(card, head) else None
        k = options.top_k or (spec.max_labels if spec is not None else None) or DEFAULT_TOP_K.get(head)
        if spec is not None and set(p) <= set(spec.labels):
            # The scan's own rules (runtime.decisions): the card's thresholds on the row's
            # calibrated probabilities, best first (uncapped here: the cap comes below).
            keep = decide_labels(p, spec, len(p), options.min_confidence)
        elif head == "quadrant":
            best = sorted(p, key=lambda lab: -p[lab])[:1]
            floor = options.min_confidence if options.min_confidence is not None else 0.0
            keep = [lab for lab in best if p[lab] >= floor]
        else:
            ranked = sorted(p, key=lambda lab: -p[lab])
            keep = [lab for lab in ranked if p[lab] >= _floor(lab, spec, options.min_confidence)]
        if head != "quadrant":
            # Labels the label map drops (or players would split) make room for the next ones.
            keep = [lab for lab in keep if label_map.names(head, lab)]
        keep = keep[:k] if k else keep
        names = keep if head == "quadrant" else label_map.apply(head, keep)
        out[fld.value] = names or None
    music = probs.get("music", {}).get("music")
    if music is not None:
        out["mirtag_music"] = [f"{music:.2f}"]
    if row.get("model"):
        out["mirtag_model"] = [str(row["model"])]
    return out


def _floor(label: str, spec, min_confidence: float | None) -> float:
    """A sigmoid label's floor: ``min_confidence``, else the card's threshold (0.5 without a card)."""
    if min_confidence is not None:
        return min_confidence
    return spec.threshold(label) if spec is not None else 0.5


def merge_values(current: list[str] | None, new: list[str] | None, policy: str, user: bool) -> list[str] | None:
    """What a field should hold: the policy for genre/mood, always ``new`` for mirtag's own fields.

    ``new`` None means the model decided nothing: a genre or mood field is then
    left as it is; mirtag's own field is removed (it would be stale).
    """
    if not user:
        return new
    if not new:
        return current
    if policy == "fill":
        return current if current else new
    if policy == "merge":
        have = list(current or [])
        seen = {v.casefold() for v in have}
        return have + [v for v in new if v.casefold() not in seen]
    return new


# --------------------------------------------------------------------------- audio identity


def audio_digest(path: str) -> str:
    """md5 of the decoded audio (sample rate, channels and every sample), to prove a write left it alone.

    libsndfile decodes WAV, FLAC, Ogg, Opus, MP3 and AIFF; M4A and WMA go
    through PyAV when installed, else ffmpeg when on PATH.

    Raises
    ------
    TagWriteError
        The file cannot be decoded, or no decoder for its container is installed.
    """
    import soundfile as sf

    try:
        f = sf.SoundFile(path)
    except (RuntimeError, TypeError, ValueError):
        f = None
    if f is not None:
        h = hashlib.md5()
        try:
            with f:
                h.update(f"{f.samplerate}:{f.channels}:".encode())
                while True:
                    block = f.read(1 << 16, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    h.update(block.tobytes())
        except (RuntimeError, ValueError) as exc:
            raise TagWriteError(f"{path}: cannot decode the audio to verify it ({exc})") from None
        return "pcm:" + h.hexdigest()
    try:
        import av
    except ImportError:
        av = None
    if av is not None:
        h = hashlib.md5()
        try:
            with av.open(path) as container:
                stream = container.streams.audio[0]
                h.update(f"{stream.rate}:{stream.channels}:".encode())
                for frame in container.decode(stream):
                    h.update(frame.to_ndarray().tobytes())
        except Exception as exc:  # noqa: BLE001 - PyAV raises many error types
            raise TagWriteError(f"{path}: cannot decode the audio to verify it ({exc})") from None
        return "av:" + h.hexdigest()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise TagWriteError(
            f"{path}: cannot verify the audio: this container needs PyAV (pip install av) or ffmpeg on PATH"
        )
    proc = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-f", "md5", "-"],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0 or not proc.stdout.startswith("MD5="):
        why = (proc.stderr.strip().splitlines() or ["ffmpeg failed"])[-1]
        raise TagWriteError(f"{path}: cannot decode the audio to verify it ({why})")
    return "ffmpeg:" + proc.stdout.strip()[4:]


# --------------------------------------------------------------------------- the safe write


def _tmp_path(path: str) -> str:
    # Hidden (scans skip it), in the same folder (os.replace stays atomic), with the
    # file's extension (mutagen picks the format partly by the name).
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f".{stem}{TMP_SUFFIX}{ext}")


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_writable(path: str, st: os.stat_result) -> None:
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise TagFileError(path, "read-only file")


def _apply_values(tf: TagFile, target: dict[str, list[str] | None]) -> None:
    for key, values in target.items():
        tf.set(key, values)


def _verify(path: str, target: dict[str, list[str] | None], digest: str, *, id3v24: bool) -> None:
    tf = TagFile(path, id3v24=id3v24)
    for key, want in target.items():
        got = tf.get(key)
        if (got or None) != (want or None):
            raise TagWriteError(f"{path}: verification failed: {key} reads back {got!r}, wrote {want!r}")
    after = audio_digest(path)
    if after != digest:
        raise TagWriteError(f"{path}: verification failed: the decoded audio differs after the write")


def safe_save(
    path: str, target: dict[str, list[str] | None], digest: str, *, id3v24: bool = False, in_place: bool = True
) -> str:
    """Set ``target`` (tag key -> values, None = remove) in ``path`` without risking the file.

    In place when the new tag fits the existing padding (and nothing else in the
    file has to move), else through a verified copy that replaces the original.

    Returns
    -------
    str
        ``in place`` or ``copy``.
    """
    path = os.path.realpath(path)  # a symlink stays a link: the file it points to is the one written
    tf = TagFile(path, id3v24=id3v24)
    if (
        in_place and tf.one_write
    ):  # else (an ID3v1 tag, a multi-page Ogg header) a save writes several places: never in place
        _apply_values(tf, target)
        size = os.stat(path).st_size
        try:
            tf.save(padding=refuse_growth)
        except NoRoom:
            pass
        else:
            if os.stat(path).st_size != size:  # refuse_growth keeps the size; anything else is a bug
                raise TagWriteError(f"{path}: an in-place save changed the file size")
            _fsync_file(path)
            _verify(path, target, digest, id3v24=id3v24)
            return "in place"
    folder = os.path.dirname(path) or "."
    if not os.access(folder, os.W_OK):
        raise TagWriteError(f"{path}: the new tag does not fit in place and the folder is not writable")
    tmp = _tmp_path(path)
    st = os.stat(path)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by a killed run
        shutil.copyfile(path, tmp)
        os.chmod(tmp, st.st_mode & 0o7777)
        with contextlib.suppress(OSError):
            os.chown(tmp, st.st_uid, st.st_gid)
        tf = TagFile(tmp, id3v24=id3v24)
        _apply_values(tf, target)
        tf.save()
        _fsync_file(tmp)
        _verify(tmp, target, digest, id3v24=id3v24)
        if os.environ.get(KILL_HOOK_ENV) == "copy":
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return "copy"


# --------------------------------------------------------------------------- write


def _matches(path: str, patterns: Iterable[str]) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)


class TagWriter:
    """Plan and apply tag writes for scan rows (see the module docstring).

    Parameters
    ----------
    options : WriteOptions
    journal : path-like, optional
        The journal (needed to apply; read to recognise files this writer changed before).
    """

    def __init__(
        self,
        options: WriteOptions | None = None,
        journal: str | os.PathLike[str] | None = None,
        rows: str | os.PathLike[str] | None = None,
    ):
        self.options = options or WriteOptions()
        self.rows_path = os.path.abspath(rows) if rows is not None else None
        self.label_map = LabelMap.load(self.options.label_map)
        self.journal_path = Path(journal) if journal is not None else None
        self._cards: dict[str, ModelCard | None] = {}
        self._history: dict[str, list[dict[str, Any]]] = {}
        if self.journal_path is not None and self.journal_path.is_file():
            self._history = pending_by_path(read_journal(self.journal_path))
        self._journal: Journal | None = None
        self._lock = threading.Lock()
        self.updated: dict[str, tuple[int, int]] = {}
        """Path -> (size, mtime_ns) after a write: the scan rows to update."""

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> TagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _card(self, row: dict[str, Any]) -> ModelCard | None:
        sha = row.get("model_sha256") or ""
        if sha not in self._cards:
            self._cards[sha] = find_card(sha, self.options.model) if sha else None
        return self._cards[sha]

    def _ours(self, path: str, st: os.stat_result) -> bool:
        """The file differs from its row only because an earlier write of this journal changed it."""
        recs = self._history.get(path) or []
        for rec in reversed(recs):
            if rec["op"] == "done" and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
                return True
        begins = [r for r in recs if r["op"] == "begin"]
        if begins and recs[-1]["op"] == "begin":
            # A run killed mid-write: the file holds the old or the new tags; the same audio proves it is ours.
            try:
                return audio_digest(path) == begins[-1].get("audio_md5")
            except MirtagError:
                return False
        return False

    def process(self, row: dict[str, Any], apply: bool = False) -> FileResult:
        """Plan (and with ``apply``, write) one scan row's file; never raises for a bad file.

        With ``apply``, a file that fails gets an ``error`` record in the journal.
        """
        path = rows_mod.path_from_row(row)
        try:
            res = self._process(row, path, apply)
        except (MirtagError, OSError) as exc:
            reason = getattr(exc, "reason", None) or (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            res = FileResult(path, "error", reason)
        except Exception as exc:  # noqa: BLE001 - a tag library's surprise must cost one file, not the run
            _LOGGER.debug("%s: unexpected error", path, exc_info=True)
            res = FileResult(path, "error", f"unexpected error ({type(exc).__name__}: {exc})")
        if apply and res.status == "error" and not res.journaled and self.journal_path is not None:
            self._log("error", path, reason=res.reason)
        return res

    def _log(self, op: str, path: str, **fields: Any) -> None:
        with self._lock:  # one journal for all threads; each record is one fsynced O_APPEND write
            if self._journal is None:
                if self.journal_path is None:
                    raise TagWriteError("applying a write needs a journal path")
                self._journal = Journal(self.journal_path)
            self._journal.record(op, path, **fields)

    def _process(self, row: dict[str, Any], path: str, apply: bool) -> FileResult:
        opts = self.options
        if row.get("status") != "ok":
            return FileResult(path, "skipped", "no scan result (the scan failed on this file)")
        if opts.include and not _matches(path, opts.include) or opts.exclude and _matches(path, opts.exclude):
            return FileResult(path, "skipped", "excluded")
        try:
            st = os.stat(path)
        except OSError as exc:
            return FileResult(path, "skipped", f"cannot stat it ({exc.strerror or exc})")
        row_id = (_int(row.get("size")), _int(row.get("mtime_ns")))
        changed = row_id != (st.st_size, st.st_mtime_ns)
        if changed and not self._ours(path, st):
            return FileResult(
                path, "skipped", "changed since it was scanned (size or mtime differ from its row): scan it again"
            )
        if path.lower().endswith((".wav", ".wave")) and not opts.wav:
            return FileResult(path, "skipped", "WAV: ffmpeg and iTunes ignore its ID3 chunk (pass --wav to write it)")
        if st.st_nlink > 1 and not opts.allow_hardlinks:
            return FileResult(
                path, "skipped", f"{st.st_nlink} hard links: a write would split them (pass --allow-hardlinks)"
            )
        try:
            tf = TagFile(path, id3v24=opts.id3v24)
            if tf.is_wav and not opts.wav:
                return FileResult(
                    path, "skipped", "WAV: ffmpeg and iTunes ignore its ID3 chunk (pass --wav to write it)"
                )
            decided = decide(row, self._card(row), opts, self.label_map)
        except MirtagError as exc:
            return FileResult(path, "error", getattr(exc, "reason", None) or str(exc))
        res = FileResult(path, "unchanged")
        target: dict[str, list[str] | None] = {}
        old: dict[str, list[str] | None] = {}
        selected = {BY_HEAD[h].value for h in opts.heads} | {"mirtag_music", "mirtag_model"}
        for fld in FIELDS:
            if fld.value not in selected or (fld.value not in decided and fld.user):
                continue
            key = fld.key(tf.system)
            cur = tf.get(key)
            if fld.user and not cur and opts.policy == "fill" and any(tf.get(k) for k in ID3_ALIASES.get(key, ())):
                continue  # the file has this value under the other ID3 key (TXXX:MOOD in v2.4, TMOO in v2.3)
            want = merge_values(cur, decided.get(fld.value), opts.policy, fld.user)
            if (cur or None) != (want or None):
                res.changes[fld.value] = (cur, want)
                res.keys[fld.value] = key
                target[key] = want
                old[key] = cur
        if not target:
            if changed:
                self.updated[path] = (st.st_size, st.st_mtime_ns)
            return res
        if not apply:
            res.status = "would write"
            return res
        try:
            _check_writable(path, st)
            digest = audio_digest(path)
            self._log(
                "begin",
                path,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                audio_md5=digest,
                system=tf.system,
                kind=tf.kind,
                old=old,
                new=target,
                rows=self.rows_path,
            )
            try:
                res.method = safe_save(path, target, digest, id3v24=opts.id3v24, in_place=opts.in_place)
            except (MirtagError, OSError) as exc:
                reason = getattr(exc, "reason", None) or (exc.strerror if isinstance(exc, OSError) else None)
                res.status, res.reason, res.journaled = "error", reason or str(exc), True
                self._log("error", path, reason=res.reason)
                return res
            new = os.stat(path)
            self._log("done", path, size=new.st_size, mtime_ns=new.st_mtime_ns, method=res.method)
            self.updated[path] = (new.st_size, new.st_mtime_ns)
            res.status = "written"
        except MirtagError as exc:
            res.status, res.reason = "error", getattr(exc, "reason", None) or str(exc)
        return res


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def update_scan_rows(rows_path: str | os.PathLike[str], updated: dict[str, tuple[int, int]]) -> int:
    """Give the rows of written files their new size and mtime, so a resumed scan keeps them.

    Returns the number of rows changed. The output is rewritten atomically.
    """
    if not updated:
        return 0
    from .output import OutputLock

    rows_path = Path(rows_path)
    with OutputLock(rows_path):  # a scan appending to the same output would otherwise lose rows
        return _update_scan_rows(rows_path, updated)


def _update_scan_rows(rows_path: Path, updated: dict[str, tuple[int, int]]) -> int:
    fmt = rows_mod.format_of(str(rows_path), None)
    stored = rows_mod.read_rows(rows_path, fmt)
    n = 0
    header: list[str] | None = None
    for row in stored:
        path = rows_mod.path_from_row(row)
        if path not in updated:
            continue
        size, mtime = updated[path]
        row["size"], row["mtime_ns"] = size, mtime
        if "_csv" in row:
            header = row["_header"]
            rec = list(row["_csv"])
            rec[header.index("size")], rec[header.index("mtime_ns")] = str(size), str(mtime)
            row["_csv"] = rec
        n += 1
    if not n:
        return 0
    if fmt == "csv":
        header = header or (stored[0].get("_header") if stored else None) or []
        base = len(rows_mod.BASE_COLUMNS)
        heads = header[base::2]
    else:
        heads = []
    writer = rows_mod.RowWriter(str(rows_path), fmt, heads, stored, None)
    writer.close(complete=True)
    return n


def check_rows(rows: str | os.PathLike[str], options: WriteOptions | None = None) -> int:
    """Fail early, before any file: the scan output reads, the label map loads, every model's card is found.

    Returns the number of rows.
    """
    options = options or WriteOptions()
    stored = read_scan_rows(rows)
    LabelMap.load(options.label_map)
    if options.min_confidence is None:
        for sha, ref in {(r.get("model_sha256") or "", r.get("model")) for r in stored if r.get("status") == "ok"}:
            if not sha or find_card(sha, options.model) is None:
                raise TagWriteError(
                    f"{rows}: the card of model {ref} (sha256 {sha[:12] or '?'}) is not found: "
                    "pass --model (the model the scan used) or --min-confidence"
                )
    return len(stored)


def update_embeddings(emb_path: str | os.PathLike[str], updated: dict[str, tuple[int, int]]) -> int:
    """Give the vectors of written files their new size and mtime (``scan --embeddings`` keys them like rows).

    Without this a resumed scan would analyse the written files again to get their
    vectors back. The file is rewritten (same vectors, new keys) into a temporary
    and renamed into place, as ``embeddings.open_for_scan`` does. Returns the
    number of keys changed (0 when the file does not exist).
    """
    from . import embeddings as emb_mod

    emb_path = Path(emb_path)
    if not updated or not emb_path.is_file():
        return 0
    old = emb_mod.Embeddings.open(emb_path)
    try:
        keys = [old.key(i) for i in range(len(old))]
        hits = [i for i, k in enumerate(keys) if rows_mod.path_from_row(k) in updated]
        if not hits:
            return 0
        tmp = emb_path.with_name(f".{emb_path.name}.tmp")
        new = emb_mod.Embeddings.create(tmp, old.dim, dict(old.meta))
        for i, key in enumerate(keys):
            if i in hits:
                size, mtime = updated[rows_mod.path_from_row(key)]
                key = {**key, "size": size, "mtime_ns": mtime}
            new.add(key, old.vector(i))
        new.close()
    finally:
        old.close()
    os.replace(emb_mod.keys_path(tmp), emb_mod.keys_path(emb_path))
    os.replace(tmp, emb_path)
    return len(hits)


def _after_write(rows: str | os.PathLike[str], updated: dict[str, tuple[int, int]]) -> None:
    """The scan output's rows and its ``.emb`` sidecar follow the written files (resume survives writes).

    Done holding the output's lock (:class:`mirtag.runtime.output.OutputLock`), so
    a scan appending to the same output is never raced; when one holds it, the
    rows stay as they are (the writes stand; that scan analyses these files again).
    """
    from .embeddings import sidecar_for
    from .output import OutputLock, OutputLockedError

    lock = OutputLock(rows)
    try:
        lock.acquire()
    except OutputLockedError as exc:
        _LOGGER.warning("%s: the scan rows were not updated (%s)", rows, exc)
        return
    try:
        _update_scan_rows(Path(rows), updated)
        try:
            update_embeddings(sidecar_for(rows), updated)
        except MirtagError as exc:  # the writes stand; a resumed scan re-analyses these files for their vectors
            _LOGGER.warning("%s: could not update the embeddings (%s)", sidecar_for(rows), exc)
    finally:
        lock.release()


def write_tags(
    rows: str | os.PathLike[str],
    options: WriteOptions | None = None,
    *,
    apply: bool = False,
    journal: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, FileResult], None] | None = None,
    jobs: int = 1,
) -> Iterator[FileResult]:
    """Write a scan output's results into its files (a dry run unless ``apply``).

    Parameters
    ----------
    rows : path-like
        The scan output (.csv, .jsonl or .json).
    options : WriteOptions
    apply : bool
        Write; without it nothing on disk changes.
    journal : path-like, optional
        Default: ``<rows>.tagjournal.jsonl``.
    progress : callable(done, total, result), optional
    jobs : int
        Files worked on at once (threads: decoding for the audio check, the
        expensive part, runs outside the GIL in libsndfile or ffmpeg).

    Yields
    ------
    FileResult
        One per row, in row order. After the last, the rows of written files get
        their new size and mtime (so ``scan`` with the same output skips them).
    """
    if jobs < 1:
        raise ParameterError("jobs must be >= 1")
    stored = read_scan_rows(rows)
    journal = default_journal(rows) if journal is None else journal
    with TagWriter(options, journal, rows) as writer:
        try:
            results = _in_order(lambda row: writer.process(row, apply=apply), stored, jobs)
            for i, res in enumerate(results, 1):
                if progress:
                    progress(i, len(stored), res)
                yield res
        finally:
            results.close()
            if apply and writer.updated:
                _after_write(rows, writer.updated)


def _in_order(fn: Callable[[Any], FileResult], items: list[Any], jobs: int) -> Iterator[FileResult]:
    """``map(fn, items)`` on ``jobs`` threads, in order, at most ``2 * jobs`` ahead; closing it waits for them."""
    if jobs == 1:
        for item in items:
            yield fn(item)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="mirtag-write") as pool:
        pending: deque = deque()
        it = iter(items)
        try:
            for item in it:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * jobs:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()  # not started: never touched; started ones finish before the pool closes


# --------------------------------------------------------------------------- untag


def untag(
    journal: str | os.PathLike[str],
    *,
    apply: bool = False,
    force: bool = False,
    progress: Callable[[int, int, FileResult], None] | None = None,
) -> Iterator[FileResult]:
    """Put back what the journal's writes replaced (a dry run unless ``apply``).

    Each field gets the value it had before the first write in the journal
    (a field that did not exist is removed). A file whose current values are
    neither mirtag's nor the old ones was edited since: it is skipped unless ``force``.
    The scan output the write came from gets the restored files' new size and mtime.
    """
    records = read_journal(journal)
    pending = {p: [r for r in recs if r["op"] == "begin"] for p, recs in pending_by_path(records).items()}
    pending = {p: b for p, b in pending.items() if b}
    log = Journal(journal) if apply else None
    updated: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        for i, (path, begins) in enumerate(pending.items(), 1):
            res = _untag_one(path, begins, apply, force, log)
            if res.status == "written" and begins[-1].get("rows"):
                st = os.stat(path)
                updated.setdefault(begins[-1]["rows"], {})[path] = (st.st_size, st.st_mtime_ns)
            if progress:
                progress(i, len(pending), res)
            yield res
    finally:
        if log is not None:
            log.close()
        for rows_path, files in updated.items():
            try:
                _after_write(rows_path, files)
            except MirtagError as exc:  # the restore stands; only a rescan of these files is lost
                _LOGGER.warning("%s: could not update the scan rows (%s)", rows_path, exc)


def _untag_one(path: str, begins: list[dict[str, Any]], apply: bool, force: bool, log: Journal | None) -> FileResult:
    target: dict[str, list[str] | None] = {}
    written: dict[str, list[str] | None] = {}
    for rec in begins:
        for key, value in rec["old"].items():
            target.setdefault(key, value)
        written.update(rec["new"])
    res = FileResult(path, "unchanged")
    try:
        st = os.stat(path)
        tf = TagFile(path, id3v24=False)
        to_set = {}
        for key, want in target.items():
            cur = tf.get(key)
            if (cur or None) == (want or None):
                continue
            if (cur or None) != (written.get(key) or None) and not force:
                return FileResult(
                    path, "skipped", f"{key} was edited since mirtag wrote it ({cur!r}); pass --force to restore anyway"
                )
            to_set[key] = want
            value = _value_of(key)
            res.changes[value] = (cur, want)
            res.keys[value] = key
        if not to_set:
            if apply and log is not None:
                log.record("undone", path)
            return res
        if not apply:
            res.status = "would write"
            return res
        _check_writable(path, st)
        if st.st_nlink > 1:
            _LOGGER.info("%s: has %d hard links; restoring it as mirtag wrote it", path, st.st_nlink)
        digest = audio_digest(path)
        res.method = safe_save(path, to_set, digest)  # the file's current ID3 version is kept
        if log is not None:
            log.record("undone", path, method=res.method)
        res.status = "written"
    except MirtagError as exc:
        res.status, res.reason = "error", getattr(exc, "reason", None) or str(exc)
    except OSError as exc:
        res.status, res.reason = "error", exc.strerror or str(exc)
    return res


def _value_of(key: str) -> str:
    for fld in FIELDS:
        if key in fld.keys.values():
            return fld.value
    return key


__all__ = [
    "BY_VALUE",
    "POLICIES",
    "FileResult",
    "TagWriteError",
    "TagWriter",
    "WriteOptions",
    "audio_digest",
    "check_rows",
    "decide",
    "merge_values",
    "read_scan_rows",
    "safe_save",
    "untag",
    "update_scan_rows",
    "write_tags",
]
