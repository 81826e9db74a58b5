"""``mirtag similar`` and ``mirtag playlist`` from a real scan's outputs (tiny model)."""

from __future__ import annotations

import json
import os

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from mirtag.cli.main import app
from mirtag.runtime.embeddings import Embeddings
from tests.library.conftest import TINY
from tests.synth import music_like


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_similar_of_an_indexed_track_lists_the_others_by_cosine(scanned, tmp_path):
    root, _, emb_file = scanned
    seed = root / "track 00.flac"
    result = invoke("similar", seed, "--embeddings", emb_file, "--n", "3", "--out", tmp_path / "like.m3u8")
    assert result.exit_code == 0, result.output
    lines = [ln.split("\t") for ln in result.stdout.splitlines()]
    assert len(lines) == 3 and all(p != str(seed) for _, p in lines)
    emb = Embeddings.open(emb_file)
    sims = emb.vectors.astype(np.float32) @ emb.vector(emb.find(str(seed)))
    order = [emb.key(int(i))["path"] for i in np.argsort(-sims) if emb.key(int(i))["path"] != str(seed)]
    assert [p for _, p in lines] == order[:3]
    assert [float(s) for s, _ in lines] == sorted((float(s) for s, _ in lines), reverse=True)
    m3u = (tmp_path / "like.m3u8").read_text(encoding="utf-8").splitlines()
    assert m3u[0] == "#EXTM3U" and len(m3u) == 7 and m3u[1].startswith("#EXTINF:")
    assert os.path.isfile(tmp_path / m3u[2]) and not os.path.isabs(m3u[2])  # relative to the playlist


def test_similar_of_a_file_outside_the_index_is_tagged_on_the_fly(scanned, tmp_path):
    _, _, emb_file = scanned
    outside = tmp_path / "new.wav"
    sf.write(outside, music_like(22050, 3.0, seed=42), 22050)
    result = invoke("similar", outside, "--embeddings", emb_file, "--n", "2", "--model", TINY, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    # Without the model that made the file, the shipped one is refused (another sha256).
    result = invoke("similar", outside, "--embeddings", emb_file, "--device", "cpu")
    assert result.exit_code == 1 and "pass that model with --model" in result.output


def test_similar_with_a_missing_seed_or_file_is_one_line(scanned, tmp_path):
    _, _, emb_file = scanned
    result = invoke("similar", tmp_path / "nope.flac", "--embeddings", emb_file)
    assert result.exit_code == 1 and "nope.flac: not in" in result.output
    result = invoke("similar", "x", "--embeddings", tmp_path / "none.emb")
    assert result.exit_code == 2 and "no such embeddings file" in result.output


def test_playlist_from_rows(scanned, tmp_path):
    root, out, _ = scanned
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ok = [r for r in rows if r["status"] == "ok"]
    q4 = sorted(r["path"] for r in ok if "Q4" in r["heads"]["quadrant"]["top"])
    result = invoke("playlist", out, "--where", "quadrant=Q4", "--out", tmp_path / "q4.m3u8")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "q4.m3u8").read_text(encoding="utf-8").splitlines()
    assert [os.path.normpath(tmp_path / p) for p in lines[2::2]] == q4
    secs = [int(ln.split(":")[1].split(",")[0]) for ln in lines[1::2]]
    assert secs == [round(r["duration_s"]) for r in sorted(ok, key=lambda r: r["path"]) if r["path"] in q4]
    result = invoke("playlist", out, "--out", tmp_path / "all.m3u8", "--limit", "2")
    assert result.exit_code == 0 and len((tmp_path / "all.m3u8").read_text().splitlines()) == 5
    # CSV rows work the same.
    csv_out = tmp_path / "tags.csv"
    assert (
        invoke("scan", root, "--out", csv_out, "--model", TINY, "--device", "cpu", "--workers", "1", "-q").exit_code
        == 0
    )
    assert invoke("playlist", csv_out, "--where", "quadrant=Q4", "--out", tmp_path / "q4csv.m3u8").exit_code == 0
    assert (tmp_path / "q4csv.m3u8").read_text(encoding="utf-8") == "\n".join(lines) + "\n"


def test_playlist_bad_filter_and_nsp(scanned, tmp_path):
    _, out, _ = scanned
    result = invoke("playlist", out, "--where", "quadrant=Q4 and genre jazz", "--out", tmp_path / "x.m3u8")
    assert result.exit_code == 2 and not (tmp_path / "x.m3u8").exists()
    assert "--where: column 23: expected an operator" in result.output and len(result.output.strip().splitlines()) == 1
    result = invoke(
        "playlist", out, "--where", "quadrant=Q4 and genre=jazz", "--format", "nsp", "--out", tmp_path / "calm.nsp"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "calm.nsp").read_text())
    assert doc["name"] == "calm" and doc["all"] == [{"is": {"mirtag_quadrant": "Q4"}}, {"is": {"genre": "jazz"}}]
