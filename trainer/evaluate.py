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

import json
import logging
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from mirtag.runtime import audio

from . import data as D
from . import metrics as M
from .heads import HeadSpec, confusion_title, selection_targets, views

_LOGGER = logging.getLogger(__name__)

SNRS = (20.0, 10.0, 5.0, 0.0)

ROBUSTNESS_KEYS = ("quadrant_accuracy", "emotify_genre_accuracy", "genre_macro_roc_auc")
"""The metrics the robustness table follows as noise is mixed in."""

MIN_POSITIVES = 5
"""Labels with fewer test positives are left out of macro averages (their AUC and F1 are noise)."""


# --------------------------------------------------------------------------- metrics of one split


@dataclass
class _Judge:
    """What every metric family of :func:`head_metrics` reads, and the section it fills."""

    split: Any
    probs: Mapping[str, np.ndarray]
    window_probs: Mapping[str, np.ndarray]
    owner: np.ndarray
    taxonomy: Mapping[str, Any]
    ci: bool
    thresholds: Mapping[str, Any]
    detail: bool
    res: dict[str, Any] = field(default_factory=dict)

    def maybe_ci(self, fn: Callable, *arrays):
        """``fn(*arrays)`` as a float, or with a bootstrap 95 % interval when ``ci``."""
        if not self.ci:
            v = fn(*arrays)
            return float(v[0] if isinstance(v, tuple) else v)
        point, lo, hi = M.bootstrap_ci(fn, *arrays, n_boot=1000, seed=0)
        return {"value": point, "low": lo, "high": hi}


def _single(j: _Judge, spec: HeadSpec) -> None:
    """A softmax head: accuracy (track mean and majority vote), F1s, AUCs and confusion matrix."""
    h, res = spec.head, j.res
    rows = j.split.masks[h].max(axis=1) > 0
    if not rows.any():
        return
    y = j.split.targets[h][rows].argmax(axis=1)
    p = j.probs[h][rows]
    votes = M.track_votes(j.window_probs[h], j.owner, len(j.split.clips))[rows]
    res[f"{spec.name}_accuracy"] = j.maybe_ci(lambda a, b: M.accuracy(a, b.argmax(axis=1)), y, p)
    res[f"{spec.name}_accuracy_vote"] = j.maybe_ci(M.accuracy, y, votes)
    cm = M.confusion_matrix(y, p.argmax(axis=1), len(j.taxonomy[h]))
    prf = M.precision_recall_f1(cm)
    res[f"{spec.name}_macro_f1"] = prf["macro_f1"]
    res[f"{spec.name}_weighted_f1"] = prf["weighted_f1"]
    if j.detail:
        res[f"{spec.name}_weighted_precision"] = prf["weighted_precision"]
        res[f"{spec.name}_weighted_recall"] = prf["weighted_recall"]
        Y, S = j.split.targets[h][rows], j.probs[h][rows]
        res[f"{spec.name}_macro_roc_auc"] = M.macro_auc(Y, S, None, MIN_POSITIVES)[0]
        res[f"{spec.name}_macro_pr_auc"] = M.macro_auc(Y, S, None, MIN_POSITIVES, kind="pr")[0]
        res[f"{spec.name}_confusion"] = {"labels": list(j.taxonomy[h]), "matrix": cm.tolist()}


