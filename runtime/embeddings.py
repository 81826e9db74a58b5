"""Track embeddings kept on disk: a float16 matrix plus the row key of each vector.

A scan with ``--embeddings FILE`` appends one vector per analysed file (the mean
of the classifier's ``embedding`` output over the track's loud windows, L2
normalised, stored as float16) and, beside it, the identity of the row it
belongs to (the same fields :func:`mirtag.runtime.rows.row_key` reads), so the
vectors resume with the rows: a file whose row is kept keeps its vector, a file
that is re-analysed gets a new one, and stale vectors are dropped.

Layout (two files, both append-only)::

    FILE        512-byte header (magic, dimension, JSON metadata: model, sha256)
                then N x D float16, row-major, unit length
    FILE.keys   a line naming the file's id, then N lines of JSON:
                path, path_b64, size, mtime_ns, model_sha256, coverage

A vector is written before its key line; a reader takes the first
``min(complete key lines, complete vectors)`` entries, so a scan killed mid-write
leaves a readable file (the torn tail is cut off the next time it is opened for
appending). Both files carry a random id, so a key file never pairs with the
matrix of another generation (a rewrite killed between its two renames). Reads are memory-mapped: a million 256-d tracks are 0.5 GB on disk,
and a query reads the matrix block by block (exact cosine similarity), so the
resident memory is one block plus the scores.

Python API::

    from mirtag.runtime import Embeddings
    emb = Embeddings.open("tags.emb")
    for hit in emb.nearest(emb.vector(emb.find("/music/a.flac")), n=10):
        print(hit.score, hit.path)
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MirtagError
from .rows import path_fields, path_from_row, row_key

_LOGGER = logging.getLogger(__name__)

MAGIC = b"MIRTEMB1"
HEADER_BYTES = 512
KEY_FIELDS = ("path", "path_b64", "size", "mtime_ns", "model_sha256", "coverage", "duration_s")
"""The row fields stored with each vector (what ``rows.row_key`` needs, ``path_b64``, and the duration for playlists)."""
_BLOCK = 262144  # rows per block of a query: 128 MB of the map, 1 MB of scores


class EmbeddingsError(MirtagError):
    """An embeddings file is missing, corrupt, or made by another model."""


def keys_path(path: str | os.PathLike[str]) -> Path:
    """The key file beside an embeddings file."""
    p = Path(path)
    return p.with_name(p.name + ".keys")


def sidecar_for(out: str | os.PathLike[str]) -> Path:
    """The default embeddings file of a scan output: ``<out>.emb``."""
    p = Path(out)
    return p.with_name(p.name + ".emb")


def key_record(row: dict[str, Any]) -> dict[str, Any]:
    """The identity fields of a scan row, as stored beside its vector."""
    return {k: row.get(k) for k in KEY_FIELDS}


@dataclass(frozen=True)
class Hit:
    """One neighbour: its index in the file, cosine similarity and key record."""

    index: int
    score: float
    key: dict[str, Any]

    @property
    def path(self) -> str:
        """The exact file path (bytes restored from ``path_b64``)."""
        return path_from_row(self.key)


_F16_TABLE: np.ndarray | None = None


def _f16_table() -> np.ndarray:
    """float32 value of every float16 bit pattern [shape=(65536,)]: 256 kB, stays in cache."""
    global _F16_TABLE
    if _F16_TABLE is None:
        _F16_TABLE = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    return _F16_TABLE


def _dot_f16_py(bits, table, q, out):  # pragma: no cover - compiled by numba
    n, d = bits.shape
    for i in range(n):
        acc = np.float32(0.0)
        for j in range(d):
            acc += table[bits[i, j]] * q[j]
        out[i] = acc


_DOT_F16_KERNEL = None


def _dot_f16_kernel():
    """The compiled kernel; numba is imported on the first query, not with the module (CLI start-up)."""
    global _DOT_F16_KERNEL
    if _DOT_F16_KERNEL is None:
        import numba

        _DOT_F16_KERNEL = numba.njit(cache=True, nogil=True, fastmath=True)(_dot_f16_py)
    return _DOT_F16_KERNEL


def dot_f16(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``matrix @ q`` for a float16 matrix without converting it: a table lookup per element.

    numpy's float16 -> float32 cast is the cost of a query (about 6x the
    multiply-add here); reading the bit patterns through a 65536-entry table
    streams the memory map once.

    Parameters
    ----------
    matrix : np.ndarray [shape=(n, D), float16]
    q : np.ndarray [shape=(D,), float32]

    Returns
    -------
    np.ndarray [shape=(n,), float32]
    """
    out = np.empty(matrix.shape[0], np.float32)
    if matrix.shape[0]:
        _dot_f16_kernel()(matrix.view(np.uint16), _f16_table(), np.ascontiguousarray(q, dtype=np.float32), out)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def _id_line(token: str) -> bytes:
    return json.dumps({"embeddings": token}).encode("ascii") + b"\n"


