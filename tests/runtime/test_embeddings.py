"""The embeddings file: append, memory-mapped reads, exact nearest neighbours, torn tails, resume rewrite."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mirtag.runtime.embeddings import Embeddings, EmbeddingsError, keys_path, open_for_scan
from mirtag.runtime.rows import row_key


def key(i: int, **extra) -> dict:
    return {
        "path": f"/music/{i:05d}.flac",
        "size": 1000 + i,
        "mtime_ns": 7 * i,
        "model_sha256": "abc",
        "coverage": "full",
        **extra,
    }


def filled(path, vectors) -> Embeddings:
    emb = Embeddings.create(path, vectors.shape[1], {"model": "m@1", "model_sha256": "abc"})
    for i, v in enumerate(vectors):
        emb.add(key(i), v)
    emb.close()
    return Embeddings.open(path)


def test_round_trip_is_float16_unit_rows_with_keys(tmp_path, rng):
    x = rng.standard_normal((50, 16)).astype(np.float32)
    emb = filled(tmp_path / "a.emb", x)
    assert len(emb) == 50 and emb.dim == 16 and emb.meta["model"] == "m@1"
    assert emb.vectors.dtype == np.float16 and isinstance(emb.vectors, np.memmap)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.vectors.astype(np.float32), unit, atol=2e-3)
    assert emb.key(7)["path"] == "/music/00007.flac" and emb.key(7)["size"] == 1007
    assert emb.find("/music/00042.flac") == 42 and emb.find("/nope.flac") is None
    assert (tmp_path / "a.emb").stat().st_size == 512 + 50 * 16 * 2


def test_nearest_matches_brute_force_across_blocks(tmp_path, rng):
    x = rng.standard_normal((1000, 32)).astype(np.float32)
    emb = filled(tmp_path / "a.emb", x)
    q = rng.standard_normal(32).astype(np.float32)
    ref = emb.vectors.astype(np.float32) @ (q / np.linalg.norm(q))
    want = np.argsort(-ref, kind="stable")[:10]
    hits = emb.nearest(q, n=10, block=97)
    assert [h.index for h in hits] == list(want)
    np.testing.assert_allclose([h.score for h in hits], ref[want], rtol=1e-5)
    assert hits[0].path == f"/music/{want[0]:05d}.flac"
    # Seeds are left out; several seeds query their centroid.
    hits = emb.nearest(emb.vector(3), n=5, exclude=[3])
    assert 3 not in [h.index for h in hits] and len(hits) == 5
    assert emb.nearest(emb.vectors[[3, 4]], n=1, block=50)[0].index in (3, 4)


def test_query_of_wrong_width_is_an_error(tmp_path, rng):
    emb = filled(tmp_path / "a.emb", rng.standard_normal((3, 8)))
    with pytest.raises(EmbeddingsError, match="dimensions"):
        emb.nearest(np.ones(9))


def test_torn_tail_is_ignored_then_cut_on_append(tmp_path, rng):
    path = tmp_path / "a.emb"
    filled(path, rng.standard_normal((5, 8))).close()
    with open(path, "ab") as fh:
        fh.write(b"\x01\x02\x03")  # half a vector
    with open(keys_path(path), "ab") as fh:
        fh.write(b'{"path":"/torn')  # half a key line
    assert len(Embeddings.open(path)) == 5
    emb = Embeddings.open(path, writable=True)
    emb.add(key(5), np.ones(8))
    emb.close()
    emb = Embeddings.open(path)
    assert len(emb) == 6 and emb.key(5)["path"] == "/music/00005.flac"
    # A vector without its key line (killed between the two writes) is not counted.
    with open(path, "ab") as fh:
        fh.write(np.ones(8, "<f2").tobytes())
    assert len(Embeddings.open(path)) == 6


def test_not_an_embeddings_file(tmp_path):
    (tmp_path / "x.emb").write_text("path,status\n")
    with pytest.raises(EmbeddingsError, match="not a mirtag embeddings file"):
        Embeddings.open(tmp_path / "x.emb")
    with pytest.raises(EmbeddingsError, match="not overwriting"):
        open_for_scan(tmp_path / "x.emb", 8, {"model_sha256": "abc"}, [])


def test_resume_keeps_the_vectors_of_kept_rows_only(tmp_path, rng):
    path = tmp_path / "a.emb"
    x = rng.standard_normal((6, 8)).astype(np.float32)
    filled(path, x).close()
    before = path.stat().st_mtime_ns
    emb, have = open_for_scan(path, 8, {"model_sha256": "abc"}, [key(i) for i in range(6)])
    emb.close()
    assert have == {row_key(key(i)) for i in range(6)} and path.stat().st_mtime_ns == before  # nothing rewritten
    changed = [key(i) for i in range(6) if i != 2] + [key(2, size=1)]  # file 2 changed since
    emb, have = open_for_scan(path, 8, {"model_sha256": "abc"}, changed)
    emb.close()
    emb = Embeddings.open(path)
    assert len(emb) == 5 and emb.find("/music/00002.flac") is None and row_key(key(2, size=1)) not in have
    np.testing.assert_allclose(emb.vector(emb.find("/music/00003.flac")), x[3] / np.linalg.norm(x[3]), atol=2e-3)
    # Another model: nothing is kept.
    emb, have = open_for_scan(path, 8, {"model_sha256": "other"}, changed)
    emb.close()
    assert have == set() and len(Embeddings.open(path)) == 0


def test_a_key_file_from_another_generation_is_refused(tmp_path, rng):
    a, b = tmp_path / "a.emb", tmp_path / "b.emb"
    filled(a, rng.standard_normal((3, 8))).close()
    filled(b, rng.standard_normal((3, 8))).close()
    keys_path(a).write_bytes(keys_path(b).read_bytes())
    with pytest.raises(EmbeddingsError, match="does not belong"):
        Embeddings.open(a)


def test_find_takes_the_last_vector_of_a_path_and_any_file_name(tmp_path):
    emb = Embeddings.create(tmp_path / "a.emb", 4, {"model_sha256": "abc"})
    odd = os.fsdecode(b"/m/caf\xe9 \xff.flac")  # not UTF-8: kept through surrogateescape
    emb.add(key(0, path="/m/a.flac"), np.ones(4))
    emb.add(key(1, path=odd), np.ones(4))
    emb.add(key(2, path="/m/a.flac"), -np.ones(4))
    emb.add(key(3, path='/m/"quoted", name.flac'), np.ones(4))
    emb.close()
    emb = Embeddings.open(tmp_path / "a.emb")
    assert emb.find("/m/a.flac") == 2 and emb.find(odd) == 1 and emb.find('/m/"quoted", name.flac') == 3
    assert emb.key(1)["path_b64"] and emb.find("/m/a.fla") is None
