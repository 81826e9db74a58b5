"""mirtag.runtime.tagwrite on real files, judged by independent readers (TagLib, ffprobe, ffmpeg's md5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mirtag.runtime.card import resolve_model
from mirtag.runtime.labelmap import LabelMap, LabelMapError
from mirtag.runtime.tagfields import FIELDS, markdown_table
from mirtag.runtime.tagfile import NoRoom, TagFile, refuse_growth
from mirtag.runtime.tagjournal import read_journal
from mirtag.runtime.tagwrite import WriteOptions, read_scan_rows, untag, write_tags
from tests.tagfiles import (
    COVER,
    ffmpeg_md5,
    ffprobe_tags,
    make_aiff,
    make_ffmpeg,
    make_mp3,
    make_vorbis,
    mutagen_dump,
    needs_ffmpeg,
    random_bytes_md5,
    scan_row,
    taglib_tags,
    write_rows,
)

CARD = resolve_model()
GENRE = {"Pop/Rock": 0.9, "Jazz": 0.7}  # both above the card's thresholds; Pop/Rock splits into two names
assert all(p >= CARD.head("genre").threshold(label) for label, p in GENRE.items()), "GENRE must pass the card"
MOODS = {"calm": 0.9, "dreamy": 0.6}


@pytest.fixture
def library(tmp_path):
    """One file per container; mp3 v2.3 and flac already have a genre."""
    lib = tmp_path / "lib"
    lib.mkdir()
    files = {
        "mp3v23": make_mp3(lib / "v23.mp3", 3, genre="Rock"),
        "mp3v24": make_mp3(lib / "v24.mp3", 4, genre=None),
        "flac": make_vorbis(lib / "a.flac", "FLAC", genre="Jazz"),
        "ogg": make_vorbis(lib / "b.ogg", "OGG", "VORBIS"),
        "opus": make_vorbis(lib / "c.opus", "OGG", "OPUS"),
        "aiff": make_aiff(lib / "d.aiff"),
    }
    from tests.tagfiles import FFMPEG

    if FFMPEG:
        files["m4a"] = make_ffmpeg(lib / "e.m4a", "aac")
        files["wma"] = make_ffmpeg(lib / "f.wma", "wmav2")
    return files


def rows_for(tmp_path: Path, files: dict[str, Path], **kw) -> Path:
    return write_rows(
        tmp_path / "tags.jsonl", [scan_row(p, CARD, genre=GENRE, moods=MOODS, **kw) for p in files.values()]
    )


@needs_ffmpeg
def test_apply_writes_every_container_and_independent_readers_agree(tmp_path, library):
    md5 = {k: ffmpeg_md5(p) for k, p in library.items()}
    before = {k: mutagen_dump(p) for k, p in library.items()}
    rows = rows_for(tmp_path, library)
    results = {Path(r.path).name: r for r in write_tags(rows, WriteOptions(), apply=True)}
    assert {r.status for r in results.values()} == {"written"}, {k: (r.status, r.reason) for k, r in results.items()}
    for key, path in library.items():
        assert ffmpeg_md5(path) == md5[key], f"{key}: decoded audio changed"
        tl = taglib_tags(path)
        if key == "mp3v23":
            # fill keeps the user's genre; v2.3 stays v2.3 with TXXX:MOOD joined by "; "
            assert tl["GENRE"] == ["Rock"]
            assert tl["MOOD"] == ["calm; dreamy"]
            dump = mutagen_dump(path)
            assert dump["_version"][:2] == (2, 3)
            assert "TMOO" not in dump and dump["TXXX:MOOD"] == ["calm; dreamy"]
            assert dump["TSOP"] == ["ACDC"] and dump["TYER"] == ["1979"] and dump["TPE1"] == ["AC/DC"]
        elif key == "flac":
            assert tl["GENRE"] == ["Jazz"]  # fill: an existing GENRE is kept
            assert tl["MOOD"] == ["calm", "dreamy"]
        else:
            assert sorted(tl["GENRE"]) == ["Jazz", "Pop", "Rock"], key
            assert sorted(tl["MOOD"]) == ["calm", "dreamy"], key
        probe = ffprobe_tags(path)
        if key == "wma":  # TagLib's property map leaves out custom ASF attributes; ffprobe shows them
            assert probe["mirtag_quadrant"] == "Q1" and probe["mirtag_model"] == CARD.ref
        else:
            assert tl["MIRTAG_QUADRANT"] == ["Q1"] and tl["MIRTAG_MUSIC"] == ["0.97"], key
            assert tl["MIRTAG_MODEL"] == [CARD.ref], key
        assert tl["ARTIST"], f"{key}: the artist tag was lost"
        assert probe.get("genre", "").split(";")[0].strip() in ("Rock", "Jazz", "Pop"), (key, probe)
        assert "happy/excited" not in str(tl)  # quadrant descriptions never go into MOOD
    ours = {key.lower() for fld in FIELDS for key in fld.keys.values()}
    for key, path in library.items():  # every other tag (and the ID3 version) is as it was
        after = mutagen_dump(path)
        others = {k: v for k, v in after.items() if k.lower() not in ours}
        assert others == {k: v for k, v in before[key].items() if k.lower() not in ours}, key
        assert others, key  # at least the artist: the check compares something
    assert mutagen_dump(library["mp3v24"])["APIC:cover"] == COVER
    assert mutagen_dump(library["mp3v23"])["APIC:cover"] == COVER
    assert mutagen_dump(library["flac"])["_pictures"] == [COVER]
    assert mutagen_dump(library["mp3v24"])["_version"][:2] == (2, 4)
    assert mutagen_dump(library["mp3v24"])["TMOO"] == ["calm", "dreamy"]


@needs_ffmpeg
def test_untag_restores_exactly_what_was_there(tmp_path, library):
    before = {k: mutagen_dump(p) for k, p in library.items()}
    md5 = {k: ffmpeg_md5(p) for k, p in library.items()}
    rows = rows_for(tmp_path, library)
    list(write_tags(rows, WriteOptions(policy="merge"), apply=True))
    assert all(mutagen_dump(p) != before[k] for k, p in library.items())
    journal = tmp_path / "tags.jsonl.tagjournal.jsonl"
    dry = list(untag(journal))
    assert {r.status for r in dry} == {"would write"}
    assert all(mutagen_dump(p) != before[k] for k, p in library.items())  # a dry run changes nothing
    done = list(untag(journal, apply=True))
    assert {r.status for r in done} == {"written"}, [(r.path, r.reason) for r in done]
    for k, p in library.items():
        assert mutagen_dump(p) == before[k], k
        assert ffmpeg_md5(p) == md5[k], k
    # undone files are spent: a second untag has nothing to do
    assert list(untag(journal, apply=True)) == []


def test_dry_run_changes_nothing_and_a_second_apply_writes_nothing(tmp_path):
    f = make_vorbis(tmp_path / "a.flac", "FLAC")
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(f, CARD, genre=GENRE, moods=MOODS)])
    digest, mtime = random_bytes_md5(f), os.stat(f).st_mtime_ns
    (res,) = write_tags(rows, WriteOptions())
    assert res.status == "would write"
    assert res.changes["genres"] == (None, ["Pop", "Rock", "Jazz"])
    assert res.changes["moods"] == (None, ["calm", "dreamy"])
    assert random_bytes_md5(f) == digest and os.stat(f).st_mtime_ns == mtime
    assert not (tmp_path / "t.jsonl.tagjournal.jsonl").exists()
    (res,) = write_tags(rows, WriteOptions(), apply=True)
    assert res.status == "written"
    mtime = os.stat(f).st_mtime_ns
    (res,) = write_tags(rows, WriteOptions(), apply=True)  # rows were updated with the new size/mtime
    assert res.status == "unchanged" and os.stat(f).st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("policy", "expect"),
    [
        ("fill", ["jazz"]),
        ("merge", ["jazz", "Pop", "Rock"]),  # the file's values first; "Jazz" is already there as "jazz"
        ("replace", ["Pop", "Rock", "Jazz"]),
    ],
)
def test_policies(tmp_path, policy, expect):
    f = make_vorbis(tmp_path / "a.flac", "FLAC", genre="jazz")
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(f, CARD, genre=GENRE)])
    list(write_tags(rows, WriteOptions(policy=policy, heads=("genre",)), apply=True))
    assert taglib_tags(f)["GENRE"] == expect


def test_floors_top_k_and_not_music(tmp_path):
    a = make_vorbis(tmp_path / "a.flac", "FLAC")
    b = make_vorbis(tmp_path / "b.flac", "FLAC")
    rows = write_rows(
        tmp_path / "t.jsonl",
        [
            scan_row(a, CARD, genre={"Jazz": 0.5, "Blues": 0.4, "Latin": 0.3}, moods={"calm": 0.02}),
            scan_row(b, CARD, genre=GENRE, moods=MOODS, music=0.1, warning="not music"),
        ],
    )
    ra, rb = write_tags(rows, WriteOptions(min_confidence=0.35, top_k=1))
    assert ra.changes["genres"] == (None, ["Jazz"])  # top-k 1 of the two above 0.35
    assert "moods" not in ra.changes  # nothing above the floor: nothing written for the head
    assert "genres" not in rb.changes and "moods" not in rb.changes and "mirtag_quadrant" not in rb.changes
    assert rb.changes["mirtag_music"] == (None, ["0.10"])
    # by default the card's thresholds and cap (as the scan's decisions): Blues and Latin pass, Jazz is first
    thr = CARD.head("genre").threshold("Blues")
    cap = CARD.head("genre").max_labels
    rows = write_rows(
        tmp_path / "t2.jsonl",
        [scan_row(a, CARD, genre={"Jazz": 0.9, "Blues": thr + 0.05, "Latin": thr + 0.01, "Rap": thr - 0.01})],
    )
    (ra,) = write_tags(rows, WriteOptions())
    assert ra.changes["genres"] == (None, ["Jazz", "Blues", "Latin"][:cap])


def test_in_place_when_padding_allows_else_a_verified_copy(tmp_path):
    roomy = make_mp3(tmp_path / "roomy.mp3", 4, padding=4096)
    tight = make_mp3(tmp_path / "tight.mp3", 4, padding=0)
    size = os.stat(roomy).st_size
    ino = {p: os.stat(p).st_ino for p in (roomy, tight)}
    # the padding callback aborts before any byte changes
    tf = TagFile(str(tight))
    tf.set("TMOO", ["calm"] * 50)
    digest = random_bytes_md5(tight)
    with pytest.raises(NoRoom):
        tf.save(padding=refuse_growth)
    assert random_bytes_md5(tight) == digest
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(p, CARD, genre=GENRE, moods=MOODS) for p in (roomy, tight)])
    r1, r2 = write_tags(rows, WriteOptions(), apply=True)
    assert (r1.method, r2.method) == ("in place", "copy")
    assert os.stat(roomy).st_ino == ino[roomy] and os.stat(roomy).st_size == size
    assert os.stat(tight).st_ino != ino[tight]
    assert not list(tmp_path.glob(".*mirtag-tmp*"))
    journal = read_journal(tmp_path / "t.jsonl.tagjournal.jsonl")
    assert [r["op"] for r in journal] == ["begin", "done", "begin", "done"]
    assert journal[0]["old"]["TMOO"] is None and journal[0]["new"]["TMOO"] == ["calm", "dreamy"]
    assert journal[0]["audio_md5"].startswith("pcm:")
    rows = write_rows(tmp_path / "t2.jsonl", [scan_row(roomy, CARD, moods={"calm": 0.9})])
    (r,) = write_tags(rows, WriteOptions(policy="replace", in_place=False), apply=True)
    assert r.method == "copy" and os.stat(roomy).st_ino != ino[roomy]  # --no-in-place: always a verified copy


def test_skips_with_reasons(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    linked = make_vorbis(lib / "linked.flac", "FLAC")
    os.link(linked, tmp_path / "other-name.flac")
    changed = make_vorbis(lib / "changed.flac", "FLAC")
    wav = lib / "w.wav"
    import soundfile as sf

    from tests.synth import music_like

    sf.write(wav, music_like(22050, 1.0), 22050)
    ro = make_vorbis(lib / "ro.flac", "FLAC")
    rows = [scan_row(p, CARD, genre=GENRE) for p in (linked, changed, wav, ro)]
    rows.append(dict(rows[0], path=str(lib / "failed.flac"), status="error", heads=None))
    write_rows(tmp_path / "t.jsonl", rows)
    with open(changed, "ab") as fh:
        fh.write(b"\0")  # changed since the scan
    os.chmod(ro, 0o444)
    before = {p: random_bytes_md5(p) for p in (linked, changed, wav, ro)}
    res = {Path(r.path).name: r for r in write_tags(tmp_path / "t.jsonl", WriteOptions(), apply=True)}
    assert res["linked.flac"].status == "skipped" and "hard links" in res["linked.flac"].reason
    assert res["changed.flac"].status == "skipped" and "changed since it was scanned" in res["changed.flac"].reason
    assert res["w.wav"].status == "skipped" and "--wav" in res["w.wav"].reason
    assert res["ro.flac"].status == "error" and "read-only" in res["ro.flac"].reason
    assert res["failed.flac"].status == "skipped"
    assert {p: random_bytes_md5(p) for p in before} == before
    res = {
        Path(r.path).name: r
        for r in write_tags(tmp_path / "t.jsonl", WriteOptions(wav=True, allow_hardlinks=True), apply=True)
    }
    assert res["w.wav"].status == "written" and taglib_tags(wav)["GENRE"] == ["Pop", "Rock", "Jazz"]
    assert res["linked.flac"].status == "written"


def test_csv_rows_and_row_update(tmp_path):
    """CSV scan output: scores parsed from the *_scores columns; written rows get the new size/mtime."""
    import csv

    from mirtag.runtime import rows as rows_mod

    f = make_vorbis(tmp_path / "a.flac", "FLAC")
    row = scan_row(f, CARD, genre=GENRE, moods=MOODS)
    for h in row["heads"].values():
        h["top"] = [max(h["probs"], key=h["probs"].get)]
    out = tmp_path / "t.csv"
    w = rows_mod.RowWriter(str(out), "csv", [h.name for h in CARD.heads])
    w.write(row)
    w.close()
    (res,) = write_tags(out, WriteOptions(), apply=True)
    assert res.status == "written" and res.changes["genres"][1] == ["Pop", "Rock", "Jazz"]
    with open(out, newline="") as fh:
        (rec,) = list(csv.DictReader(fh))
    st = os.stat(f)
    assert (int(rec["size"]), int(rec["mtime_ns"])) == (st.st_size, st.st_mtime_ns)
    assert rec["genre_scores"] and rec["path"] == str(f)
    assert read_scan_rows(out)[0]["size"] == str(st.st_size)


def test_label_map(tmp_path):
    m = LabelMap.load()
    assert m.apply("genre", ["Pop/Rock", "International"]) == ["Pop", "Rock", "World"]
    user = tmp_path / "map.toml"
    user.write_text('[genre]\n"Pop/Rock" = "Rock"\n"Jazz" = []\n[moods]\n"calm" = "Calm"\n')
    m = LabelMap.load(user)
    assert m.apply("genre", ["Pop/Rock", "Jazz", "Blues"]) == ["Rock", "Blues"]
    assert m.apply("moods", ["calm", "dreamy"]) == ["Calm", "dreamy"]
    assert m.apply("tags", ["a/b", "c"]) == ["c"]  # an unmapped name players would split is not written
    user.write_text('[genre]\n"Jazz" = "Jazz/Blues"\n')
    with pytest.raises(LabelMapError, match="players split"):
        LabelMap.load(user)


def test_readme_holds_the_field_table():
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme


def test_include_exclude(tmp_path):
    a = make_vorbis(tmp_path / "keep.flac", "FLAC")
    b = make_vorbis(tmp_path / "drop.flac", "FLAC")
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(p, CARD, genre=GENRE) for p in (a, b)])
    ra, rb = write_tags(rows, WriteOptions(include=("*.flac",), exclude=("drop*",)))
    assert ra.status == "would write" and (rb.status, rb.reason) == ("skipped", "excluded")


def test_bad_files_are_one_line_errors_in_the_summary_and_the_journal(tmp_path):
    good = make_vorbis(tmp_path / "good.flac", "FLAC")
    fake = tmp_path / "fake.flac"
    fake.write_bytes(b"fLaC" + bytes(range(256)) * 8)  # a FLAC signature and garbage after it
    unknown = tmp_path / "noise.dat"
    unknown.write_bytes(bytes(4096))  # no container mutagen knows
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(p, CARD, genre=GENRE) for p in (fake, unknown, good)])
    rf, ru, rg = write_tags(rows, WriteOptions(), apply=True)
    assert rf.status == "error" and "\n" not in rf.reason and rf.reason
    assert ru.status == "error" and "unsupported container" in ru.reason
    assert rg.status == "written"
    ops = [(Path(r["path"]).name, r["op"]) for r in read_journal(tmp_path / "t.jsonl.tagjournal.jsonl")]
    assert ops == [("fake.flac", "error"), ("noise.dat", "error"), ("good.flac", "begin"), ("good.flac", "done")]


def test_id3v24_option_and_id3v1_files(tmp_path):
    from mutagen.id3 import ID3

    v23 = make_mp3(tmp_path / "v23.mp3", 3, genre=None, padding=4096)
    v1 = make_mp3(tmp_path / "v1.mp3", 4, genre=None, padding=4096)
    ID3(v1).save(v1, v1=2)  # add an ID3v1 tag: a save then writes two places, so never in place
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(p, CARD, genre=GENRE, moods=MOODS) for p in (v23, v1)])
    r23, r1 = write_tags(rows, WriteOptions(id3v24=True), apply=True)
    assert r1.method == "copy" and r23.status == "written"
    dump = mutagen_dump(v23)
    assert dump["_version"][:2] == (2, 4) and dump["TMOO"] == ["calm", "dreamy"]
    assert "TYER" not in dump and str(dump["TDRC"][0]) == "1979"  # upgraded, not copied as a v2.3 frame
    with open(v1, "rb") as fh:
        fh.seek(-128, os.SEEK_END)
        assert fh.read(3) == b"TAG"  # the ID3v1 tag is still there


def test_json_scan_output_rows_are_updated(tmp_path):
    import json

    f = make_vorbis(tmp_path / "a.flac", "FLAC")
    out = tmp_path / "t.json"
    out.write_text(json.dumps([scan_row(f, CARD, genre=GENRE)]))
    (res,) = write_tags(out, WriteOptions(), apply=True)
    assert res.status == "written"
    (row,) = json.loads(out.read_text())
    assert (row["size"], row["mtime_ns"]) == (os.stat(f).st_size, os.stat(f).st_mtime_ns)
    assert row["heads"]["genre"]["probs"]["Jazz"] == GENRE["Jazz"]


def test_jobs_keep_row_order_and_one_journal(tmp_path):
    files = [make_vorbis(tmp_path / f"{i}.flac", "FLAC") for i in range(5)]
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(p, CARD, genre=GENRE) for p in files])
    results = list(write_tags(rows, WriteOptions(), apply=True, jobs=3))
    assert [r.path for r in results] == [str(p) for p in files]
    assert {r.status for r in results} == {"written"}
    recs = read_journal(tmp_path / "t.jsonl.tagjournal.jsonl")
    assert sorted((r["path"], r["op"]) for r in recs) == sorted((str(p), op) for p in files for op in ("begin", "done"))


def test_ogg_with_a_multi_page_comment_header_is_never_written_in_place(tmp_path):
    """mutagen rewrites an Ogg comment header page by page: when it spans pages, only a verified copy is safe."""
    import base64

    import mutagen
    from mutagen.flac import Picture

    big = make_vorbis(tmp_path / "big.ogg", "OGG", "VORBIS")
    f = mutagen.File(big)
    pic = Picture()
    pic.type, pic.mime, pic.data = 3, "image/png", COVER * 100  # ~100 KB: the header spans several pages
    f["METADATA_BLOCK_PICTURE"] = [base64.b64encode(pic.write()).decode("ascii")]
    f.save()
    small = make_vorbis(tmp_path / "small.ogg", "OGG", "VORBIS")
    assert not TagFile(str(big)).one_write and TagFile(str(small)).one_write
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(p, CARD, genre=GENRE, moods=MOODS) for p in (big, small)])
    list(write_tags(rows, WriteOptions(), apply=True))  # the first write adds padding to both
    # a floor between Jazz and Pop/Rock drops Jazz: both files change
    rb, rs = write_tags(rows, WriteOptions(policy="replace", heads=("genre",), min_confidence=0.8), apply=True)
    assert (rb.method, rs.method) == ("copy", "in place")
    assert mutagen.File(big)["METADATA_BLOCK_PICTURE"] == f["METADATA_BLOCK_PICTURE"]


def test_fill_counts_a_mood_under_the_other_id3_key(tmp_path):
    from mutagen.id3 import ID3, TXXX

    f = make_mp3(tmp_path / "a.mp3", 4, genre=None, padding=4096)
    tags = ID3(f)
    tags.add(TXXX(encoding=3, desc="MOOD", text=["Melancholic"]))  # as some taggers write it in v2.4
    tags.save(f)
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(f, CARD, genre=GENRE, moods=MOODS)])
    (res,) = write_tags(rows, WriteOptions())
    assert "moods" not in res.changes and "genres" in res.changes
    (res,) = write_tags(rows, WriteOptions(policy="merge"))
    assert res.changes["moods"] == (None, ["calm", "dreamy"])  # merge and replace write TMOO as usual


def test_a_symlink_stays_a_link(tmp_path):
    target = make_mp3(tmp_path / "real.mp3", 4, genre=None, padding=0)  # no room: the copy path
    link = tmp_path / "link.mp3"
    link.symlink_to(target)
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(link, CARD, genre=GENRE, moods=MOODS)])
    (res,) = write_tags(rows, WriteOptions(), apply=True)
    assert res.status == "written" and res.method == "copy"
    assert link.is_symlink() and taglib_tags(target)["MOOD"] == ["calm", "dreamy"]


def test_rows_wait_for_no_scan_a_locked_output_keeps_its_rows(tmp_path):
    """A scan holding the output's lock: the write stands, the rows are left to that scan (never raced)."""
    from mirtag.runtime.output import OutputLock

    f = make_vorbis(tmp_path / "a.flac", "FLAC")
    rows = write_rows(tmp_path / "t.jsonl", [scan_row(f, CARD, genre=GENRE)])
    before = rows.read_text()
    with OutputLock(rows):
        (res,) = write_tags(rows, WriteOptions(), apply=True)
    assert res.status == "written" and rows.read_text() == before
    (res,) = write_tags(rows, WriteOptions(), apply=True)  # the journal proves the change was ours
    assert res.status == "unchanged"
    assert rows.read_text() != before  # and this run updated the row


