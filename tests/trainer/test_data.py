"""mirtag.trainer.data: readers, splits, targets, noise mixing and the feature cache (numpy only, no torch)."""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirtag.runtime.audio import load
from mirtag.runtime.card import FrontendConfig
from mirtag.runtime.errors import DecodeError, MirtagError, ParameterError
from mirtag.runtime.frontend import Frontend
from mirtag.trainer import data as D
from tests.conftest import music_like

SR = 22050
# The real data: $MIRTAG_DATA, else shared/data beside the checkout (the project's layout).
REAL = Path(os.environ.get("MIRTAG_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(int(SR * seconds))).astype(np.float32)


# 4Q-like artists: several clips per artist, "The Beatles" / "Beatles" and a
# "feat." credit that must join their main artist's group.
ARTISTS = [
    "The Beatles",
    "Beatles",
    "Björk",
    "Bjork feat. Thom Yorke",
    "Miles Davis",
    "Miles Davis & John Coltrane",
    "Leonard Feather",
    "Kenny G",
    "Kenny G",
    "Kenny G",
    "Celia Cruz",
    "The Prodigy",
    "Prodigy, The",
]
GENRE_POOL = ["Pop/Rock", "Jazz", "Electronic", "Latin", "Vocal"]
MOOD_POOL = ["happy", "sad", "tense", "calm", "witty", "fiery"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A tiny data root with the real datasets' layouts; audio only where the cache tests need it."""
    root = tmp_path_factory.mktemp("data")
    rows = []
    for i in range(48):
        q = D.QUADRANTS[i % 4]
        artist = ARTISTS[i % len(ARTISTS)] if i < 26 else f"Solo Artist {i}"
        genres = ";".join(GENRE_POOL[j] for j in range(5) if (i >> j) & 1) or "Pop/Rock"
        moods = ";".join(MOOD_POOL[j] for j in range(6) if (i * 7 >> j) & 1) or "calm"
        rows.append([f"4q/audio/{q}/MT{i:010d}.ogg", f"MT{i:010d}", q, artist, f"Song {i}", genres, moods])
    _write_csv(
        root / "4q" / "4q.csv", ["file", "song_id", "quadrant", "artist", "title", "allmusic_genres", "moods"], rows
    )
    emo_header = ["file", "track_id", "genre", "n_annotators", *(f"frac_{e}" for e in D.EMOTIONS)]
    emo_rows = []
    for i in range(40):
        g = ["classical", "electronic", "pop", "rock"][i % 4]
        fracs = [round(((i + k) % 10) / 10, 3) for k in range(9)]
        emo_rows.append([f"emotify/audio/{g}/{i}.ogg", i, g, 20, *fracs])
    _write_csv(root / "emotify" / "emotify.csv", emo_header, emo_rows)
    esc_rows = []
    for c in range(50):
        for k in range(2):
            esc_rows.append([f"esc50/audio/{k + 1}-{c:03d}-A-{c}.ogg", f"cat{c:02d}", c, k + 1, "False"])
    _write_csv(root / "esc50" / "esc50.csv", ["file", "category", "target", "fold", "esc10"], esc_rows)
    # Audio: two 4Q clips (4 s) and two ESC-50 clips (5 s), Ogg Vorbis at 22,050 Hz like the real data.
    for i in (0, 1):
        p = root / rows[i][0]
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, music_like(SR, 4.0, seed=i), SR, format="OGG", subtype="VORBIS")
    for i in (0, 1):
        p = root / esc_rows[i][0]
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, _noise(5.0 if i == 0 else 0.5, seed=10 + i), SR, format="OGG", subtype="VORBIS")
    return root


@pytest.fixture(scope="module")
def clips(root):
    return D.read_4q(root) + D.read_emotify(root) + D.read_esc50(root)


# --------------------------------------------------------------------------- root and readers


def test_data_root_from_argument_env_or_error(tmp_path, monkeypatch):
    assert D.data_root(tmp_path) == tmp_path
    monkeypatch.setenv("MIRTAG_DATA", str(tmp_path))
    assert D.data_root() == tmp_path
    monkeypatch.delenv("MIRTAG_DATA")
    with pytest.raises(MirtagError, match="pass --data-root or set MIRTAG_DATA"):
        D.data_root()
    with pytest.raises(MirtagError, match="not found"):
        D.data_root(tmp_path / "absent")


@pytest.mark.parametrize(
    "name,key",
    [
        ("The Beatles", "beatles"),
        ("Beatles", "beatles"),
        ("Björk", "bjork"),
        ("Bjork feat. Thom Yorke", "bjork"),
        ("Jay-Z ft. Rihanna", "jay z"),
        ("Miles Davis & John Coltrane", "miles davis"),
        ("AC/DC", "ac"),
        ("Crosby, Stills & Nash", "crosby"),
        ("Earth; Wind & Fire", "earth"),
        ("Leonard Feather", "leonard feather"),  # "feat" only as a word
        ('The "5" Royales', "5 royales"),
        ("  Sigur   Rós!! ", "sigur ros"),
        ("The The", "the"),
    ],
)
def test_normalise_artist(name, key):
    assert D.normalise_artist(name) == key


def test_read_4q_parses_multi_values_and_groups_artists(root):
    clips = D.read_4q(root)
    assert len(clips) == 48
    c = clips[3]  # i = 3: genres bits 0,1; quadrant Q4
    assert c.file == "4q/audio/Q4/MT0000000003.ogg" and c.key == "4q/4q/audio/Q4/MT0000000003.ogg"
    assert c.genres == ("Pop/Rock", "Jazz") and c.quadrant == "Q4" and c.stratum == "Q4"
    assert all(isinstance(m, str) and m for m in c.moods) and c.music and c.emotions is None
    groups = {c.group for c in clips[:13]}
    assert clips[0].group == clips[1].group == "beatles"
    assert clips[2].group == clips[3].group == "bjork"
    assert clips[4].group == clips[5].group == "miles davis"
    assert "leonard feather" in groups


def test_read_emotify_maps_genres_and_reads_emotions(root):
    clips = D.read_emotify(root)
    assert len(clips) == 40
    by_genre = {c.stratum: c.genres for c in clips}
    assert by_genre == {
        "classical": ("Classical",),
        "electronic": ("Electronic",),
        "pop": ("Pop/Rock",),
        "rock": ("Pop/Rock",),
    }
    c = clips[1]
    assert [e for e, _ in c.emotions] == list(D.EMOTIONS)
    assert c.emotions[0] == ("amazement", 0.1) and c.group == "" and c.music


def test_read_emotify_rejects_unknown_genre(tmp_path):
    header = ["file", "genre", *(f"frac_{e}" for e in D.EMOTIONS)]
    _write_csv(tmp_path / "emotify" / "emotify.csv", header, [["a.ogg", "polka", *[0.1] * 9]])
    with pytest.raises(MirtagError, match="polka"):
        D.read_emotify(tmp_path)


def test_read_esc50_is_not_music(root):
    clips = D.read_esc50(root)
    assert len(clips) == 100 and not any(c.music for c in clips)
    assert clips[0].category == clips[0].group == "cat00"


def test_reader_names_missing_columns(tmp_path):
    _write_csv(tmp_path / "4q" / "4q.csv", ["file", "quadrant"], [["a.ogg", "Q1"]])
    with pytest.raises(MirtagError, match="lacks columns"):
        D.read_4q(tmp_path)


def test_read_gtzan_matches_the_shipped_lists(tmp_path, caplog):
    listed = {"blues.00000": "validation", "blues.00012": "test", "blues.00029": "train"}
    genres = tmp_path / "gtzan" / "genres"
    for stem in [*listed, "jazz.00033"]:  # jazz.00033 is in no list (a faulty excerpt)
        genre = stem.split(".")[0]
        (genres / genre).mkdir(parents=True, exist_ok=True)
        ext, fmt = (".au", "AU") if stem == "blues.00012" else (".wav", "WAV")
        sf.write(genres / genre / f"{stem}{ext}", music_like(SR, 0.5, seed=1), SR, format=fmt, subtype="PCM_16")
    with caplog.at_level(logging.INFO, logger="mirtag.trainer.data"):
        clips = D.read_gtzan(tmp_path / "gtzan")
    assert {Path(c.file).stem: c.split for c in clips} == listed
    assert all(c.genres == ("blues",) and c.dataset == "gtzan" and Path(c.file).is_absolute() for c in clips)
    assert sum("excluded" in r.message for r in caplog.records) == 1
    # The genres folder itself is accepted too, and other lists can be given.
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("jazz/jazz.00033.wav\n")
    (lists / "valid_filtered.txt").write_text("")
    (lists / "test_filtered.txt").write_text("blues/blues.00000.wav\n")
    clips = D.read_gtzan(genres, lists_dir=lists)
    assert {Path(c.file).stem: c.split for c in clips} == {"jazz.00033": "train", "blues.00000": "test"}


def test_read_manifest_single_multi_soft_and_extra(tmp_path):
    path = _write_csv(
        tmp_path / "mine.csv",
        ["file", "artist", "genre", "tags", "instrument", "frac_happy", "frac_sad", "tension", "split"],
        [
            ["a/x.flac", "The Band", "Jazz", "calm;warm", "piano", "0.75", "0.25", "0.5", "train"],
            ["/abs/y.flac", "Band feat. Z", "", "", "", "", "0.5", "", ""],
        ],
    )
    spec = {
        "genre": ("genre", "single"),
        "tags": ("moods", "multi"),
        "instrument": ("instrument", "single"),
        "frac_happy": ("vibe", "soft"),
        "frac_sad": ("vibe", "soft"),
        "tension": ("emotions", "soft", "tension"),
    }
    a, b = D.read_manifest(path, tmp_path, label_columns=spec, group_column="artist", split_column="split")
    assert a.dataset == "mine" and a.file == "a/x.flac" and a.key == "mine/a/x.flac"
    assert a.genres == ("Jazz",) and a.moods == ("calm", "warm") and a.emotions == (("tension", 0.5),)
    assert a.extra == (("instrument", ("piano",)), ("vibe", (("happy", 0.75), ("sad", 0.25))))
    assert a.split == "train" and a.stratum == "Jazz" and a.music
    assert a.group == b.group == "band"
    # Empty cells: not labelled (a soft head with any empty cell is absent).
    assert b.genres == () and b.emotions is None and b.extra == () and b.split is None
    # No root: relative files become absolute against the CSV's folder.
    (c, _) = D.read_manifest(path, label_columns={"genre": ("genre", "single")})
    assert c.file == str((tmp_path / "a" / "x.flac").resolve())
    with pytest.raises(ParameterError):
        D.read_manifest(path, label_columns={"genre": ("genre", "fuzzy")})
    # Generic heads reach the taxonomy and the targets; unlabelled heads stay masked.
    tax = D.build_taxonomy([a, b], min_genre=1, min_mood=1, genre_datasets=("mine",))
    assert tax["genre"] == ["Jazz"] and tax["moods"] == ["calm", "warm"]
    assert tax["instrument"] == ["piano"] and tax["vibe"] == ["happy", "sad"]
    t, m = D.encode_targets([a, b], tax)
    assert t["instrument"].tolist() == [[1.0], [0.0]] and m["instrument"].tolist() == [[1.0], [0.0]]
    assert t["vibe"][0].tolist() == [0.75, 0.25] and m["vibe"].tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert m["genre"].tolist() == [[1.0], [0.0]] and m["moods"][1].sum() == 0
    j = D.EMOTIONS.index("tension")
    assert t["emotions"][0, j] == 0.5 and m["emotions"][0].sum() == 1 and m["emotions"][0, j] == 1


# --------------------------------------------------------------------------- splits


def test_make_splits_deterministic_grouped_stratified(clips):
    s0 = D.make_splits(clips, seed=0)
    assert s0 == D.make_splits(list(reversed(clips)), seed=0)  # order does not matter
    assert s0 != D.make_splits(clips, seed=1)
    assert set(s0) == {c.key for c in clips} and set(s0.values()) == set(D.SPLITS)
    assert D.leaking_groups(clips, s0) == {}
    q4 = [c for c in clips if c.dataset == "4q"]
    per = Counter((s0[c.key], c.quadrant) for c in q4)
    for q in D.QUADRANTS:  # 12 clips per quadrant: about 8.4 / 1.8 / 1.8
        assert 6 <= per[("train", q)] <= 10 and per[("validation", q)] >= 1 and per[("test", q)] >= 1
    emo = Counter((s0[c.key], c.stratum) for c in clips if c.dataset == "emotify")
    assert all(emo[("train", g)] == 7 for g in ("classical", "electronic", "pop", "rock"))
    esc = {}
    for c in clips:
        if c.dataset == "esc50":
            esc.setdefault(c.category, set()).add(s0[c.key])
    assert all(len(v) == 1 for v in esc.values())
    assert Counter(next(iter(v)) for v in esc.values()) == {"train": 40, "validation": 5, "test": 5}


def test_make_splits_keeps_fixed_splits():
    c = D.Clip("/g/blues.00000.wav", "gtzan", genres=("blues",), split="validation")
    assert D.make_splits([c]) == {c.key: "validation"}


def test_write_and_read_splits_roundtrip(clips, tmp_path):
    s = D.make_splits(clips)
    n = D.write_splits(s, tmp_path / "4q.csv")
    assert n == 48
    back = D.read_splits("4q", tmp_path / "4q.csv")
    assert back == {k: v for k, v in s.items() if k.startswith("4q/")}
    assert (tmp_path / "4q.csv").read_text().splitlines()[0] == "file,split"


@pytest.mark.skipif(not (REAL / "4q" / "4q.csv").is_file(), reason="real data not available (set MIRTAG_DATA)")
def test_committed_splits_cover_the_real_manifests_once():
    readers = {"4q": D.read_4q, "emotify": D.read_emotify, "esc50": D.read_esc50}
    for name, read in readers.items():
        clips = read(REAL)
        splits = D.read_splits(name)
        assert sorted(splits) == sorted(c.key for c in clips), name
        assert len(clips) == len({c.key for c in clips})
        assert D.leaking_groups(clips, splits) == {}, name
    esc = D.read_splits("esc50")
    cats = Counter(s for s in {(c.category, esc[c.key]) for c in D.read_esc50(REAL)})
    assert Counter(s for _, s in cats) == {"train": 40, "validation": 5, "test": 5}


# --------------------------------------------------------------------------- taxonomy and targets


def _mk(dataset, genres=(), moods=(), **kw):
    return D.Clip(
        f"{dataset}/{len(genres)}-{'.'.join(genres)}-{'.'.join(moods)}",
        dataset,
        genres=tuple(genres),
        moods=tuple(moods),
        **kw,
    )


def test_build_taxonomy_thresholds_and_order():
    clips = [_mk("4q", ["Jazz"], ["calm"], quadrant="Q1") for _ in range(3)]
    clips += [_mk("4q", ["Blues", "Rap"], ["sad", "calm"], quadrant="Q2") for _ in range(2)]
    clips += [_mk("emotify", ["Classical"]) for _ in range(2)]
    clips += [_mk("gtzan", ["blues"]) for _ in range(9)]  # another vocabulary: not counted
    tax = D.build_taxonomy(clips, min_genre=2, min_mood=3)
    assert tax["genre"] == ["Jazz", "Blues", "Classical", "Rap"]  # count desc, then name
    assert tax["moods"] == ["calm"]
    assert tax["quadrant"] == ["Q1", "Q2", "Q3", "Q4"] and tax["music"] == ["music"]
    assert tax["emotions"] == list(D.EMOTIONS)
    assert D.build_taxonomy(clips, min_genre=3, min_mood=1)["genre"] == ["Jazz"]


def test_encode_targets_masks_per_dataset(clips):
    gtzan = D.Clip("/g/blues.00000.wav", "gtzan", genres=("blues",), split="train")
    all_clips = [*clips, gtzan]
    tax = D.build_taxonomy(all_clips, min_genre=5, min_mood=5)
    assert {"Classical", "Electronic", "Pop/Rock", "Jazz"} <= set(tax["genre"])
    t, m = D.encode_targets(all_clips, tax)
    for h, labels in tax.items():
        assert t[h].shape == m[h].shape == (len(all_clips), len(labels)) and t[h].dtype == np.float32
    g = {lab: j for j, lab in enumerate(tax["genre"])}
    for i, c in enumerate(all_clips):
        if c.dataset == "4q":
            assert m["genre"][i].all() and m["quadrant"][i].all() and m["moods"][i].all()
            assert t["quadrant"][i].sum() == 1 and t["quadrant"][i, D.QUADRANTS.index(c.quadrant)] == 1
            assert {tax["genre"][j] for j in np.flatnonzero(t["genre"][i])} == set(c.genres) & set(tax["genre"])
            assert not m["emotions"][i].any() and t["music"][i, 0] == 1
        elif c.dataset == "emotify":
            assert {tax["genre"][j] for j in np.flatnonzero(m["genre"][i])} == {"Classical", "Electronic", "Pop/Rock"}
            assert t["genre"][i, g[c.genres[0]]] == 1 and t["genre"][i].sum() == 1
            assert m["emotions"][i].all() and np.allclose(t["emotions"][i], [v for _, v in c.emotions])
            assert not m["quadrant"][i].any() and not m["moods"][i].any() and t["music"][i, 0] == 1
        elif c.dataset == "esc50":
            assert m["music"][i, 0] == 1 and t["music"][i, 0] == 0
            assert all(not m[h][i].any() for h in tax if h != "music")
        else:  # GTZAN "blues" is not the AllMusic "Blues": genre stays masked
            assert not m["genre"][i].any() and m["music"][i, 0] == 1
    # An exact name match makes a GTZAN clip supervise the GTZAN-named labels.
    tax2 = dict(tax, genre=[*tax["genre"], "blues"])
    t2, m2 = D.encode_targets([gtzan], tax2)
    assert m2["genre"][0].tolist() == [0.0] * len(tax["genre"]) + [1.0] and t2["genre"][0, -1] == 1


# --------------------------------------------------------------------------- noise


def test_augment_ids_and_plans(clips):
    assert D.CLEAN.id == "clean" and D.Augment().id == "clean"
    a = D.Augment("esc50/audio/x.ogg", 7.5, 100)
    assert a.id == D.Augment("esc50/audio/x.ogg", 7.5, 100).id != D.Augment("esc50/audio/x.ogg", 7.5, 101).id
    assert a.id.startswith("n-") and len(a.id) == 10
    with pytest.raises(ParameterError):
        D.Augment("x.ogg", None)
    music = [c for c in clips if c.music][:10]
    noise = [c for c in clips if c.dataset == "esc50"]
    plan = D.plan_augments(music + noise[:2], noise, k=3, seed=0, snr_range=(5.0, 10.0))
    assert plan == D.plan_augments(list(reversed(music)) + noise[:2], noise[::-1], k=3, seed=0, snr_range=(5.0, 10.0))
    assert plan != D.plan_augments(music, noise, k=3, seed=1)
    for c in music:
        p = plan[c.key]
        assert p[0] == D.CLEAN and len(p) == 4 and len({x.id for x in p}) == 4
        assert all(5.0 <= x.snr_db <= 10.0 and x.noise_file in {n.file for n in noise} for x in p[1:])
    assert plan[noise[0].key] == [D.CLEAN]


def test_noise_clips_get_mixtures_of_two_other_noises(clips):
    music = [c for c in clips if c.music][:3]
    noise = [c for c in clips if c.dataset == "esc50"]
    plain = D.plan_augments(music + noise, noise, k=2, seed=0)
    plan = D.plan_augments(music + noise, noise, k=2, seed=0, k_mix=3, mix_snr_range=(-4.0, 4.0))
    # Music plans do not move when negatives get mixtures (the cache stays valid).
    assert all(plan[c.key] == plain[c.key] for c in music)
    for c in noise:
        p = plan[c.key]
        assert p[0] == D.CLEAN and len(p) == 4
        assert all(-4.0 <= x.snr_db <= 4.0 and x.noise_file != c.file for x in p[1:])
    with pytest.raises(ParameterError):
        D.plan_augments(noise, noise, k=0, seed=0, k_mix=-1)


def test_mix_noise_snr_and_looping(rng):
    y = music_like(SR, 2.0, seed=3)
    noise = rng.standard_normal(1000).astype(np.float32)
    for snr in (0.0, 7.3, 20.0, -5.0):
        out = D.mix_noise(y, noise, snr, offset=1234)
        assert out.shape == y.shape and out.dtype == np.float32
        added = out.astype(np.float64) - y
        got = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) / np.sqrt(np.mean(added**2)))
        assert abs(got - snr) < 0.01
    # The 1000-sample noise is looped from sample 1234 % 1000 = 234, scaled.
    gain = added[0] / noise[234]
    np.testing.assert_allclose(added[:3000], gain * np.resize(np.roll(noise, -234), 3000), rtol=0, atol=1e-5)
    silent = np.zeros(500, np.float32)
    np.testing.assert_array_equal(D.mix_noise(silent, noise, 10.0, 0), silent)
    with pytest.raises(ParameterError):
        D.mix_noise(y, np.zeros(0, np.float32), 10.0)


