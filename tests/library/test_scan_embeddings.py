"""``mirtag scan --embeddings``: one vector per analysed track, keyed like its row, resumed with the rows."""

from __future__ import annotations

import json
import os

import numpy as np
from typer.testing import CliRunner

from mirtag.cli.main import app
from mirtag.runtime.embeddings import Embeddings, sidecar_for
from mirtag.runtime.rows import row_key
from tests.scanargs import scan_args
from tests.synth import music_like
from tests.library.conftest import make_library


def rows_of(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def scan(root, out, *extra):
    result = CliRunner().invoke(
        # --no-retry-errors: the broken file's error row stands, so the counts below are the audio files'
        app,
        scan_args(root, out, "--no-retry-errors", *extra),
    )
    assert result.exit_code == 0, result.output
    return result


def test_each_ok_row_has_one_vector_with_its_row_key(scanned):
    _, out, emb_file = scanned
    rows = rows_of(out)
    emb = Embeddings.open(emb_file)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6 and len(rows) == 7
    assert sorted(row_key(r) for r in ok) == sorted(row_key(k) for k in emb.key_records())
    assert emb.dim == 2 and emb.meta["model"].startswith("tiny")
    assert np.allclose(np.linalg.norm(emb.vectors.astype(np.float32), axis=1), 1.0, atol=1e-3)
    assert all("embedding" not in r for r in rows)


def test_resume_analyses_only_what_changed_and_keeps_one_vector_per_file(tmp_path):
    root = tmp_path / "lib"
    files = make_library(root, n=4)
    out = tmp_path / "tags.jsonl"
    scan(root, out, "--embeddings", "auto")
    emb_file = sidecar_for(out)
    first = Embeddings.open(emb_file)
    assert len(first) == 4
    first.close()
    result = scan(root, out, "--embeddings", "auto")
    assert "0 files to scan" in result.output
    # One file changes: only it is analysed again, and it keeps a single (new) vector.
    import soundfile as sf

    sf.write(files[0], music_like(22050, 5.0, seed=99), 22050, format="FLAC")
    result = scan(root, out, "--embeddings", "auto")
    assert "1 file to scan" in result.output
    emb = Embeddings.open(emb_file)
    assert len(emb) == 4
    rows = {r["path"]: r for r in rows_of(out)}
    assert {row_key(k) for k in emb.key_records()} == {row_key(r) for r in rows.values() if r["status"] == "ok"}
    assert emb.find(str(files[0])) is not None


def test_rows_without_vectors_are_analysed_again(tmp_path):
    root = tmp_path / "lib"
    make_library(root, n=3)
    out = tmp_path / "tags.jsonl"
    scan(root, out)  # no embeddings yet
    result = scan(root, out, "--embeddings", str(tmp_path / "v.emb"))
    assert "3 files to scan" in result.output  # the broken file's error row stands
    assert len(Embeddings.open(tmp_path / "v.emb")) == 3
    assert os.path.getsize(tmp_path / "v.emb") == 512 + 3 * 2 * 2


def test_merge_joins_the_shards_embeddings_and_a_scan_resumes_into_it(tmp_path):
    root = tmp_path / "lib"
    make_library(root, n=5)
    parts = [tmp_path / f"part{i}.jsonl" for i in (1, 2)]
    for i, part in enumerate(parts, 1):
        scan(root, part, "--shard", f"{i}/2", "--embeddings", "auto")
    sizes = [len(Embeddings.open(sidecar_for(p))) for p in parts]
    assert sum(sizes) == 5 and all(sizes)
    merged = tmp_path / "all.jsonl"
    result = CliRunner().invoke(app, ["merge", str(merged), *map(str, parts)])
    assert result.exit_code == 0, result.output
    emb = Embeddings.open(sidecar_for(merged))
    rows = rows_of(merged)
    assert {row_key(k) for k in emb.key_records()} == {row_key(r) for r in rows if r["status"] == "ok"}
    for p in parts:  # the same vectors
        part = Embeddings.open(sidecar_for(p))
        for i in range(len(part)):
            assert np.array_equal(emb.vector(emb.find(part.key(i)["path"])), part.vector(i))
    emb.close()
    result = scan(root, merged, "--embeddings", "auto")
    assert "0 files to scan" in result.output