def _line_offsets(buf) -> np.ndarray:
    """Start offsets of the complete lines of ``buf`` (and the end), without copying it whole."""
    ends = []
    step = 1 << 24
    n = len(buf)
    for s in range(0, n, step):
        chunk = np.frombuffer(buf, dtype=np.uint8, count=min(step, n - s), offset=s)
        ends.append(np.flatnonzero(chunk == 10) + s + 1)
    ends = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    return np.concatenate([[0], ends]).astype(np.int64)


class Embeddings:
    """A memory-mapped embeddings file; see the module docstring for the layout.

    Use :meth:`open` (read, or append with ``writable=True``) or :meth:`create`.

    Attributes
    ----------
    path : Path
    dim : int
        Vector width D.
    meta : dict
        ``model`` (name@version), ``model_sha256`` and anything else the writer stored.
    """

    def __init__(self, path: Path, dim: int, meta: dict[str, Any], writable: bool):
        self.path, self.dim, self.meta, self.writable = path, dim, meta, writable
        self._vec_fh = self._key_fh = None
        self._n = 0
        self._mm_vec = self._mm_keys = None
        self._offsets = np.zeros(1, np.int64)

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike[str], dim: int, meta: dict[str, Any] | None = None) -> Embeddings:
        """Start a new, empty file (replacing one that is there) and open it for appending."""
        path = Path(path)
        meta = {**(meta or {}), "id": os.urandom(8).hex()}
        blob = json.dumps(meta, separators=(",", ":")).encode("utf-8")
        if len(blob) > HEADER_BYTES - 16:
            raise EmbeddingsError(f"{path}: metadata too long for the header")
        header = MAGIC + struct.pack("<II", int(dim), len(blob)) + blob
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(header.ljust(HEADER_BYTES, b"\0"))
            keys_path(path).write_bytes(_id_line(meta["id"]))
        except OSError as exc:
            raise EmbeddingsError(f"{path}: cannot write ({exc.strerror or exc})") from None
        return cls.open(path, writable=True)

    @classmethod
    def open(cls, path: str | os.PathLike[str], writable: bool = False) -> Embeddings:
        """Open an existing file; with ``writable`` a torn tail is cut off and :meth:`add` appends."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                head = fh.read(HEADER_BYTES)
        except FileNotFoundError:
            raise EmbeddingsError(f"{path}: no such embeddings file (make one with mirtag scan --embeddings)") from None
        except OSError as exc:
            raise EmbeddingsError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if len(head) < HEADER_BYTES or not head.startswith(MAGIC):
            raise EmbeddingsError(f"{path}: not a mirtag embeddings file")
        dim, n_meta = struct.unpack("<II", head[8:16])
        try:
            meta = json.loads(head[16 : 16 + n_meta].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EmbeddingsError(f"{path}: corrupt embeddings header") from None
        if dim < 1:
            raise EmbeddingsError(f"{path}: corrupt embeddings header (dimension {dim})")
        self = cls(path, dim, meta, writable)
        if not keys_path(path).is_file():
            raise EmbeddingsError(f"{keys_path(path)}: missing (it holds the key of each vector)")
        self._load()
        if writable:
            self._truncate_to_complete()
            self._vec_fh = open(path, "ab")  # noqa: SIM115 - held until close()
            self._key_fh = open(keys_path(path), "ab")  # noqa: SIM115
        return self

    def _load(self) -> None:
        self.close_maps()
        n_vec = max(0, (self.path.stat().st_size - HEADER_BYTES) // (2 * self.dim))
        kp = keys_path(self.path)
        size = kp.stat().st_size
        first = _id_line(str(self.meta.get("id")))
        if size >= len(first):
            with open(kp, "rb") as fh:
                self._mm_keys = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if self._mm_keys is None or self._mm_keys[: len(first)] != first:
            raise EmbeddingsError(
                f"{kp}: does not belong to {self.path.name} (a rewrite was interrupted?); rescan with --force"
            )
        self._offsets = _line_offsets(self._mm_keys)[1:]
        self._n = int(min(n_vec, len(self._offsets) - 1))
        if n_vec:
            self._mm_vec = np.memmap(
                self.path, dtype=np.float16, mode="r", offset=HEADER_BYTES, shape=(n_vec, self.dim)
            )

    def _truncate_to_complete(self) -> None:
        n = self._n
        ends = {self.path: HEADER_BYTES + n * self.dim * 2, keys_path(self.path): int(self._offsets[n])}
        torn = {p: end for p, end in ends.items() if p.stat().st_size != end}
        if not torn:
            return
        self.close_maps()
        for p, end in torn.items():
            with open(p, "r+b") as fh:
                fh.truncate(end)
        self._load()

    def close_maps(self) -> None:
        if self._mm_keys is not None:
            self._mm_keys.close()
            self._mm_keys = None
        self._mm_vec = None

    def close(self) -> None:
        """Flush and close (the file stays readable by others at every moment)."""
        for fh in (self._vec_fh, self._key_fh):
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
        self._vec_fh = self._key_fh = None
        self.close_maps()

    def __enter__(self) -> Embeddings:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._n

    @property
    def vectors(self) -> np.ndarray:
        """The matrix [shape=(N, D), float16, unit rows], memory-mapped (read-only)."""
        if self._mm_vec is None:
            return np.zeros((0, self.dim), np.float16)
        return self._mm_vec[: self._n]

    def key(self, i: int) -> dict[str, Any]:
        """The key record of vector ``i``."""
        if not 0 <= i < self._n:
            raise IndexError(i)
        return json.loads(self._mm_keys[int(self._offsets[i]) : int(self._offsets[i + 1])])

    def key_records(self) -> Iterable[dict[str, Any]]:
        """Every key record, in file order."""
        for i in range(self._n):
            yield self.key(i)

    def vector(self, i: int) -> np.ndarray:
        """Vector ``i`` as float32 [shape=(D,)]."""
        return np.asarray(self.vectors[i], dtype=np.float32)

    def find(self, path: str | os.PathLike[str]) -> int | None:
        """Index of the last vector stored for ``path`` (None if there is none).

        A byte search for the path's JSON text in the mapped key file (the
        writer's exact encoding), so a lookup among a million tracks takes
        milliseconds and builds no index.
        """
        if not self._n or self._mm_keys is None:
            return None
        path = os.fspath(path)
        want = os.fsencode(path)
        shown, _ = path_fields(path)
        needle = b'"path":' + json.dumps(shown, ensure_ascii=True).encode("ascii") + b","
        end = int(self._offsets[self._n])
        while True:
            pos = self._mm_keys.rfind(needle, 0, end)
            if pos < 0:
                return None
            i = int(np.searchsorted(self._offsets, pos, side="right")) - 1
            if 0 <= i < self._n and os.fsencode(path_from_row(self.key(i))) == want:
                return i
            end = pos  # a path_b64 row whose display text matched: look further back

    def row_keys(self) -> dict[tuple, int]:
        """``rows.row_key`` of each stored vector -> its (last) index."""
        return {row_key(k): i for i, k in enumerate(self.key_records())}

    def nearest(self, query: np.ndarray, n: int = 20, exclude: Iterable[int] = (), block: int = _BLOCK) -> list[Hit]:
        """The ``n`` vectors most cosine-similar to ``query`` (exact, blocked over the memory map).

        Parameters
        ----------
        query : np.ndarray [shape=(D,) or (Q, D)]
            One vector, or several whose normalised mean (centroid) is the query.
        n : int
            Neighbours to return, best first.
        exclude : iterable of int
            Indices to leave out (the seeds themselves).
        block : int
            Rows scored at a time (the top ``n`` of each block are kept).

        Returns
        -------
        list of Hit
        """
        q = np.atleast_2d(np.asarray(query, dtype=np.float32))
        if q.shape[1] != self.dim:
            raise EmbeddingsError(f"{self.path}: query has {q.shape[1]} dimensions, the file {self.dim}")
        q = _unit(_unit(q).mean(axis=0))
        excluded = np.fromiter({int(i) for i in exclude}, dtype=np.int64)
        want = n + len(excluded)
        best_idx = np.zeros(0, np.int64)
        best_score = np.zeros(0, np.float32)
        mat = self.vectors
        for s in range(0, self._n, block):
            scores = dot_f16(mat[s : s + block], q)
            k = min(want, len(scores))
            part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            best_idx = np.concatenate([best_idx, part + s])
            best_score = np.concatenate([best_score, scores[part]])
            if len(best_idx) > want:
                keep = np.argpartition(-best_score, want - 1)[:want]
                best_idx, best_score = best_idx[keep], best_score[keep]
        if len(excluded):
            mask = ~np.isin(best_idx, excluded)
            best_idx, best_score = best_idx[mask], best_score[mask]
        order = np.lexsort((best_idx, -best_score))[:n]
        return [Hit(int(best_idx[i]), float(best_score[i]), self.key(int(best_idx[i]))) for i in order]

    # ------------------------------------------------------------------ writing
    def add(self, key: dict[str, Any], vector: np.ndarray) -> int:
        """Append one vector (normalised, stored as float16) with its key record; returns its index.

        ``key`` is a scan row or any dict with ``path`` (other :data:`KEY_FIELDS` optional).
        """
        if self._vec_fh is None:
            raise EmbeddingsError(f"{self.path}: opened read-only")
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise EmbeddingsError(f"{self.path}: vector has {v.shape[0]} dimensions, the file {self.dim}")
        if not np.all(np.isfinite(v)):
            raise EmbeddingsError(f"{key.get('path')}: embedding is not finite")
        rec = key_record(key)
        if rec.get("path") is not None and rec.get("path_b64") is None:
            rec["path"], rec["path_b64"] = path_fields(rec["path"])
        line = json.dumps(rec, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
        self._vec_fh.write(_unit(v).astype("<f2").tobytes())
        self._vec_fh.flush()  # the vector first: a key line never points past the matrix
        self._key_fh.write(line)
        self._key_fh.flush()
        self._n += 1
        return self._n - 1

    def add_many(self, keys: Sequence[dict[str, Any]], vectors: np.ndarray) -> None:
        """Append many vectors [shape=(N, D)] with their key records in two writes (bulk imports)."""
        if self._vec_fh is None:
            raise EmbeddingsError(f"{self.path}: opened read-only")
        x = np.asarray(vectors, dtype=np.float32).reshape(len(keys), -1)
        if x.shape[1] != self.dim:
            raise EmbeddingsError(f"{self.path}: vectors have {x.shape[1]} dimensions, the file {self.dim}")
        if not np.all(np.isfinite(x)):
            raise EmbeddingsError(f"{self.path}: embeddings are not finite")
        lines = []
        for key in keys:
            rec = key_record(key)
            if rec.get("path") is not None and rec.get("path_b64") is None:
                rec["path"], rec["path_b64"] = path_fields(rec["path"])
            lines.append(json.dumps(rec, ensure_ascii=True, separators=(",", ":")))
        self._vec_fh.write(_unit(x).astype("<f2").tobytes())
        self._vec_fh.flush()
        self._key_fh.write(("\n".join(lines) + "\n").encode("ascii") if lines else b"")
        self._key_fh.flush()
        self._n += len(keys)

    def refresh(self) -> None:
        """Re-map the files after appends (``vectors``/``nearest`` see the new rows)."""
        if self._vec_fh is not None:
            self._vec_fh.flush()
            self._key_fh.flush()
        self._load()


def open_for_scan(
    path: str | os.PathLike[str], dim: int, meta: dict[str, Any], keep: Sequence[dict[str, Any]]
) -> tuple[Embeddings, set[tuple]]:
    """Open (or start) a scan's embeddings file so it holds exactly the vectors of ``keep``.

    Vectors whose row key is not among the kept rows (the file changed, another
    model, a duplicate) are dropped by rewriting the file, which happens only
    when there is something to drop.

    Parameters
    ----------
    path : path-like
    dim : int
        The model's embedding width.
    meta : dict
        ``model`` and ``model_sha256`` of the scan.
    keep : sequence of dict
        The rows the scan keeps (resume).

    Returns
    -------
    (Embeddings, set of row keys)
        The file, open for appending, and the row keys that already have a vector
        (a kept row without one must be analysed again).
    """
    path = Path(path)
    wanted = {row_key(r) for r in keep}
    if not path.exists():
        return Embeddings.create(path, dim, meta), set()
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise EmbeddingsError(f"{path}: exists and is not a mirtag embeddings file; not overwriting it")
    try:
        old = Embeddings.open(path)
    except EmbeddingsError as exc:
        _LOGGER.warning("%s; starting it afresh", exc)
        return Embeddings.create(path, dim, meta), set()
    try:
        same = old.dim == dim and old.meta.get("model_sha256") == meta.get("model_sha256")
        index = old.row_keys() if same else {}
        have = {k: i for k, i in index.items() if k in wanted}
        if same and len(have) == len(old):
            old.close()
            return Embeddings.open(path, writable=True), set(have)
        # Rewrite: the kept vectors, in their old order, into a temp file, then replace.
        tmp = path.with_name(f".{path.name}.tmp")
        new = Embeddings.create(tmp, dim, meta)  # a new id: the old key file cannot pair with it
        for i in sorted(have.values()):
            new.add(old.key(i), old.vector(i))
        new.close()
    finally:
        old.close()
    os.replace(keys_path(tmp), keys_path(path))
    os.replace(tmp, path)
    _LOGGER.info("%s: kept %d vectors, dropped the stale ones", path, len(have))
    return Embeddings.open(path, writable=True), set(have)


def embedding_dim(card) -> int:
    """The width of a classifier's ``embedding`` output (EmbeddingsError when it has none)."""
    for t in card.outputs:
        if t.name == "embedding":
            return int(t.shape[1])
    raise EmbeddingsError(f"{card.ref}: the model has no 'embedding' output")