def _multi(j: _Judge, spec: HeadSpec) -> None:
    """A multi-label sigmoid head: macro ROC/PR-AUC; with thresholds, decisions and a per-label table."""
    h, res = spec.head, j.res
    Y, S, Mk = j.split.targets[h], j.probs[h], j.split.masks[h]
    res[f"{h}_macro_roc_auc"] = j.maybe_ci(
        lambda y, s, m: M.macro_auc(y, s, m, min_positives=MIN_POSITIVES)[0], Y, S, Mk
    )
    res[f"{h}_macro_pr_auc"] = M.macro_auc(Y, S, Mk, MIN_POSITIVES, kind="pr")[0]
    if h not in j.thresholds:
        return
    thr = np.asarray(j.thresholds[h], dtype=np.float64)
    prf = M.multilabel_prf(Y, S >= thr, Mk, min_positives=MIN_POSITIVES)
    res[f"{h}_top1_accuracy"] = j.maybe_ci(M.top1_accuracy, Y, S, Mk)
    res[f"{h}_label_accuracy"] = prf["label_accuracy"]
    for k in ("macro_f1", "weighted_precision", "weighted_recall", "weighted_f1"):
        res[f"{h}_{k}"] = prf[k]
    roc = M.macro_auc(Y, S, Mk, MIN_POSITIVES)[1]
    pr = M.macro_auc(Y, S, Mk, MIN_POSITIVES, kind="pr")[1]
    res[f"{h}_per_label"] = [
        {
            "label": lab,
            "test_positives": int(prf["support"][i]),
            "threshold": round(float(thr[i]), 3),
            "precision": prf["precision"][i],
            "recall": prf["recall"][i],
            "f1": prf["f1"][i],
            "roc_auc": roc[i],
            "pr_auc": pr[i],
        }
        for i, lab in enumerate(j.taxonomy[h])
    ]


def _subset(j: _Judge, spec: HeadSpec) -> None:
    """A head read as a choice among a few labels, on one dataset's clips (Emotify genre: argmax of 3)."""
    h, res = spec.head, j.res
    lab = j.taxonomy[h]
    on = np.array([c.dataset == spec.dataset for c in j.split.clips], dtype=bool)
    if not on.any() or not all(g in lab for g in spec.labels):
        return
    cols = [lab.index(g) for g in spec.labels]
    y = j.split.targets[h][on][:, cols].argmax(axis=1)
    p = j.probs[h][on][:, cols]
    res[f"{spec.name}_accuracy"] = j.maybe_ci(lambda a, b: M.accuracy(a, b.argmax(axis=1)), y, p)
    if j.detail:
        cm = M.confusion_matrix(y, p.argmax(axis=1), len(cols))
        res[f"{spec.name}_macro_f1"] = M.precision_recall_f1(cm)["macro_f1"]
        res[f"{spec.name}_confusion"] = {"labels": list(spec.labels), "matrix": cm.tolist()}


def _binary(j: _Judge, spec: HeadSpec) -> None:
    """A one-label detector (music): ROC-AUC; with a threshold, decisions and the scores of each negative kind."""
    h, res = spec.head, j.res
    y = j.split.targets[h][:, 0]
    if not 0 < y.sum() < len(y):
        return
    s = j.probs[h][:, 0]
    res[f"{h}_roc_auc"] = j.maybe_ci(M.roc_auc, y, s)
    if h not in j.thresholds:
        return
    thr = float(j.thresholds[h][0])
    b = (s >= thr).astype(np.int64)
    yi = y.astype(np.int64)
    res[f"{h}_accuracy"] = j.maybe_ci(M.accuracy, yi, b)
    cm = M.confusion_matrix(yi, b, 2)
    prf = M.precision_recall_f1(cm)
    for k in ("macro_f1", "weighted_precision", "weighted_recall", "weighted_f1"):
        res[f"{h}_{k}"] = prf[k]
    res[f"{h}_pr_auc"] = M.average_precision(y, s)
    res[f"{h}_threshold"] = round(thr, 3)
    res[f"{h}_confusion"] = {"labels": list(spec.confusion_labels or ("no", "yes")), "matrix": cm.tolist()}
    # Which kinds of sound pass for music: the mean score of each negative category.
    by_kind: dict[str, list[float]] = {}
    for c, v in zip(j.split.clips, s):
        if not c.music:
            by_kind.setdefault(c.category or c.group or c.dataset, []).append(float(v))
    res[f"{h}_score_of_non_{h}"] = [
        {
            "category": k,
            "clips": len(v),
            f"mean_{h}_score": float(np.mean(v)),
            "above_threshold": int(sum(x >= thr for x in v)),
        }
        for k, v in sorted(by_kind.items(), key=lambda kv: -np.mean(kv[1]))
    ]


def _soft(j: _Judge, spec: HeadSpec) -> None:
    """Soft targets (listener shares): mean absolute error on the clips that have them."""
    h = spec.head
    rows = j.split.masks[h].max(axis=1) > 0
    if rows.any():
        j.res[f"{h}_mae"] = float(np.abs(j.probs[h][rows] - j.split.targets[h][rows]).mean())