# --------------------------------------------------------------------------- feature cache


def _expected(root, clip, aug, config):
    y, sr = load(root / clip.file, sr=config.sample_rate)
    if aug.noise_file is not None:
        noise, _ = load(root / aug.noise_file, sr=config.sample_rate)
        y = D.mix_noise(y, noise, aug.snr_db, aug.noise_offset)
    return Frontend(config).mel(y, sr)


def test_feature_cache_computes_in_workers_and_resumes(root, clips, tmp_path):
    config = FrontendConfig()
    cache = D.FeatureCache(tmp_path / "cache", config)
    assert cache.dir.parent == tmp_path / "cache" and len(cache.dir.name) == 12
    music = [c for c in clips if c.dataset == "4q"][:2]
    noise = [c for c in clips if c.dataset == "esc50"][:2]  # a 5-s and a 0.5-s (looped) noise
    items = [
        (music[0], D.CLEAN),
        (music[0], D.Augment(noise[0].file, 5.0, 30000)),
        (music[1], D.CLEAN),
        (music[1], D.Augment(noise[1].file, 0.0, 777)),
        (music[1], D.CLEAN),
    ]
    seen = []
    stats = cache.compute(items, root, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert (stats.total, stats.cached, stats.computed, stats.failed) == (4, 0, 4, 0)
    assert seen[0] == (0, 4) and seen[-1] == (4, 4)
    for clip, aug in items:
        assert cache.has(clip, aug, root)
        got = cache.load(clip, aug, root)
        want = _expected(root, clip, aug, config)
        assert got.dtype == np.float16 and got.shape == want.shape and got.shape[:2] == (2, config.n_mels)
        np.testing.assert_allclose(got.astype(np.float32), want, rtol=1e-3, atol=1e-4 * want.max())
    assert cache.path(music[0], D.CLEAN, root) != cache.path(music[0], items[1][1], root)
    again = cache.compute(items, root, workers=2)
    assert (again.cached, again.computed, again.failed) == (4, 0, 0)
    X, idx = D.load_windows(cache, items[:4], root)
    assert X.shape == (8, 2, config.n_mels, config.window_frames) and X.dtype == np.float16
    assert idx.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    from mirtag.runtime.frontend import cut_windows, window_starts

    mel = np.asarray(cache.load(*items[1], root), np.float32)
    np.testing.assert_array_equal(
        X[2:4], cut_windows(mel, window_starts(mel.shape[2], config), config)[0].astype(np.float16)
    )


def test_feature_cache_recomputes_changed_files_and_counts_failures(tmp_path, caplog):
    root = tmp_path / "data"
    (root / "x").mkdir(parents=True)
    good, bad = D.Clip("x/good.wav", "mine"), D.Clip("x/bad.ogg", "mine")
    sf.write(root / good.file, music_like(SR, 3.0, seed=5), SR)
    (root / bad.file).write_bytes(b"OggS this is not really audio" * 10)
    missing = D.Clip("x/missing.wav", "mine")
    cache = D.FeatureCache(tmp_path / "cache", FrontendConfig())
    with caplog.at_level(logging.WARNING, logger="mirtag.trainer.data"):
        stats = cache.compute([(good, D.CLEAN), (bad, D.CLEAN), (missing, D.CLEAN)], root, workers=1)
    assert (stats.total, stats.computed, stats.failed) == (3, 1, 2)
    assert {k for k, _ in stats.failures} == {bad.key, missing.key}
    assert sum("bad.ogg" in r.getMessage() for r in caplog.records) == 1
    assert not cache.has(bad, D.CLEAN, root) and not cache.has(missing, D.CLEAN, root)
    with pytest.raises(DecodeError):
        cache.path(missing, D.CLEAN, root)
    old_path = cache.path(good, D.CLEAN, root)
    old = cache.load(good, D.CLEAN, root, mmap=False)
    # New content and a new mtime: a new entry, recomputed from the new audio.
    sf.write(root / good.file, music_like(SR, 3.0, seed=6) * 0.5 + _noise(3.0, 1) * 0.2, SR)
    st = os.stat(root / good.file)
    os.utime(root / good.file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.path(good, D.CLEAN, root) != old_path and not cache.has(good, D.CLEAN, root)
    stats = cache.compute([(good, D.CLEAN)], root, workers=1)
    assert (stats.cached, stats.computed) == (0, 1)
    assert not np.array_equal(cache.load(good, D.CLEAN, root), old)
    with pytest.raises(MirtagError, match="not in the feature cache"):
        cache.load(good, D.Augment("x/good.wav", 3.0, 0), root)
    # Another frontend config: another folder.
    assert D.FeatureCache(tmp_path / "cache", FrontendConfig(n_mels=64)).dir != cache.dir


def test_data_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, mirtag.trainer.data; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_training_config_reaches_the_gtzan_and_manifest_readers(tmp_path):
    from mirtag.trainer.train import TrainConfig, assign_splits, load_clips

    genres = tmp_path / "gtzan" / "genres"
    for stem in ("blues.00000", "blues.00012", "blues.00029"):
        (genres / "blues").mkdir(parents=True, exist_ok=True)
        sf.write(genres / "blues" / f"{stem}.wav", music_like(SR, 0.5, seed=1), SR, subtype="PCM_16")
    _write_csv(
        tmp_path / "mine" / "mine.csv",
        ["file", "artist", "genres"],
        [[f"mine/{i}.flac", f"Artist {i % 3}", "Jazz;Blues" if i % 2 else "Jazz"] for i in range(9)],
    )
    config = tmp_path / "run.toml"
    config.write_text(
        '[data]\ndatasets = ["gtzan"]\n\n[[data.manifests]]\nname = "mine"\nfile = "mine/mine.csv"\n'
        'group = "artist"\nlabels = { genres = ["genre", "multi"] }\n'
    )
    cfg = TrainConfig.from_toml(config)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    clips = load_clips(cfg, tmp_path)
    by = Counter(c.dataset for c in clips)
    assert by == {"gtzan": 3, "mine": 9}
    mine = [c for c in clips if c.dataset == "mine"]
    assert mine[1].genres == ("Jazz", "Blues") and mine[0].file == "mine/0.flac"
    splits = assign_splits(clips, cfg)
    assert {splits[c.key] for c in clips if c.dataset == "gtzan"} == {"validation", "test", "train"}
    assert D.leaking_groups(mine, splits) == {}, "an artist must stay in one split"
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\ndatasets = []\n\n[[data.manifests]]\nname = "mine"\nfile = "mine/mine.csv"\nlabel = {}\n')
    with pytest.raises(ParameterError, match="unknown keys \\['label'\\].*missing keys \\['labels'\\]"):
        load_clips(TrainConfig.from_toml(bad), tmp_path)
