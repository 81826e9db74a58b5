"""The Ray engine on a local Ray cluster that the test starts: the local engine's rows, and its faults.

One cluster for the module (2 CPUs, no dashboard, a small object store). The decode test hook kills a Ray
worker process once, mid-file; the driver test SIGKILLs a ``mirtag scan --engine ray`` and re-runs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

# Loopback only: read by ray when it is imported, inherited by the cluster and by the CLI drivers started here.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray  # noqa: E402 - the ray extra is part of the test install (scripts/test): these tests run, never skip

from mirtag.runtime.errors import MirtagError
from mirtag.runtime.scan import Scanner, ScanSettings
from mirtag.runtime.walk import iter_audio_files
from tests.scanargs import MIRTAG, scan_args
from tests.cli.test_scan import TINY, build_library, by_name, read_jsonl
from tests.conftest import music_like

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from mirtag.runtime import rayscan

    markers = tmp_path_factory.mktemp("killed")
    # The Ray workers inherit the driver's environment when the cluster starts: the hooks must be set first.
    os.environ[rayscan.RAY_KILL_HOOK_ENV] = "killme"
    os.environ[rayscan.RAY_KILL_MARKERS_ENV] = str(markers)
    os.environ[rayscan.RAY_FAIL_HOOK_ENV] = "failme"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), "the test cluster listens on the loopback interface only"
    try:
        yield address, markers
    finally:
        ray.shutdown()
        os.environ.pop(rayscan.RAY_KILL_HOOK_ENV, None)
        os.environ.pop(rayscan.RAY_KILL_MARKERS_ENV, None)
        os.environ.pop(rayscan.RAY_FAIL_HOOK_ENV, None)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("raylib")
    expect = build_library(root, n_good=4)
    sf.write(root / "killme.flac", music_like(44100, 12.0, seed=5, channels=2), 44100, format="FLAC")
    expect["killme.flac"] = "ok"
    return root, expect


def test_ray_engine_gives_the_local_engines_rows_even_when_a_ray_worker_dies_mid_file(cluster, library):
    from mirtag.runtime.rayscan import RayScanner, RaySettings

    _, markers = cluster
    root, expect = library
    files = list(iter_audio_files([root]))
    settings = ScanSettings(model=TINY, device="cpu", workers=2, time_limit=60, embeddings=True)
    with Scanner(settings) as local_engine:
        local = by_name(local_engine.run(files))
    with RayScanner(settings, RaySettings()) as engine:
        rows = list(engine.run(files))
    assert "Ray (2 CPUs" in engine.provider
    got = by_name(rows)
    assert len(rows) == len(got) == len(expect), "exactly one row per file"
    assert (markers / "killme.flac.killed").exists(), "a Ray worker really was killed mid-file"
    worst = 0.0
    for name, want in local.items():
        row = got[name]
        assert row["status"] == want["status"], (name, row["error"], want["error"])
        for key in ("error", "warning", "n_windows", "duration_s", "size", "mtime_ns", "model_sha256", "path_b64"):
            assert row[key] == want[key], (name, key)
        if want["status"] == "ok":
            for head, info in want["heads"].items():
                assert row["heads"][head]["vote"] == info["vote"] and row["heads"][head]["top"] == info["top"]
                for label, p in info["probs"].items():
                    worst = max(worst, abs(row["heads"][head]["probs"][label] - p))
            worst = max(worst, float(np.abs(row["embedding"] - want["embedding"]).max()))
    assert worst <= 1e-5
    assert got["killme.flac"]["status"] == "ok", "the killed task was retried: nothing lost"


def test_a_task_that_fails_for_good_costs_only_its_file_as_an_error_row(cluster, tmp_path):
    from mirtag.runtime.rayscan import RayScanner, RaySettings

    for name in ("failme.wav", "fine.wav"):
        sf.write(tmp_path / name, music_like(22050, 4.0), 22050)
    files = list(iter_audio_files([tmp_path]))
    with RayScanner(ScanSettings(model=TINY, device="cpu"), RaySettings()) as engine:
        rows = by_name(engine.run(files))
    assert rows["fine.wav"]["status"] == "ok"
    assert rows["failme.wav"]["status"] == "error" and "lost in the Ray pipeline" in rows["failme.wav"]["error"]


def test_ray_engine_refuses_gpu_work_without_gpus(cluster, library):
    from mirtag.runtime.rayscan import RayScanner, RaySettings

    root, _ = library
    with RayScanner(ScanSettings(model=TINY), RaySettings(gpus_per_actor=1)) as engine:
        with pytest.raises(MirtagError, match="the Ray cluster has 0 GPUs"):
            list(engine.run(list(iter_audio_files([root]))[:1]))
    with RayScanner(ScanSettings(model=TINY, device="cuda"), RaySettings()) as engine:
        with pytest.raises(MirtagError, match="needs --gpus-per-actor"):
            list(engine.run(list(iter_audio_files([root]))[:1]))


def test_driver_killed_with_sigkill_resumes_to_exactly_one_row_per_file(cluster, tmp_path):
    address, _ = cluster
    root = tmp_path / "lib"
    root.mkdir()
    clip = music_like(22050, 20.0)
    for i in range(16):
        sf.write(root / f"t{i:02d}.wav", np.roll(clip, 1000 * i), 22050)
    out = tmp_path / "tags.jsonl"
    cmd = [
        *MIRTAG,
        *scan_args(root, out, "-q", "--engine", "ray", "--ray-address", address, "--batch-size", "8", workers=2),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows_written = lambda: out.read_text().count("\n") if out.exists() else 0  # noqa: E731
    # Generous: on a loaded 2-core machine the driver and its Ray workers took over 90 s to write the first rows.
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and rows_written() < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = rows_written()
    assert partial >= 2, f"the scan wrote {partial} rows in 300 s"
    assert partial < 16, "the scan finished before it was killed"
    # The re-run goes through scan(out=...), the function `mirtag scan` calls, here in the test's own driver (its
    # Ray workers are warm): it must scan exactly the files the killed run did not finish.
    from mirtag.runtime.rayscan import RayScanner, RaySettings
    from mirtag.runtime.scan import scan

    done = {os.path.basename(r["path"]) for r in read_jsonl(out)}
    ray_engine = lambda settings, card: RayScanner(settings, RaySettings(), card=card)  # noqa: E731
    fresh = list(scan([root], ScanSettings(model=TINY, batch_size=8), out=out, engine=ray_engine))
    assert sorted(os.path.basename(r["path"]) for r in fresh) == sorted({f"t{i:02d}.wav" for i in range(16)} - done)
    rows = read_jsonl(out)
    assert sorted(os.path.basename(r["path"]) for r in rows) == [f"t{i:02d}.wav" for i in range(16)]
    assert all(r["status"] == "ok" for r in rows)


def test_the_runtime_never_imports_ray():
    code = (
        "import sys, mirtag.runtime, mirtag.runtime.scan, mirtag.runtime.rayscan, mirtag.runtime.merge;"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))))"
    )
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_cli_ray_options_need_the_ray_engine(tmp_path):
    from typer.testing import CliRunner

    from mirtag.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "x.jsonl"), "--gpus-per-actor", "1"])
    assert res.exit_code == 2 and "need --engine ray" in res.output
    res = runner.invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "x.jsonl"), "--engine", "spark"])
    assert res.exit_code == 2 and "--engine must be local or ray" in res.output