_FAMILIES: dict[str, Callable[[_Judge, HeadSpec], None]] = {
    "single": _single,
    "multi": _multi,
    "subset": _subset,
    "binary": _binary,
    "soft": _soft,
}


def head_metrics(
    split,
    probs: dict,
    window_probs: dict,
    owner: np.ndarray,
    taxonomy: dict,
    ci: bool = False,
    thresholds: dict[str, Any] | None = None,
    kinds: Mapping[str, str] | None = None,
) -> dict:
    """Track-level metrics of every view of the model's heads (:data:`mirtag.trainer.heads.HEADS`) on one split.

    Parameters
    ----------
    split : mirtag.trainer.train.Split
        Clips with their targets and masks.
    probs, window_probs : dict of str -> np.ndarray
        Track-level ``(n_clips, n_labels)`` and window-level ``(n_windows, n_labels)`` probabilities per head.
    owner : np.ndarray [shape=(n_windows,)]
        The clip of each window.
    taxonomy : dict
        Head -> labels.
    ci : bool
        Add bootstrap 95 % intervals to the target metrics and the headline accuracies.
    thresholds : dict, optional
        ``{head: per-label thresholds}`` tuned on validation. Without them (the
        per-epoch validation): the target metrics only. With them, every head's
        decisions are judged too: accuracy, macro-F1, support-weighted
        precision, recall and F1, ROC-AUC and PR-AUC, per-label tables
        (``<head>_per_label``) and confusion matrices (``<name>_confusion``:
        ``{"labels", "matrix"}``, written to files by :func:`write_confusions`).
    kinds : mapping, optional
        Head -> ``softmax`` / ``sigmoid`` of heads the table does not name.
    """
    judge = _Judge(split, probs, window_probs, owner, taxonomy, ci, thresholds or {}, thresholds is not None)
    for spec in views([h for h in taxonomy if h in probs], kinds):
        _FAMILIES[spec.metrics](judge, spec)
    return judge.res


def selection_score(m: dict, specs: list[HeadSpec] | None = None) -> float:
    """What early stopping and checkpoint selection maximise: the mean of the views' targets present in ``m``."""
    keys = selection_targets() if specs is None else selection_targets(specs)
    vals = [m[k]["value"] if isinstance(m.get(k), dict) else m.get(k) for k in keys]
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def write_confusions(section: dict, out_dir: Path, split_name: str = "test") -> None:
    """Move every ``<name>_confusion`` of a report section into ``confusion_<name>.csv`` and ``.png``."""
    for key in [k for k in section if k.endswith("_confusion")]:
        name = key.removesuffix("_confusion")
        cm = section.pop(key)
        stem = f"confusion_{name}"
        M.confusion_csv(np.asarray(cm["matrix"]), cm["labels"], out_dir / f"{stem}.csv")
        M.confusion_png(
            np.asarray(cm["matrix"]),
            cm["labels"],
            out_dir / f"{stem}.png",
            f"{confusion_title(name)}, {split_name} split (track level)",
        )
        section[f"{key}_files"] = f"{stem}.csv, {stem}.png"


def read_thresholds(run_dir: Path) -> dict[str, list[float]]:
    """A run's validation-tuned thresholds (``thresholds.json``), ``{}`` when it has none."""
    path = Path(run_dir) / "thresholds.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# --------------------------------------------------------------------------- robustness and domain shift


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
            plans[c.key] = D.Augment(
                nc.file, float(snr), int(rng.integers(D.max_noise_offset(cfg.frontend.sample_rate)))
            )
    cache.compute([(c, plans[c.key]) for c in split.clips if c.key in plans], root, cfg.workers)
    keep = [i for i, c in enumerate(split.clips) if c.key in plans and cache.has(c, plans[c.key], root)]
    return split.subset(keep, [[cache.load(split.clips[i], plans[split.clips[i].key], root)] for i in keep])


def _agreement(a: dict, b: dict, heads) -> dict[str, float]:
    out = {}
    for h in heads:
        if h in a:
            out[h] = float(np.mean(a[h].argmax(axis=1) == b[h].argmax(axis=1)))
    return out