def card_meta(card) -> dict[str, Any]:
    """What an embeddings file records about the model that made it."""
    return {"model": card.ref, "model_sha256": card.sha256}


def merge_sidecars(
    out: str | os.PathLike[str], parts: Sequence[str | os.PathLike[str]], rows: Sequence[dict[str, Any]]
) -> int | None:
    """Join the ``<part>.emb`` sidecars of merged scan outputs into ``<out>.emb`` (``mirtag merge``).

    Each merged row takes the vector stored under its row key in any part's
    sidecar; rows without one are left out (a later ``scan --embeddings auto``
    into ``out`` analyses them again). The result is written to a temporary file
    and renamed into place, so ``out`` may be one of the parts.

    Returns
    -------
    int or None
        Vectors written; None when no part has a sidecar (nothing is written).
    """
    sources = [p for p in (sidecar_for(part) for part in parts) if p.is_file()]
    if not sources:
        return None
    wanted = {row_key(r) for r in rows if r.get("status") == "ok"}
    target = sidecar_for(out)
    tmp = target.with_name(f".{target.name}.tmp")
    new = None
    written: set[tuple] = set()
    try:
        for src in sources:
            with Embeddings.open(src) as emb:
                if new is None:
                    new = Embeddings.create(tmp, emb.dim, {k: v for k, v in emb.meta.items() if k != "id"})
                elif (emb.dim, emb.meta.get("model_sha256")) != (new.dim, new.meta.get("model_sha256")):
                    raise EmbeddingsError(f"{src}: made by another model than {sources[0]}; not merged")
                for i in range(len(emb)):
                    k = emb.key(i)
                    rk = row_key(k)
                    if rk in wanted and rk not in written:
                        new.add(k, emb.vector(i))
                        written.add(rk)
        new.close()
    except BaseException:
        if new is not None:
            new.close()
        for p in (tmp, keys_path(tmp)):
            p.unlink(missing_ok=True)
        raise
    os.replace(keys_path(tmp), keys_path(target))
    os.replace(tmp, target)
    if len(written) < len(wanted):
        _LOGGER.warning("%s: %d merged rows have no vector in the parts' sidecars", target, len(wanted) - len(written))
    return len(written)