def test_embedders_resume_survives_writes(tmp_path):
    """runtime.scan.scan(out=..., resume=True) -> write_tags(apply) -> scan again: nothing is analysed."""
    from mirtag.runtime.scan import ScanSettings, scan

    tiny = Path(__file__).parents[1] / "fixtures" / "tiny"
    lib = tmp_path / "lib"
    lib.mkdir()
    files = [make_vorbis(lib / "a.flac", "FLAC"), make_mp3(lib / "b.mp3", 3, genre=None)]
    out = tmp_path / "tags.jsonl"
    settings = ScanSettings(model=tiny, workers=1)
    assert len(list(scan([lib], settings, out=out))) == 2
    written = list(write_tags(out, WriteOptions(model=tiny, min_confidence=0.0), apply=True))
    assert [r.status for r in written] == ["written", "written"]
    totals = []
    assert list(scan([lib], settings, out=out, progress=lambda done, total, row: totals.append(total))) == []
    assert totals == [0]
    assert all(taglib_tags(f)["MIRTAG_MODEL"][0].startswith("tiny@") for f in files)


def test_a_tags_head_goes_to_mirtag_tags(tmp_path):
    """Rows with a `tags` head (the distilled model's): MIRTAG_TAGS, best first, floors and cap applied."""
    f = make_vorbis(tmp_path / "a.flac", "FLAC")
    row = scan_row(f, CARD, genre=GENRE)
    row["heads"]["tags"] = {"probs": {"guitar": 0.9, "male vocals": 0.7, "piano": 0.2, "rock/pop": 0.8}, "top": []}
    rows = write_rows(tmp_path / "t.jsonl", [row])
    (res,) = write_tags(rows, WriteOptions(heads=("tags",)))
    # not in this card: the 0.5 floor; "rock/pop" would be split by players and is not written
    assert res.changes["mirtag_tags"] == (None, ["guitar", "male vocals"])
    assert "genres" not in res.changes
    (res,) = write_tags(rows, WriteOptions(heads=("tags",), min_confidence=0.1, top_k=3))
    assert res.changes["mirtag_tags"] == (None, ["guitar", "male vocals", "piano"])
