"""``mirtag evaluate``: the test report of a trained run, with robustness and domain-shift checks.

- Per head, track level (mean over windows; the quadrant also by majority vote),
  decisions at the thresholds tuned on validation (``thresholds.json``):
  quadrant: accuracy, macro-F1, weighted P/R/F1, confusion matrix; genre and
  moods: top-1 accuracy, label accuracy, macro-F1 and weighted P/R/F1 over
  labels with >= 5 test positives, a per-label table; Emotify genre: 3-way
  accuracy and confusion matrix; music: accuracy, F1s, confusion matrix. Macro
  ROC-AUC and PR-AUC for every head (labels with >= 5 test positives);
  confusion matrices as CSV and PNG; bootstrap 95 % CIs on the target metrics.
- Robustness: the test music clips with held-back noise (the ESC-50 *test*
  categories, never heard in training) mixed in at 20, 10, 5 and 0 dB SNR.
- Domain shift: the test clips re-encoded as 44.1 kHz stereo MP3 and FLAC (the
  training copies are 22 kHz mono Vorbis), tagged through the runtime from the
  files, and compared top-1 with the originals.

Writes ``report.json`` and ``report.md`` (plus confusion CSV/PNG) into the run folder.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mirtag.runtime import audio

from . import data as D
from . import metrics as M
from .train import (TrainConfig, build_model, head_kinds, head_metrics, prepare_data, read_thresholds, track_probs,
                    write_confusions)

_LOGGER = logging.getLogger(__name__)

SNRS = (20.0, 10.0, 5.0, 0.0)


def _noisy_split(split, cfg, root, noise_clips, snr, seed=0):
    """A copy of ``split`` whose mels are the clips with held-back noise at ``snr`` dB.

    The noise clip and offset of each music clip depend on ``seed`` only, not on
    ``snr``: the SNR levels of one draw differ in level alone.
    """
    cache = D.FeatureCache(cfg.cache_dir, cfg.frontend)
    rng = np.random.default_rng([seed, 7919])
    plans = {}
    for c in split.clips:
        if c.music:
            nc = noise_clips[int(rng.integers(len(noise_clips)))]
            plans[c.key] = D.Augment(nc.file, float(snr), int(rng.integers(5 * cfg.frontend.sample_rate)))
    cache.compute([(c, plans[c.key]) for c in split.clips if c.key in plans], root, cfg.workers)
    keep = [i for i, c in enumerate(split.clips) if c.key in plans and cache.has(c, plans[c.key], root)]
    return split.subset(keep, [[cache.load(split.clips[i], plans[split.clips[i].key], root)] for i in keep])


def _agreement(a: dict, b: dict, heads) -> dict[str, float]:
    out = {}
    for h in heads:
        if h in a:
            out[h] = float(np.mean(a[h].argmax(axis=1) == b[h].argmax(axis=1)))
    return out


def domain_shift(split, root: Path, onnx_path: Path, heads=("quadrant", "genre"), limit: int | None = None) -> dict[str, Any]:
    """Top-1 agreement between tagging the original clips and their 44.1 kHz stereo MP3/FLAC re-encodings."""
    import soxr

    from mirtag.runtime import Tagger

    tagger = Tagger.load(onnx_path, device="cpu")
    clips = [c for c in split.clips if c.music][:limit]
    probs: dict[str, dict[str, list]] = {k: {h: [] for h in heads} for k in ("original", "mp3", "flac")}
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(clips):
            y, sr = audio.load(c.resolve(root))
            y44 = soxr.resample(y, sr, 44100, quality="HQ")
            stereo = np.stack([y44, 0.97 * y44], axis=1)
            paths = {"original": c.resolve(root)}
            for fmt, sub in (("mp3", "MPEG_LAYER_III"), ("flac", "PCM_16")):
                p = Path(tmp) / f"{i}.{fmt}"
                sf.write(p, np.clip(stereo, -1, 1), 44100, format=fmt.upper() if fmt != "mp3" else "MP3", subtype=sub)
                paths[fmt] = p
            for kind, p in paths.items():
                r = tagger.tag_file(p)
                for h in heads:
                    probs[kind][h].append(list(r.heads[h].values()))
    arr = {k: {h: np.array(v) for h, v in d.items()} for k, d in probs.items()}
    return {
        "clips": len(clips),
        "mp3_top1_agreement": _agreement(arr["original"], arr["mp3"], heads),
        "flac_top1_agreement": _agreement(arr["original"], arr["flac"], heads),
    }


def evaluate_run(run_dir: str | Path, data_root: Path, *, domain_limit: int | None = None,
                 noise_draws: int = 3) -> dict[str, Any]:
    """Full test report of a trained run (``best.pt``), written as report.json / report.md.

    The robustness table mixes each test music clip with a held-back noise clip
    (ESC-50 test categories) at 20, 10, 5 and 0 dB; each of ``noise_draws``
    draws picks a new noise clip and offset per music clip, and the table gives
    the mean over draws (and the range of the drop in points).
    """
    import json

    from . import require_torch

    torch = require_torch()

    run = Path(run_dir)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    taxonomy, splits = prepare_data(cfg, data_root)
    kinds = head_kinds(taxonomy)
    model = build_model(cfg, taxonomy)
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    model.eval()

    test = splits["test"]
    tp, twp, to = track_probs(test, cfg, model, kinds)
    report: dict[str, Any] = {"model": f"{cfg.name}@{cfg.version}", "best_epoch": int(ck["epoch"]),
                              "test_clips": len(test.clips)}
    report["test"] = head_metrics(test, tp, twp, to, taxonomy, ci=True, thresholds=read_thresholds(run))
    write_confusions(report["test"], run)

    # Robustness: held-back noise categories (the ESC-50 test split) at fixed SNRs.
    noise = [c for c in test.clips if not c.music]
    rows = []
    clean = {k: v for k, v in report["test"].items() if k in ("quadrant_accuracy", "emotify_genre_accuracy", "genre_macro_roc_auc")}
    clean = {k: (v["value"] if isinstance(v, dict) else v) for k, v in clean.items()}
    rows.append({"snr_db": "clean", **{k: round(v, 4) for k, v in clean.items()}})
    if noise:
        for snr in SNRS:
            # One noise draw flips a few of ~100 clips either way; the mean over draws is what is reported.
            draws = []
            for seed in range(noise_draws):
                ns = _noisy_split(test, cfg, data_root, noise, snr, seed)
                p, wp, o = track_probs(ns, cfg, model, kinds)
                draws.append(head_metrics(ns, p, wp, o, taxonomy))
            row = {"snr_db": snr, "noise_draws": noise_draws}
            for k in clean:
                vals = [float(m[k]) for m in draws if k in m]
                if vals:
                    row[k] = round(float(np.mean(vals)), 4)
                    row[f"{k}_drop_points"] = round(100 * (clean[k] - float(np.mean(vals))), 2)
                    row[f"{k}_drop_points_range"] = [round(100 * (clean[k] - max(vals)), 2), round(100 * (clean[k] - min(vals)), 2)]
            rows.append(row)
    report["robustness"] = rows

    onnx = sorted((run / "export").glob("*.onnx"))
    if onnx and domain_limit != 0:  # --domain-limit 0 skips the check
        report["domain_shift"] = domain_shift(test, data_root, onnx[0], limit=domain_limit)
    json_path, md_path = M.write_report(report, run)
    _LOGGER.info("wrote %s and %s", json_path, md_path)
    return report