def domain_shift(
    split, root: Path, onnx_path: Path, heads=("quadrant", "genre"), limit: int | None = None
) -> dict[str, Any]:
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


def evaluate_run(
    run_dir: str | Path, data_root: Path, *, domain_limit: int | None = None, noise_draws: int = 3
) -> dict[str, Any]:
    """Full test report of a trained run (``best.pt``), written as report.json / report.md.

    The robustness table mixes each test music clip with a held-back noise clip
    (ESC-50 test categories) at 20, 10, 5 and 0 dB; each of ``noise_draws``
    draws picks a new noise clip and offset per music clip, and the table gives
    the mean over draws (and the range of the drop in points).
    """
    # train imports this module's metrics; its run machinery is imported here, when a run is evaluated.
    from . import require_torch
    from .train import TrainConfig, build_model, prepare_data, run_head_kinds, track_probs

    torch = require_torch()
    run = Path(run_dir)
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    taxonomy, splits = prepare_data(cfg, data_root)
    kinds = run_head_kinds(cfg, taxonomy)
    model = build_model(cfg, taxonomy)
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    model.eval()

    test = splits["test"]
    tp, twp, to = track_probs(test, cfg, model, kinds)
    report: dict[str, Any] = {
        "model": f"{cfg.name}@{cfg.version}",
        "best_epoch": int(ck["epoch"]),
        "test_clips": len(test.clips),
    }
    report["test"] = head_metrics(test, tp, twp, to, taxonomy, ci=True, thresholds=read_thresholds(run), kinds=kinds)
    write_confusions(report["test"], run)

    def judge_noisy(snr: float, seed: int) -> dict:
        ns = _noisy_split(test, cfg, data_root, noise, snr, seed)
        p, wp, o = track_probs(ns, cfg, model, kinds)
        return head_metrics(ns, p, wp, o, taxonomy, kinds=kinds)

    # Robustness: held-back noise categories (the ESC-50 test split) at fixed SNRs.
    noise = [c for c in test.clips if not c.music]
    report["robustness"] = robustness_rows(report["test"], judge_noisy if noise else None, noise_draws)

    onnx = sorted((run / "export").glob("*.onnx"))
    if onnx and domain_limit != 0:  # --domain-limit 0 skips the check
        report["domain_shift"] = domain_shift(test, data_root, onnx[0], limit=domain_limit)
    json_path, md_path = M.write_report(report, run)
    _LOGGER.info("wrote %s and %s", json_path, md_path)
    return report


def robustness_rows(
    clean_section: Mapping[str, Any], judge: Callable[[float, int], dict] | None, noise_draws: int
) -> list[dict[str, Any]]:
    """The robustness table: the clean numbers, then each SNR's mean over noise draws and its drop in points.

    Parameters
    ----------
    clean_section : mapping
        The clean test section (:data:`ROBUSTNESS_KEYS` are read from it).
    judge : callable(snr_db, seed) -> dict, or None
        The metrics of the test split with one noise draw mixed in; None (no
        held-back noise clips) gives the clean row only.
    noise_draws : int
        Draws per SNR.
    """
    clean = {k: (v["value"] if isinstance(v, dict) else v) for k, v in clean_section.items() if k in ROBUSTNESS_KEYS}
    rows: list[dict[str, Any]] = [{"snr_db": "clean", **{k: round(v, 4) for k, v in clean.items()}}]
    if judge is None:
        return rows
    for snr in SNRS:
        # One noise draw flips a few of ~100 clips either way; the mean over draws is what is reported.
        draws = [judge(snr, seed) for seed in range(noise_draws)]
        row: dict[str, Any] = {"snr_db": snr, "noise_draws": noise_draws}
        for k in clean:
            vals = [float(m[k]) for m in draws if k in m]
            if vals:
                row[k] = round(float(np.mean(vals)), 4)
                row[f"{k}_drop_points"] = round(100 * (clean[k] - float(np.mean(vals))), 2)
                row[f"{k}_drop_points_range"] = [
                    round(100 * (clean[k] - max(vals)), 2),
                    round(100 * (clean[k] - min(vals)), 2),
                ]
        rows.append(row)
    return rows
