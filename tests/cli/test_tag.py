"""``mirtag tag FILE...``: per head, the decided labels (or the N best) with probabilities, for people."""

from __future__ import annotations

import re
from pathlib import Path

import soundfile as sf
from typer.testing import CliRunner

from mirtag.cli.main import app
from mirtag.runtime import Tagger
from tests.synth import music_like

TINY = Path(__file__).parents[1] / "fixtures" / "tiny"
runner = CliRunner()


def test_tag_prints_each_heads_labels_with_probabilities_and_reports_a_bad_file(tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, music_like(22050, 7.0, seed=3), 22050)
    (tmp_path / "broken.mp3").write_bytes(b"not audio at all")
    result = runner.invoke(
        app, ["tag", str(song), str(tmp_path / "broken.mp3"), "--model", str(TINY), "--device", "cpu"]
    )
    assert result.exit_code == 1, result.output  # one file failed
    tagger = Tagger.load(TINY, device="cpu")
    expected = tagger.tag_file(song)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{song}  (0:07, {expected.n_windows} windows, tiny@0.0.1)")
    quadrant = next(line for line in lines if line.strip().startswith("quadrant"))
    best = max(expected.heads["quadrant"], key=expected.heads["quadrant"].get)
    assert re.search(rf"quadrant\s+{best} \(.+\) {expected.heads['quadrant'][best]:.2f}$", quadrant)
    assert "broken.mp3" in result.stderr and "broken.mp3" not in result.stdout


def test_tag_top_n_shows_the_n_most_probable_labels(tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, music_like(22050, 4.0, seed=4), 22050)
    result = runner.invoke(app, ["tag", str(song), "--top", "2", "--model", str(TINY), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    genre = next(line for line in result.stdout.splitlines() if line.strip().startswith("genre"))
    assert len(re.findall(r"\d\.\d\d", genre)) == 2
