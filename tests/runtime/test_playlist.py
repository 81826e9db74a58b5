"""The --where filter language, M3U8 writing and Navidrome rules, on hand-made rows."""

from __future__ import annotations

import json
import os

import pytest

from mirtag.runtime.labelmap import LabelMap
from mirtag.runtime.playlist import Entry, Filter, FilterError, labels_of, nsp_rules, select, write_m3u8


def row(path, genre_top, quadrant, music=0.95, duration=200.0, moods=("calm",), status="ok"):
    genres = {"Jazz": 0.1, "Pop/Rock": 0.1, "New Age": 0.1}
    genres.update({g: 0.8 for g in genre_top})
    return {
        "path": path,
        "path_b64": None,
        "status": status,
        "duration_s": duration,
        "heads": {
            "genre": {"probs": genres, "top": list(genre_top)},
            "quadrant": {
                "probs": {q: (0.7 if q == quadrant else 0.1) for q in ("Q1", "Q2", "Q3", "Q4")},
                "top": [quadrant],
            },
            "moods": {"probs": {"calm": 0.6, "happy": 0.2}, "top": list(moods)},
            "music": {"probs": {"music": music}, "top": ["music"]},
        },
    }


ROWS = [
    row("/m/a.flac", ["Jazz"], "Q4"),
    row("/m/b.flac", ["Jazz"], "Q1", moods=("happy",)),
    row("/m/c.flac", ["Pop/Rock"], "Q4", music=0.5),
    row("/m/d.flac", ["New Age"], "Q4", duration=60.0, moods=()),
    row("/m/e.flac", ["Jazz"], "Q4", status="error"),
]


def names(where):
    return [os.path.basename(r["path"]) for r in select(ROWS, where)]


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        ("quadrant=Q4 and genre=Jazz and music>0.9", ["a.flac"]),
        ("quadrant=q4 and not genre=jazz", ["c.flac", "d.flac"]),
        ("genre=Jazz or genre=Pop/Rock and music<0.6", ["a.flac", "b.flac", "c.flac"]),
        ("(genre=Jazz or genre=Pop/Rock) and music<0.6", ["c.flac"]),
        ('genre="New Age" and duration<=60', ["d.flac"]),
        ("mood=calm and genre.Jazz>=0.5", ["a.flac"]),
        ("mood!=calm", ["b.flac", "d.flac"]),
        ('path~"*/[ab].flac"', ["a.flac", "b.flac"]),
        ("genre~*rock*", ["c.flac"]),
    ],
)
def test_filter_selects_ok_rows(where, expect):
    assert names(where) == expect


def test_limit_and_no_filter():
    assert [os.path.basename(r["path"]) for r in select(ROWS, None, limit=2)] == ["a.flac", "b.flac"]


@pytest.mark.parametrize(
    ("where", "column", "says"),
    [
        ("quadrant=Q4 and genre Jazz", 23, "expected an operator"),
        ("quadrant=Q4 and", 16, "expected a field"),
        ("quadrant=Q4 Jazz", 13, "expected 'and', 'or' or the end"),
        ("colour=red", 1, "unknown field 'colour'"),
        ("genre=Jaz", 1, "genre has no label 'Jaz'"),
        ("genre>0.5", 1, "e.g. genre.Jazz>0.5"),
        ("quadrant>Q4", 10, "needs a number"),
        ('genre="Jazz', 7, "unclosed quote"),
        ("(genre=Jazz", 12, "expected ')'"),
        ("genre=Jazz & music>1", 12, "found '&'"),
    ],
)
def test_bad_syntax_is_one_line_pointing_at_the_token(where, column, says):
    with pytest.raises(FilterError) as info:
        Filter(where, labels_of(ROWS))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"column {column}:") and says in msg, msg


def test_m3u8_is_utf8_with_durations_and_relative_paths(tmp_path):
    lib = tmp_path / "Music" / "Jazz"
    lib.mkdir(parents=True)
    out = tmp_path / "Music" / "lists" / "calm.m3u8"
    entries = [Entry(str(lib / "Été à Paris.flac"), 201.6), Entry("/elsewhere/x.ogg", None, "X")]
    assert write_m3u8(out, entries) == 2
    text = out.read_bytes().decode("utf-8")
    assert text.splitlines() == [
        "#EXTM3U",
        "#EXTINF:202,Été à Paris",
        "../Jazz/Été à Paris.flac",
        "#EXTINF:-1,X",
        "/elsewhere/x.ogg",
    ]
    write_m3u8(out, entries, relative=False)
    assert str(lib / "Été à Paris.flac") in out.read_text(encoding="utf-8")


def test_navidrome_rules():
    labels = labels_of(ROWS)
    rules = nsp_rules(Filter("quadrant=Q4 and (genre=Jazz or mood=calm) and not genre=Pop/Rock and music>0.9", labels))
    assert rules == {
        "all": [
            {"is": {"mirtag_quadrant": "Q4"}},
            {"any": [{"is": {"genre": "Jazz"}}, {"is": {"mood": "calm"}}]},
            {"isNot": {"genre": "Pop/Rock"}},
            {"gt": {"mirtag_music": 0.9}},
        ]
    }
    renamed = nsp_rules(Filter("genre=Pop/Rock", labels), lambda head, label: label.replace("/", " "))
    assert renamed == {"all": [{"is": {"genre": "Pop Rock"}}]}
    json.dumps(renamed)
    # The default label map writes Pop/Rock as two genres: either one matches; "not" needs neither.
    names = LabelMap.load().names
    assert nsp_rules(Filter("genre=Pop/Rock", labels), names) == {
        "any": [{"is": {"genre": "Pop"}}, {"is": {"genre": "Rock"}}]
    }
    assert nsp_rules(Filter("genre!=Pop/Rock and mood=calm", labels), names) == {
        "all": [{"all": [{"isNot": {"genre": "Pop"}}, {"isNot": {"genre": "Rock"}}]}, {"is": {"mood": "calm"}}]
    }
    for bad in ('path~"*x*"', "genre.Jazz>0.5", "not (genre=Jazz or mood=calm)", "music>=0.9"):
        with pytest.raises(FilterError):
            nsp_rules(Filter(bad, labels))
