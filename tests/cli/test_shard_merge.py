"""``mirtag scan --shard I/N`` on a real library, then ``mirtag merge``: one row per file, refusals exit 2."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from mirtag.runtime.walk import iter_audio_files
from tests.scanargs import scan_args
from tests.cli.test_scan import build_library, read_jsonl, run_cli


def row_paths(rows) -> list[bytes]:
    import base64

    return [base64.b64decode(r["path_b64"]) if r["path_b64"] else os.fsencode(r["path"]) for r in rows]


@pytest.fixture(scope="module")
def shard_outputs(tmp_path_factory):
    """A library scanned as three shards (jsonl), from two different mount points of it."""
    base = tmp_path_factory.mktemp("shards")
    lib = base / "lib"
    build_library(lib, n_good=4)
    mount2 = base / "mount2"
    shutil.copytree(lib, mount2, symlinks=True)  # the "same NAS" seen under another path
    outs = []
    for i in (1, 2, 3):
        root = lib if i != 2 else mount2  # shard 2 runs on "another machine"
        out = base / f"part{i}.jsonl"
        r = run_cli(*scan_args(root, out, "--shard", f"{i}/3", "--quiet", "--time-limit", "60"))
        assert r.returncode == 0, r.stderr
        outs.append(out)
    return lib, mount2, outs


def test_shards_split_the_library_without_overlap_or_gaps(shard_outputs):
    lib, mount2, outs = shard_outputs
    rel = []
    for i, out in enumerate(outs):
        root = mount2 if i == 1 else lib
        rel.append({os.path.relpath(p, os.fsencode(root)) for p in row_paths(read_jsonl(out))})
    everything = {os.path.relpath(os.fsencode(p), os.fsencode(lib)) for p in iter_audio_files([lib])}
    assert set.union(*rel) == everything
    assert sum(len(r) for r in rel) == len(everything)
    assert sum(1 for r in rel if r) >= 2  # the fixture library really is split


def test_merge_joins_shards_into_one_row_per_file(shard_outputs, tmp_path):
    lib, _, outs = shard_outputs
    parts = [outs[0], outs[2]]
    merged = tmp_path / "all.jsonl"
    r = run_cli("merge", str(merged), *map(str, parts + parts[:1]))  # a part given twice: duplicates dropped
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(merged)
    want = [p for out in parts for p in row_paths(read_jsonl(out))]
    assert sorted(row_paths(rows)) == sorted(want)
    assert "duplicates dropped" in r.stderr
    # the merged output keeps the settings sidecar, so a later scan can resume into it
    assert json.loads((tmp_path / "all.jsonl.mirtag.json").read_text())["schema_version"] == 1
    again = run_cli(*scan_args(lib, merged, "--shard", "1/3", "--no-retry-errors"))  # error rows are otherwise retried
    assert again.returncode == 0, again.stderr
    assert "0 files to scan" in again.stderr


def test_merge_into_csv_and_an_ok_row_wins_over_an_error_row(shard_outputs, tmp_path):
    _, _, outs = shard_outputs
    rows = read_jsonl(outs[0])
    ok = next(r for r in rows if r["status"] == "ok")
    failed = dict(ok, status="error", error="timed out after 1 s", heads=None, duration_s=None, n_windows=None)
    earlier = tmp_path / "earlier.jsonl"
    earlier.write_text(json.dumps(failed) + "\n")
    merged = tmp_path / "all.csv"
    r = run_cli("merge", str(merged), str(earlier), str(outs[0]))
    assert r.returncode == 0, r.stderr
    with open(merged, newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert len(recs) == len(rows)
    mine = next(rec for rec in recs if rec["path"] == ok["path"])
    assert mine["status"] == "ok" and mine["genre_scores"], "the ok row, with its scores (its top list may be empty)"


def tamper(src: Path, dst: Path, **changes) -> Path:
    rows = read_jsonl(src)
    dst.write_text("".join(json.dumps({**r, **changes}) + "\n" for r in rows))
    return dst


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"model_sha256": "0" * 64}, "model sha256"),
        ({"coverage": "sample:3"}, "coverage"),
        ({"schema_version": 2}, "schema_version 2"),
    ],
)
def test_merge_refuses_parts_that_do_not_mean_the_same(shard_outputs, tmp_path, changes, reason):
    _, _, outs = shard_outputs
    bad = tamper(outs[2], tmp_path / "other.jsonl", **changes)
    merged = tmp_path / "all.jsonl"
    r = run_cli("merge", str(merged), str(outs[0]), str(bad))
    assert r.returncode == 2
    assert reason in r.stderr and "cannot merge" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not merged.exists()


def test_merge_refuses_other_settings_and_never_overwrites_a_stranger(shard_outputs, tmp_path):
    _, _, outs = shard_outputs
    other = tmp_path / "other.jsonl"
    shutil.copy(outs[2], other)
    (tmp_path / "other.jsonl.mirtag.json").write_text(
        json.dumps({"schema_version": 1, "top_k": 3, "min_confidence": None})
    )
    r = run_cli("merge", str(tmp_path / "m.jsonl"), str(outs[0]), str(other))
    assert r.returncode == 2 and "settings" in r.stderr
    existing = tmp_path / "keep.jsonl"
    existing.write_text("precious\n")
    r = run_cli("merge", str(existing), str(outs[0]))
    assert r.returncode == 2 and "--force" in r.stderr
    assert existing.read_text() == "precious\n"
    r = run_cli("merge", str(existing), str(outs[0]), "--force")
    assert r.returncode == 2 and existing.read_text() == "precious\n", "not mirtag's file: never replaced"
    r = run_cli("merge", str(tmp_path / "m.jsonl"), str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "missing.jsonl" in r.stderr


def test_a_shard_still_being_scanned_is_not_merged(shard_outputs, tmp_path):
    from mirtag.runtime.output import OutputLock

    _, _, outs = shard_outputs
    merged = tmp_path / "all.jsonl"
    with OutputLock(outs[2]):  # as a running `mirtag scan --out part3.jsonl` holds it
        r = run_cli("merge", str(merged), str(outs[0]), str(outs[2]))
    assert r.returncode == 2 and "being written" in r.stderr and not merged.exists()
    assert run_cli("merge", str(merged), str(outs[0]), str(outs[2])).returncode == 0


def test_path_map_gives_every_row_this_machines_paths_and_the_merged_output_resumes_here(shard_outputs, tmp_path):
    lib, mount2, outs = shard_outputs
    merged = tmp_path / "all.jsonl"
    r = run_cli("merge", str(merged), *map(str, outs), "--path-map", f"{mount2}={lib}")
    assert r.returncode == 0, r.stderr
    everything = sorted(os.fsencode(p) for p in iter_audio_files([lib]))
    assert sorted(row_paths(read_jsonl(merged))) == everything  # shard 2's rows now name lib's files
    again = run_cli(*scan_args(lib, merged, "--no-retry-errors"))
    assert again.returncode == 0, again.stderr
    assert "0 files to scan" in again.stderr
    bad = run_cli("merge", str(tmp_path / "x.jsonl"), str(outs[0]), "--path-map", "nothing-to-map")
    assert bad.returncode == 2 and "FROM=TO" in bad.stderr
