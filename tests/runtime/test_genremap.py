"""Genre maps on the tiny generator + tiny classifier: layout, determinism, the noise vector, pairing, no torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mirtag.runtime.errors import ModelLoadError, ParameterError
from mirtag.runtime.genremap import GenreMap, load_pair, nearest_cells, noise_vector
from tests.fixtures.make_tiny_generator import CODE0, expected_features
from tests.fixtures.make_tiny_model import GENRE_LABELS, expected_outputs

FIXTURES = Path(__file__).parents[1] / "fixtures"
TINYGEN = FIXTURES / "tinygen"
TINY = FIXTURES / "tiny"


@pytest.fixture(scope="module")
def gm() -> GenreMap:
    return load_pair(TINYGEN, threads=1)


def reference_probs(z: np.ndarray, head: str = "genre") -> np.ndarray:
    """What generator + classifier compute, in numpy."""
    return expected_outputs(expected_features(z))[head]


def test_load_pair_uses_the_registry_defaults_of_the_generator_folder(gm):
    assert gm.generator.name == "tinygen" and gm.classifier.name == "tiny"
    assert gm.latent_size == 128 and gm.code_dims == 10 and gm.code_offset == 118 == CODE0
    by_file = load_pair(TINYGEN / "tinygen.onnx", threads=1)  # a file: its folder's registry names the classifier
    assert by_file.classifier.sha256 == gm.classifier.sha256
    explicit = load_pair(TINYGEN / "tinygen.onnx.json", TINY / "tiny.onnx", threads=1)
    assert explicit.classifier.path == gm.classifier.path


def test_generator_graph_matches_the_fixture_reference(gm):
    z = np.random.default_rng(1).uniform(-1, 1, (5, 128)).astype(np.float32)
    windows = gm.generate(z)
    assert windows.shape == (5, 2, 84, 128) and windows.dtype == np.float32
    np.testing.assert_allclose(windows.max(axis=(2, 3)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(windows, expected_features(z), atol=1e-6)


def test_grid_shapes_labels_and_keys(gm):
    data = gm.grid(head="genre", dims=(0, 1), n=7, seed=0)
    assert {"head", "labels", "dims", "axis", "seed", "z", "argmax", "probs"} <= set(data)
    assert data["head"] == "genre" and data["labels"] == list(GENRE_LABELS) and data["dims"] == [0, 1]
    assert data["seed"] == 0 and len(data["z"]) == 128
    np.testing.assert_allclose(data["axis"], np.linspace(-1, 1, 7))
    assert np.asarray(data["argmax"]).shape == (7, 7)
    probs = np.asarray(data["probs"])
    assert probs.shape == (7, 7, 3)
    np.testing.assert_array_equal(np.asarray(data["argmax"]), probs.argmax(axis=2))
    json.dumps(data)  # JSON-able as it is
    quad = gm.grid(head="quadrant", n=3)
    assert quad["labels"] == ["Q1", "Q2", "Q3", "Q4"] and np.asarray(quad["probs"]).shape == (3, 3, 4)


def test_the_fixture_map_shows_all_three_genres(gm):
    data = gm.grid(n=41, seed=0)
    arg, axis = np.asarray(data["argmax"]), np.asarray(data["axis"])
    assert set(np.unique(arg)) == {0, 1, 2}
    at = lambda x, y: GENRE_LABELS[arg[np.argmin(abs(axis - y)), np.argmin(abs(axis - x))]]  # noqa: E731
    assert at(1, -1) == "rock" and at(0, 1) == "jazz" and at(-0.5, -1) == "classical"


def test_noise_vector_is_the_seeds_uniform_draw_with_the_code_dims_overwritten(gm):
    seed = 7
    base = np.random.default_rng(seed).uniform(-1, 1, 128).astype(np.float32)
    np.testing.assert_array_equal(noise_vector(seed), base)
    data = gm.grid(dims=(3, 1), n=5, seed=seed)
    np.testing.assert_array_equal(np.asarray(data["z"], np.float32), base)
    axis = np.asarray(data["axis"])
    cells = [(0, 0), (1, 3), (4, 2), (3, 4)]
    z = np.tile(base, (len(cells), 1))
    for i, (iy, ix) in enumerate(cells):
        z[i, CODE0 + 3] = axis[ix]  # x = dims[0]
        z[i, CODE0 + 1] = axis[iy]  # y = dims[1]
    want = reference_probs(z)
    got = np.array([data["probs"][iy][ix] for iy, ix in cells])
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_x_runs_along_the_first_dim(gm):
    # In the fixture, code dim 0 matters and code dim 2 does nothing.
    along_x = np.asarray(gm.grid(dims=(0, 2), n=9, seed=1)["probs"])
    assert np.ptp(along_x, axis=1).max() > 0.05  # varies with ix
    np.testing.assert_allclose(along_x, along_x[:1].repeat(9, axis=0), atol=1e-6)  # constant along iy
    along_y = np.asarray(gm.grid(dims=(2, 0), n=9, seed=1)["probs"])
    np.testing.assert_allclose(along_y, along_y[:, :1].repeat(9, axis=1), atol=1e-6)  # constant along ix
    np.testing.assert_allclose(along_y, along_x.transpose(1, 0, 2), atol=1e-6)


def test_same_seed_same_map_other_seed_other_base(gm):
    a, b = gm.grid(n=9, seed=3), gm.grid(n=9, seed=3)
    assert a == b
    c = gm.grid(n=9, seed=4)
    assert c["z"] != a["z"] and c["probs"] != a["probs"]


def test_line_endpoints_equal_the_grid_cells_there(gm):
    grid = gm.grid(dims=(0, 1), n=5, seed=2)  # axis -1, -0.5, 0, 0.5, 1
    line = gm.line(-1, -0.5, 0.5, 1, dims=(0, 1), n=7, seed=2)
    assert {"head", "labels", "dims", "seed", "start", "end", "t", "points", "probs", "argmax", "z"} <= set(line)
    assert len(line["probs"]) == 7 and line["points"][0] == [-1.0, -0.5] and line["points"][-1] == [0.5, 1.0]
    np.testing.assert_allclose(line["probs"][0], grid["probs"][1][0], atol=1e-6)
    np.testing.assert_allclose(line["probs"][-1], grid["probs"][4][3], atol=1e-6)
    assert line["t"][0] == 0.0 and line["t"][-1] == 1.0


def test_distribution_counts_sum_to_n_whatever_the_batch(gm):
    d = gm.distribution(head="genre", n=300, seed=5)
    assert d["labels"] == list(GENRE_LABELS) and sum(d["counts"].values()) == 300
    assert d == gm.distribution(head="genre", n=300, seed=5, batch=64)
    z = np.random.default_rng(5).uniform(-1, 1, (300, 128)).astype(np.float32)
    want = np.bincount(reference_probs(z).argmax(axis=1), minlength=3)
    assert [d["counts"][lab] for lab in GENRE_LABELS] == want.tolist()


def test_gallery_keeps_the_most_confident_windows_of_each_label(gm):
    gal = gm.gallery(head="genre", per_label=2, n_samples=300, seed=0)
    assert list(gal) == list(GENRE_LABELS)
    for k, lab in enumerate(GENRE_LABELS):
        items = gal[lab]
        assert 1 <= len(items) <= 2
        probs = [p for _, p in items]
        assert probs == sorted(probs, reverse=True)
        windows = np.stack([w for w, _ in items])
        assert windows.shape[1:] == (2, 84, 128)
        got = gm.classify(windows, "genre")
        assert (got.argmax(axis=1) == k).all()
        np.testing.assert_allclose(got[:, k], probs, atol=1e-6)
    # No other sample of the same draw beats the kept ones.
    z = np.random.default_rng(0).uniform(-1, 1, (300, 128)).astype(np.float32)
    p = reference_probs(z)
    rock = p[p.argmax(axis=1) == 0, 0]
    assert gal["rock"][0][1] == pytest.approx(rock.max(), abs=1e-6)


def test_nearest_cells_finds_the_exact_cell(gm):
    grid = gm.grid(n=9, seed=0)
    cells = nearest_cells(grid, np.array([grid["probs"][2][5], grid["probs"][8][0]]))
    assert [(iy, ix) for iy, ix, _ in cells] == [(2, 5), (8, 0)]
    assert all(d == 0 for _, _, d in cells)


def _copy_fixtures(tmp_path: Path) -> Path:
    shutil.copytree(TINY, tmp_path / "tiny")
    shutil.copytree(TINYGEN, tmp_path / "tinygen")
    return tmp_path / "tinygen"


def test_a_generator_of_another_classifier_is_refused(tmp_path):
    folder = _copy_fixtures(tmp_path)
    card_path = folder / "tinygen.onnx.json"
    card = json.loads(card_path.read_text())
    card["generator"]["classifier_sha256"] = "ab" * 32
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError) as exc:
        load_pair(folder, threads=1)
    msg = str(exc.value)
    assert "ab" * 32 in msg and json.loads((TINY / "tiny.onnx.json").read_text())["sha256"] in msg
    assert "\n" not in msg


def test_pairing_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not a generator"):
        load_pair(TINY / "tiny.onnx", TINY, threads=1)
    with pytest.raises(ModelLoadError, match="not a classifier"):
        load_pair(TINYGEN, TINYGEN / "tinygen.onnx", threads=1)
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("tinygen.onnx", "tinygen.onnx.json"):
        shutil.copy(TINYGEN / name, alone / name)
    with pytest.raises(ModelLoadError, match="--model"):  # no registry beside it: say how to name the classifier
        load_pair(alone / "tinygen.onnx", threads=1)
    assert load_pair(alone / "tinygen.onnx", TINY, threads=1).classifier.name == "tiny"


def test_bad_parameters(gm):
    with pytest.raises(ParameterError, match="dims"):
        gm.grid(dims=(0, 0), n=3)
    with pytest.raises(ParameterError, match="dims"):
        gm.grid(dims=(0, 10), n=3)
    with pytest.raises(ParameterError, match="no head 'mood'"):
        gm.grid(head="mood", n=3)
    with pytest.raises(ParameterError):
        gm.grid(n=1)
    with pytest.raises(ParameterError):
        gm.distribution(n=0)


def test_fixture_files_are_what_the_script_makes(tmp_path):
    pytest.importorskip("onnx")
    from tests.fixtures.make_tiny_generator import build

    build(tmp_path)
    for name in ("tinygen.onnx", "tinygen.onnx.json", "registry.json"):
        assert (tmp_path / name).read_bytes() == (TINYGEN / name).read_bytes(), f"rerun make_tiny_generator.py ({name})"


def test_genremap_imports_no_torch():
    code = (
        "import sys, mirtag.runtime.genremap\n"
        "bad = sorted(m for m in ('torch', 'typer', 'rich', 'matplotlib', 'mirtag.trainer', 'mirtag.cli') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"mirtag.runtime.genremap imported {out.stdout.strip()}"


def test_the_default_seed_is_the_one_whose_map_shows_the_most_labels(gm):
    from mirtag.runtime.genremap import SHOWN_SHARE, cell_shares

    seed, shares = gm.pick_seed("genre", (0, 1), seeds=range(5), n=7)
    shown = {}
    for s in range(5):
        g = gm.grid("genre", (0, 1), n=7, seed=s)
        share = cell_shares(np.asarray(g["argmax"]), 3)
        np.testing.assert_allclose(shares[s], share)
        shown[s] = (-(share >= SHOWN_SHARE).sum(), share.max(), s)
    assert seed == min(shown, key=shown.get)


def test_long_map_computations_report_progress(gm):
    calls = []
    gm.distribution("genre", n=300, seed=1, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (300, 300) and len(calls) == -(-300 // gm.batch_size)
    calls.clear()
    gm.grid("genre", n=9, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (81, 81)


def test_map_probabilities_are_calibrated_like_scanned_ones(tmp_path):
    from mirtag.runtime.decisions import calibrate

    shutil.copytree(TINYGEN, tmp_path / "tinygen")
    shutil.copytree(TINY, tmp_path / "tiny")
    card = json.loads((tmp_path / "tiny" / "tiny.onnx.json").read_text())
    next(h for h in card["heads"] if h["name"] == "quadrant")["temperature"] = 2.0
    (tmp_path / "tiny" / "tiny.onnx.json").write_text(json.dumps(card))
    warm = load_pair(tmp_path / "tinygen", threads=1)
    windows = warm.generate(np.random.default_rng(0).uniform(-1, 1, (4, warm.latent_size)).astype(np.float32))
    raw = warm.session.run(windows)["quadrant"]
    got = warm.classify(windows, "quadrant")
    np.testing.assert_allclose(got, calibrate(raw, "softmax", 2.0), atol=1e-6)
    assert np.abs(got - raw).max() > 0.01 and (got.argmax(axis=1) == raw.argmax(axis=1)).all()
