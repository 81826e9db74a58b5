"""A small generated library scanned once with the tiny model (rows + embeddings), shared by the library tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from mirtag.cli.main import app
from tests.scanargs import scan_args
from tests.synth import music_like

TINY = str(Path(__file__).parents[1] / "fixtures" / "tiny")


def make_library(root: Path, n: int = 6) -> list[Path]:
    """n short tracks (flac/ogg/wav) of different synthetic music plus one file that is not audio."""
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        ext, fmt = [("flac", "FLAC"), ("ogg", "OGG"), ("wav", "WAV")][i % 3]
        p = root / ("sub" if i % 2 else "") / f"track {i:02d}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, music_like(22050, 2.0 + i, seed=i), 22050, format=fmt)
        files.append(p)
    (root / "broken.flac").write_text("not audio")
    return files


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """(library root, rows .jsonl, embeddings file) from one tiny-model scan."""
    root = tmp_path_factory.mktemp("lib")
    make_library(root)
    out = root.parent / f"{root.name}-tags.jsonl"
    emb = root.parent / f"{root.name}-tags.emb"
    result = CliRunner().invoke(app, scan_args(root, out, "-q", "--embeddings", str(emb)))
    assert result.exit_code == 0, result.output
    return root, out, emb
