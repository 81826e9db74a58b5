"""Classifier training: config, data, masked multi-head losses, checkpoints, selection, export.

One run lives in a folder (``out_dir``): ``config.json`` (the resolved config),
``last.pt`` / ``best.pt`` checkpoints (model, optimiser, epoch, history; loaded
with ``weights_only=True``), ``history.json`` (per-epoch metrics), and, after
training, ``thresholds.json``, ``report.json``/``report.md`` and ``export/``
(the ONNX model and its card). ``--resume`` continues from ``last.pt``.

Features are the runtime frontend's pre-window mel spectrograms (cached on disk
by :class:`~mirtag.trainer.data.FeatureCache`); each epoch cuts every training
clip into windows at a random phase (the time-shift augmentation) from its
clean or one of its noisy variants, with the runtime's own ``cut_windows``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mirtag.runtime.card import FrontendConfig, Head
from mirtag.runtime.decisions import calibrate
from mirtag.runtime.errors import MirtagError, ParameterError
from mirtag.runtime.frontend import cut_windows, window_starts

from . import data as D
from . import metrics as M
from . import require_torch
from .calibrate import fit_decisions
from .evaluate import head_metrics, selection_score, write_confusions
from .heads import head_kinds, manifest_head_kinds, spec_for, views

_LOGGER = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything a run depends on (TOML sections ``run``, ``data``, ``frontend``, ``model``, ``train``)."""

    name: str = "mirtag-tagger"
    version: str = "1.0.0"
    seed: int = 0
    out_dir: str = "runs/tagger"
    # data
    datasets: tuple[str, ...] = ("4q", "emotify", "esc50")
    """Built-in readers: ``4q``, ``emotify``, ``esc50`` (manifests under the data root) and ``gtzan``."""
    gtzan_dir: str = "gtzan"
    """The GTZAN folder (``genres/<genre>/<genre>.000NN.wav|.au``), relative to the data root, read when
    ``datasets`` names ``gtzan``; its split comes from the fault-filtered lists."""
    manifests: tuple[dict, ...] = ()
    """Extra CSV manifests, each a dataset of its own (TOML ``[[data.manifests]]`` tables): ``name``,
    ``file`` (relative to the data root, as are its ``file`` column's paths), ``labels`` (column ->
    ``[head, kind]`` or ``[head, kind, label]``, kind ``single``/``multi``/``soft``), and optional
    ``group`` (artist column), ``split`` (column fixing the split) and ``music`` (default true)."""
    cache_dir: str = "cache/features"
    workers: int = 2
    noise_variants: int = 2
    snr_db: tuple[float, float] = (0.0, 20.0)
    noise_mix_variants: int = 0
    """Mixtures of two noise clips per non-music training clip (extra negatives for ``music``)."""
    noise_mix_snr_db: tuple[float, float] = (-6.0, 6.0)
    min_genre: int = 30
    min_mood: int = 25
    heads: tuple[str, ...] = ("genre", "quadrant", "moods", "music", "emotions")
    # model
    arch: str = "cnn"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.3
    # optimisation
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 8
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights (per batch); validation, checkpoints and
    export use it. Smooths the epoch-to-epoch swings of small validation sets (0 = off)."""
    clean_prob: float = 0.5
    noise_repeat: int = 4
    """How often each non-music (ESC-50) training clip is seen per epoch (class balance)."""
    threads: int = 2
    device: str = "auto"
    """``auto`` (the first CUDA GPU when torch sees one, else the CPU), ``cpu`` or ``cuda[:N]``."""
    amp: bool = True
    """Mixed precision on CUDA (bfloat16 autocast, or float16 with loss scaling); the CPU stays float32."""
    input: str = "hpss"
    """Model input: ``hpss`` (harmonic and percussive mel channels, what ships) or ``mel`` (the two summed
    back into the plain mel spectrogram, one channel: H + P = S with margin 1). ``mel`` is the HPSS ablation;
    the runtime frontend has no such mode, so those runs are evaluated but not exported."""
    export: bool = True
    """Export to ONNX at the end of training (ablation runs may skip it)."""
    head_weights: dict[str, float] = field(default_factory=lambda: {"music": 0.5, "emotions": 0.5})
    max_clips: int = 0
    """Use only this many clips per dataset (0 = all): for smoke tests."""
    # distillation ([distill] section; see mirtag.trainer.distill and docs/teacher.md)
    teacher_dir: str = ""
    """The teacher cache written by scripts/teacher_label.py (``$VARS`` expanded); empty = no distillation."""
    tags_weight: float = 1.0
    """Weight of the ``tags`` head's BCE to the teacher's per-window probabilities."""
    embed_weight: float = 0.5
    """Weight of the MSE of the projected embedding to the teacher's standardised features."""
    debian_windows: int = 8
    """Labelled windows per epoch from each Debian track (long tracks are labelled sparsely)."""
    teacher_genres: bool = False
    """Debian tracks also supervise the ``genre`` head with the teacher's genre tags (distill.GENRES_FROM_TEACHER)."""
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str] | None, **overrides: Any) -> TrainConfig:
        """Read a TOML config (flat keys inside any section but ``frontend``) and apply overrides."""
        values = read_flat_toml(path, cls, overrides)
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (a run's ``config.json``)."""
        d = dict(d)
        fe = dict(d.pop("frontend", {}))
        for key in ("hpss_kernel", "hpss_margin", "channels"):
            if key in fe:
                fe[key] = tuple(fe[key])
        for key in ("datasets", "snr_db", "noise_mix_snr_db", "heads", "channels", "manifests"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(frontend=FrontendConfig(**fe), **d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["frontend"] = dataclasses.asdict(self.frontend)
        return d


def read_flat_toml(
    path: str | os.PathLike[str] | None, config_cls, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A config file's keys, flattened across its sections (``[frontend]`` stays a nested dict).

    Overrides that are not None win; unknown keys raise ParameterError.
    """
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
        for section, table in doc.items():
            if not isinstance(table, dict):
                values[section] = table
            elif section == "frontend":
                values.setdefault("frontend", {}).update(table)
            else:
                values.update(table)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(values) - {f.name for f in dataclasses.fields(config_cls)}
    if unknown:
        raise ParameterError(f"unknown config keys: {sorted(unknown)}")
    return values


def run_head_kinds(cfg: TrainConfig, taxonomy: dict[str, Any]) -> dict[str, str]:
    """``softmax`` or ``sigmoid`` for each head of a run's taxonomy (a manifest's single-label head: softmax)."""
    return head_kinds(taxonomy, manifest_head_kinds(cfg.manifests))


# --------------------------------------------------------------------------- data


@dataclass
class Split:
    """Clips of one split with their targets, masks and cached mel spectrograms."""

    clips: list
    targets: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    mels: list[list[np.ndarray]]  # per clip: [clean, noisy_1, ...] (2, n_mels, T) float16 memmaps
    teacher: Any = None  # distill.TeacherTargets when the run distils

    def subset(self, keep: list[int], mels: list[list[np.ndarray]] | None = None) -> Split:
        """The clips at ``keep`` (with other mels per kept clip, when given)."""
        return Split(
            [self.clips[i] for i in keep],
            {h: t[keep] for h, t in self.targets.items()},
            {h: m[keep] for h, m in self.masks.items()},
            [self.mels[i] for i in keep] if mels is None else mels,
        )


def read_manifest_spec(spec: dict, root: Path) -> list:
    """The clips of one ``[[data.manifests]]`` table (see :attr:`TrainConfig.manifests`)."""
    unknown = set(spec) - {"name", "file", "labels", "group", "split", "music"}
    missing = {"name", "file", "labels"} - set(spec)
    if unknown or missing:
        raise ParameterError(
            f"manifest {spec.get('name', '?')!r}: "
            + (f"unknown keys {sorted(unknown)} " if unknown else "")
            + (f"missing keys {sorted(missing)}" if missing else "")
        )
    return D.read_manifest(
        Path(root) / spec["file"],
        root,
        label_columns={c: tuple(v) for c, v in spec["labels"].items()},
        dataset=spec["name"],
        group_column=spec.get("group"),
        split_column=spec.get("split"),
        music=bool(spec.get("music", True)),
    )


def load_clips(cfg: TrainConfig, root: Path) -> list:
    """Every clip of the run's datasets and manifests (``max_clips`` of each when set)."""
    readers = {
        "4q": D.read_4q,
        "emotify": D.read_emotify,
        "esc50": D.read_esc50,
        "gtzan": lambda r: D.read_gtzan(Path(r) / cfg.gtzan_dir),
    }
    sources = []
    for name in cfg.datasets:
        if name not in readers:
            raise ParameterError(
                f"unknown dataset {name!r} (have {sorted(readers)}; CSV manifests go in [[data.manifests]])"
            )
        sources.append(readers[name])
    sources += [lambda r, spec=spec: read_manifest_spec(spec, r) for spec in cfg.manifests]
    clips = []
    for read in sources:
        got = read(root)
        if cfg.max_clips:
            rng = np.random.default_rng(cfg.seed)
            got = [got[i] for i in sorted(rng.choice(len(got), min(cfg.max_clips, len(got)), replace=False))]
        clips += got
    return clips


def assign_splits(clips: list, cfg: TrainConfig) -> dict[str, str]:
    """Committed splits where they exist (the real data), computed ones otherwise (tests)."""
    out: dict[str, str] = {}
    for name in {c.dataset for c in clips}:
        subset = [c for c in clips if c.dataset == name]
        try:
            committed = D.read_splits(name)
        except MirtagError:
            committed = {}
        if committed and all(c.key in committed for c in subset):
            out.update({c.key: committed[c.key] for c in subset})
        else:
            _LOGGER.info("%s: no committed split covers these clips; splitting with seed %d", name, cfg.seed)
            out.update(D.make_splits(subset, seed=cfg.seed))
    return out


def prepare_data(cfg: TrainConfig, root: Path, progress: Callable[[int, int], None] | None = None):
    """Read clips, split, build the taxonomy, plan augments and fill the feature cache.

    Returns
    -------
    taxonomy : dict head -> labels
    splits : dict split name -> Split
    """
    clips = load_clips(cfg, root)
    split_of = assign_splits(clips, cfg)
    teacher = None
    if cfg.teacher_dir:
        from . import distill
        from .teacher_cache import TeacherCache

        teacher = TeacherCache(cfg.teacher_dir)
        debian = teacher.debian_clips()
        clips += debian
        split_of.update({c.key: "train" for c in debian})
    # A manifest's genres join the taxonomy (GTZAN's lower-case names are mapped onto it instead).
    taxonomy = D.build_taxonomy(
        clips, cfg.min_genre, cfg.min_mood, genre_datasets=("4q", "emotify", *(m["name"] for m in cfg.manifests))
    )
    taxonomy = {h: labels for h, labels in taxonomy.items() if h in cfg.heads and labels}
    if teacher is not None:
        taxonomy[distill.TAGS_HEAD] = distill.tag_names()
    noise = [c for c in clips if not c.music and split_of[c.key] == "train"]
    # the Debian music is unlabelled widening: clean only (its noisy variants would cost hours of features)
    train = [c for c in clips if split_of[c.key] == "train" and c.dataset != "debian"]
    plans = D.plan_augments(
        train,
        noise,
        cfg.noise_variants if noise else 0,
        cfg.seed,
        tuple(cfg.snr_db),
        k_mix=cfg.noise_mix_variants,
        mix_snr_range=tuple(cfg.noise_mix_snr_db),
    )
    for c in clips:
        plans.setdefault(c.key, [D.CLEAN])
    cache = D.FeatureCache(cfg.cache_dir, cfg.frontend)
    stats = cache.compute([(c, a) for c in clips for a in plans[c.key]], root, cfg.workers, progress)
    failed = {key for key, _ in stats.failures}
    out = {}
    for name in ("train", "validation", "test"):
        members = [c for c in clips if split_of[c.key] == name and c.key not in failed]
        targets, masks = D.encode_targets(members, taxonomy)
        mels = [[cache.load(c, a, root) for a in plans[c.key] if cache.has(c, a, root)] for c in members]
        out[name] = Split(members, targets, masks, mels)
    if teacher is not None:
        genres = taxonomy.get(distill.GENRE_HEAD) if cfg.teacher_genres else None
        stats = distill.attach(out["train"], teacher, root, cfg.frontend, genre_labels=genres)
        for name in ("validation", "test"):
            distill.attach(out[name], teacher, root, cfg.frontend, stats)
    return taxonomy, out


# --------------------------------------------------------------------------- batches


def epoch_windows(split: Split, cfg: TrainConfig, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(clip, variant, start) of every training window of one epoch, shuffled.

    Each clip is cut at a random phase (time shift) from its clean version with
    probability ``clean_prob``, else from one of its noisy variants.
    """
    c = cfg.frontend
    items = []
    for i, variants in enumerate(split.mels):
        repeat = 1 if split.clips[i].music else cfg.noise_repeat
        for _ in range(repeat):
            v = 0 if len(variants) == 1 or rng.random() < cfg.clean_prob else int(rng.integers(1, len(variants)))
            n = variants[v].shape[2]
            if n <= c.window_frames:
                starts = [0]
            else:
                phase = int(rng.integers(0, min(c.window_hop, n - c.window_frames + 1)))
                starts = range(phase, n - c.window_frames + 1, c.window_hop)
            items += [(i, v, s) for s in starts]
    rng.shuffle(items)
    return items


def model_input(mel: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """The pre-window mel bands (2, n_mels, frames) as the model of ``cfg.input`` reads them (float32)."""
    mel = np.asarray(mel, dtype=np.float32)
    if cfg.input == "mel":
        return mel.sum(axis=0, keepdims=True)
    if cfg.input != "hpss":
        raise ParameterError(f"input must be 'hpss' or 'mel', got {cfg.input!r}")
    return mel


def input_channels(cfg: TrainConfig) -> int:
    """Channels of the model input: 2 (harmonic, percussive) or 1 (plain mel)."""
    return 1 if cfg.input == "mel" else 2


def build_model(cfg: TrainConfig, taxonomy: dict[str, list[str]]):
    """The untrained classifier of a run's config and taxonomy."""
    from .models import Classifier, ModelConfig

    model = Classifier(
        ModelConfig(
            arch=cfg.arch,
            channels=tuple(cfg.channels),
            dropout=cfg.dropout,
            heads={h: len(v) for h, v in taxonomy.items()},
            in_channels=input_channels(cfg),
        )
    )
    if cfg.teacher_dir:
        from .distill import add_projection

        add_projection(model)
    return model


def make_batch(split: Split, items, cfg: TrainConfig):
    """Windows (B, channels, n_mels, F) float32 and per-head targets/masks for ``items``."""
    c = cfg.frontend
    x = np.empty((len(items), input_channels(cfg), c.n_mels, c.window_frames), np.float32)
    for b, (i, v, s) in enumerate(items):
        mel = model_input(split.mels[i][v][:, :, s : s + c.window_frames], cfg)
        x[b] = cut_windows(mel, np.zeros(1, np.int64), c)[0][0]
    idx = np.fromiter((i for i, _, _ in items), np.int64, len(items))
    targets, masks = {h: t[idx] for h, t in split.targets.items()}, {h: m[idx] for h, m in split.masks.items()}
    if split.teacher is not None:
        from . import distill

        distill.window_targets(split, items, targets, masks, tolerance=c.window_hop)
    return x, targets, masks


def standard_windows(split: Split, cfg: TrainConfig, variant: int = 0):
    """The windows the runtime would cut (clean unless ``variant``), and their clip index."""
    xs, owner = [], []
    for i, variants in enumerate(split.mels):
        mel = model_input(variants[variant], cfg)
        w, _ = cut_windows(mel, window_starts(mel.shape[2], cfg.frontend), cfg.frontend)
        xs.append(w)
        owner.append(np.full(len(w), i))
    return np.concatenate(xs), np.concatenate(owner)


# --------------------------------------------------------------------------- losses and prediction


def masked_loss(logits: dict, targets: dict, masks: dict, kinds: dict, weights: dict):
    """Sum over heads of each head's masked loss (sigmoid: BCE per label; softmax: CE per row)."""
    torch = require_torch()
    F = torch.nn.functional
    total = 0.0
    parts = {}
    for h, z in logits.items():
        t, m = targets[h], masks[h]
        z = z.float()  # autocast logits may be half precision; the losses stay float32
        if kinds[h] == "softmax":
            rows = m.amax(dim=1) > 0
            if not rows.any():
                continue
            loss = -(t[rows] * F.log_softmax(z[rows], dim=1)).sum(dim=1).mean()
        else:
            if m.sum() == 0:
                continue
            loss = (F.binary_cross_entropy_with_logits(z, t, reduction="none") * m).sum() / m.sum()
        parts[h] = float(loss.detach())
        total = total + weights.get(h, 1.0) * loss
    return total, parts


def predict(model, x: np.ndarray, kinds: dict, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Window probabilities per head (eval mode, no grad, float32, on the model's device)."""
    torch = require_torch()
    model.eval()
    device = next(model.parameters()).device
    outs: dict[str, list[np.ndarray]] = {h: [] for h in kinds}
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            logits = model(torch.from_numpy(np.ascontiguousarray(x[s : s + batch_size])).to(device))
            for h, z in logits.items():
                p = torch.softmax(z, dim=1) if kinds[h] == "softmax" else torch.sigmoid(z)
                outs[h].append(p.cpu().numpy())
    return {h: np.concatenate(v) for h, v in outs.items()}


def track_probs(split: Split, cfg: TrainConfig, model, kinds: dict, variant: int = 0):
    x, owner = standard_windows(split, cfg, variant)
    probs = predict(model, x, kinds)
    n = len(split.clips)
    return {h: M.track_level(p, owner, n) for h, p in probs.items()}, probs, owner


# --------------------------------------------------------------------------- the run


class WeightAverage:
    """Exponential moving average of a model's parameters and buffers, with warm-up.

    The decay at update ``n`` is ``min(decay, (1 + n) / (10 + n))``, so early
    averages do not remember the initial weights, nor BatchNorm's initial
    running variance of 1 (a constant decay kept ~10 % of it after 1,000
    updates and wrecked the first layer's normalisation).
    """

    def __init__(self, model, decay: float):
        import copy

        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0

    def update(self, model) -> None:
        torch = require_torch()
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            live = model.state_dict()
            for k, v in self.module.state_dict().items():
                if v.dtype.is_floating_point:
                    v.lerp_(live[k], 1.0 - d)
                else:
                    v.copy_(live[k])
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass
class _Run:
    """The live state of a training run: what ``last.pt`` saves and resumes."""

    model: Any
    opt: Any
    sched: Any
    ema: WeightAverage | None
    precision: Any
    rng: np.random.Generator
    start: int = 0
    best_score: float = -math.inf
    stale: int = 0
    history: list = field(default_factory=list)

    @property
    def judged(self):
        """The weights validation, checkpoint selection and export use (the average when ``ema_decay``)."""
        return self.ema.module if self.ema is not None else self.model


def _open_run_folder(cfg: TrainConfig, resume: bool) -> Path:
    """``out_dir`` with the run's ``config.json`` (a warning when a resumed run's config changed)."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if resume and (out / "config.json").is_file():
        saved = json.loads((out / "config.json").read_text())
        if saved != json.loads(json.dumps(cfg.to_dict())):
            _LOGGER.warning("resuming with a config that differs from the run's config.json")
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    return out


def _new_run(cfg: TrainConfig, taxonomy: dict, device, out: Path, resume: bool, say: Callable[[str], None]) -> _Run:
    """Model, optimiser, schedule, weight average and loss scaling; from ``last.pt`` when resuming."""
    torch = require_torch()
    from .device import MixedPrecision

    model = build_model(cfg, taxonomy).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(
        model=model,
        opt=opt,
        sched=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs)),
        ema=WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None,
        precision=MixedPrecision(device, cfg.amp),
        rng=np.random.default_rng(cfg.seed),
    )
    last = out / "last.pt"
    if resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        if run.ema is not None and "ema" in ck:
            run.ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        run.sched.load_state_dict(ck["scheduler"])
        run.precision.load_state_dict(ck.get("scaler", {}))
        run.start, run.best_score, run.stale = int(ck["epoch"]) + 1, float(ck["best_score"]), int(ck["stale"])
        run.history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
        run.rng = np.random.default_rng([cfg.seed, run.start])
        torch.manual_seed(cfg.seed + run.start)
        say(f"resumed at epoch {run.start} (best score so far {run.best_score:.4f})")
    return run


def _train_epoch(run: _Run, train: Split, cfg: TrainConfig, kinds: dict, device, reporter=None) -> float:
    """One pass over the training windows; returns the mean batch loss."""
    torch = require_torch()

    def tensors(arrays: dict) -> dict:
        return {h: torch.from_numpy(v).to(device, non_blocking=True) for h, v in arrays.items()}

    run.model.train()
    tap = None
    if train.teacher is not None:
        from . import distill

        items = distill.epoch_windows(train, cfg, run.rng, epoch_windows)
        tap = distill.EmbeddingTap(run.model)
    else:
        items = epoch_windows(train, cfg, run.rng)
    n_batches = math.ceil(len(items) / cfg.batch_size)
    running = 0.0
    weights = {**cfg.head_weights, "tags": cfg.tags_weight}
    for b in range(n_batches):
        x, t, m = make_batch(train, items[b * cfg.batch_size : (b + 1) * cfg.batch_size], cfg)
        with run.precision.autocast():
            logits = run.model(torch.from_numpy(x).to(device, non_blocking=True))
            t, m = tensors(t), tensors(m)
            loss, _ = masked_loss(logits, t, m, kinds, weights)
            if tap is not None:
                loss = loss + cfg.embed_weight * distill.embedding_loss(run.model, tap, t, m)
        run.precision.step(loss, run.opt)
        if run.ema is not None:
            run.ema.update(run.model)
        running += float(loss.detach())
        if reporter:
            reporter.progress(b + 1, n_batches)
    if tap is not None:
        tap.close()
    run.sched.step()
    return running / max(1, n_batches)


def _save_checkpoints(run: _Run, epoch: int, score: float, improved: bool, out: Path) -> None:
    """``best.pt`` (the judged weights) when the score improved; ``last.pt`` (everything a resume needs) always."""
    torch = require_torch()
    if improved:
        torch.save({"model": run.judged.state_dict(), "epoch": epoch, "score": score}, out / "best.pt")
    torch.save(
        {
            "model": run.model.state_dict(),
            "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(),
            "epoch": epoch,
            "best_score": run.best_score,
            "stale": run.stale,
            **({"ema": run.ema.state_dict()} if run.ema is not None else {}),
            **({"scaler": run.precision.state_dict()} if run.precision.state_dict() else {}),
        },
        out / "last.pt",
    )
    (out / "history.json").write_text(json.dumps(run.history, indent=1))


def _fit(
    run: _Run, cfg: TrainConfig, splits: dict[str, Split], taxonomy: dict, kinds: dict, device, out: Path, reporter=None
) -> None:
    """Epochs until ``cfg.epochs`` or ``patience`` epochs without a better validation score."""
    train, val = splits["train"], splits["validation"]
    specs = views(taxonomy, kinds)
    val_x, val_owner = standard_windows(val, cfg)
    session_seconds: list[float] = []
    for epoch in range(run.start, cfg.epochs):
        if run.stale >= cfg.patience:
            break
        t0 = time.time()
        loss = _train_epoch(run, train, cfg, kinds, device, reporter)
        wp = predict(run.judged, val_x, kinds)
        probs = {h: M.track_level(p, val_owner, len(val.clips)) for h, p in wp.items()}
        vm = head_metrics(val, probs, wp, val_owner, taxonomy, kinds=kinds)
        score = selection_score(vm, specs)
        row = {
            "epoch": epoch,
            "loss": loss,
            "score": score,
            "seconds": time.time() - t0,
            **{k: v for k, v in vm.items() if isinstance(v, float)},
        }
        run.history.append(row)
        improved = score > run.best_score
        if improved:
            run.best_score, run.stale = score, 0
        else:
            run.stale += 1
        _save_checkpoints(run, epoch, score, improved, out)
        session_seconds.append(row["seconds"])
        # An upper bound: early stopping may end the run sooner.
        eta = float(np.mean(session_seconds)) * (cfg.epochs - epoch - 1)
        if reporter:
            reporter.epoch(row | {"best": improved, "eta_s": eta})
        else:
            _LOGGER.info("epoch %d: %s (run ETA at most %.0f min)", epoch, json.dumps(row), eta / 60)


def _select_and_report(
    model,
    cfg: TrainConfig,
    splits: dict[str, Split],
    taxonomy: dict,
    kinds: dict,
    out: Path,
    say: Callable[[str], None],
) -> tuple[dict, dict, dict]:
    """Load ``best.pt``, tune thresholds on validation, report on test.

    Returns
    -------
    checkpoint, thresholds, report : dict
    """
    torch = require_torch()
    say("selecting the best checkpoint, tuning thresholds on validation")
    ck = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    model.to("cpu")  # evaluation, thresholds and export run on the CPU, as the runtime does
    val, test = splits["validation"], splits["test"]
    vp, vwp, vo = track_probs(val, cfg, model, kinds)
    # temperature, one precision-weighted threshold per sigmoid head, caps (the card's decisions)
    decided = fit_decisions(
        {h: Head(h, kinds[h], tuple(labels)) for h, labels in taxonomy.items()}, val.targets, vp, val.masks
    )
    (out / "decisions.json").write_text(
        json.dumps(
            {
                h: {"temperature": d.temperature, "thresholds": d.thresholds, "max_labels": d.max_labels}
                for h, d in decided.items()
            },
            indent=1,
        )
    )
    # the same decisions on uncalibrated probabilities (temperature scaling is monotonic per label), for the report
    thresholds = {
        h: calibrate(np.asarray([d.threshold(lab) for lab in d.labels]), "sigmoid", 1.0 / d.temperature)
        .round(4)
        .tolist()
        for h, d in decided.items()
        if kinds[h] == "sigmoid"
    }
    (out / "thresholds.json").write_text(json.dumps(thresholds, indent=1))

    say("evaluating on test (bootstrap 95 % intervals)")
    tp, twp, to = track_probs(test, cfg, model, kinds)
    report = {
        "model": f"{cfg.name}@{cfg.version}",
        "best_epoch": int(ck["epoch"]),
        "validation": head_metrics(val, vp, vwp, vo, taxonomy, kinds=kinds),
        "test": head_metrics(test, tp, twp, to, taxonomy, ci=True, thresholds=thresholds, kinds=kinds),
    }
    write_confusions(report["test"], out)
    M.write_report(report, out)
    return ck, thresholds, report


def train_classifier(cfg: TrainConfig, data_root: Path, *, resume: bool = False, reporter=None) -> Path:
    """Train, select on validation, tune thresholds, report on test, export. Returns the run folder.

    ``reporter`` is an optional object with ``stage(text)``, ``progress(done, total)``
    and ``epoch(dict)`` methods (the CLI's rich display); logging is used otherwise.
    """
    torch = require_torch()
    from .device import pick_device, tune_cpu
    from .models import count_parameters

    device = pick_device(cfg.device)  # before any work: a wrong device name fails at once
    out = _open_run_folder(cfg, resume)
    torch.manual_seed(cfg.seed)
    tune_cpu(cfg.threads)
    say = reporter.stage if reporter else (lambda text: _LOGGER.info("%s", text))

    say("features: reading clips and filling the cache")
    taxonomy, splits = prepare_data(cfg, data_root, reporter.progress if reporter else None)
    kinds = run_head_kinds(cfg, taxonomy)
    say(
        f"data: {len(splits['train'].clips)} train / {len(splits['validation'].clips)} validation / "
        f"{len(splits['test'].clips)} test clips; " + ", ".join(f"{h} {len(v)}" for h, v in taxonomy.items())
    )

    run = _new_run(cfg, taxonomy, device, out, resume, say)
    precision = run.precision
    say(
        f"model: {cfg.arch} {tuple(cfg.channels)}, input {cfg.input}, {count_parameters(run.model):,} parameters; "
        f"training on {device} ({'mixed precision ' + str(precision.dtype).removeprefix('torch.') if precision.enabled else 'float32'})"
    )
    _fit(run, cfg, splits, taxonomy, kinds, device, out, reporter)

    ck, thresholds, report = _select_and_report(run.model, cfg, splits, taxonomy, kinds, out, say)
    if not cfg.export:
        say("export = false: not exporting")
        return out
    say("exporting to ONNX")
    export_run(
        cfg,
        run.model,
        taxonomy,
        thresholds,
        splits["test"],
        report["test"],
        best_epoch=int(ck["epoch"]),
        validation_score=float(ck["score"]),
        out_dir=out / "export",
        decisions=json.loads((out / "decisions.json").read_text()),
    )
    return out


def export_run(
    cfg: TrainConfig,
    model,
    taxonomy: dict[str, list[str]],
    thresholds: dict[str, list[float]],
    test: Split,
    test_report: dict,
    *,
    best_epoch: int,
    validation_score: float,
    out_dir: Path,
    decisions: dict[str, dict] | None = None,
):
    """Export a trained classifier (on the CPU) into ``out_dir`` with its card: labels, validation thresholds,
    frontend, and provenance (commit, config, best epoch, validation score, test report, datasets).
    ``decisions`` (a run's ``decisions.json``) gives each head's temperature, calibrated thresholds and
    cap; without it the card gets ``thresholds`` as they are.

    Returns the :class:`~mirtag.runtime.card.ModelCard` as written.
    """
    from .export import export_classifier

    kinds = run_head_kinds(cfg, taxonomy)
    heads = []
    for h, labels in taxonomy.items():
        thr = {lab: round(float(v), 3) for lab, v in zip(labels, thresholds[h])} if h in thresholds else None
        d = (decisions or {}).get(h, {})
        if d.get("thresholds"):
            thr = {lab: round(float(v), 3) for lab, v in d["thresholds"].items()}
        heads.append(
            Head(
                h,
                kinds[h],
                tuple(labels),
                descriptions=spec_for(h).descriptions,
                thresholds=thr,
                temperature=d.get("temperature"),
                max_labels=d.get("max_labels"),
            )
        )
    x_parity = standard_windows(test, cfg)[0][:8] if test.clips else None
    return export_classifier(
        model,
        out_dir=out_dir,
        name=cfg.name,
        version=cfg.version,
        frontend=cfg.frontend,
        heads=heads,
        provenance={
            "trainer": "mirtag train classifier",
            "git_commit": _git_commit(),
            "config": cfg.to_dict(),
            "best_epoch": best_epoch,
            "validation_score": validation_score,
            "test": test_report,
            "data": sorted(cfg.datasets),
        },
        parity_inputs=x_parity,
        state_dict_file=f"{cfg.name}.pt",
    )
