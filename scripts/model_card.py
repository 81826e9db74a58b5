"""Write exported/MODEL_CARD.md from a classifier run's report and the shipped cards.

    python scripts/model_card.py runs/tagger [--generator runs/generator] [--out exported/MODEL_CARD.md]

Every number in the card comes from the run's ``report.json`` (written by
``mirtag evaluate``) and the cards in ``exported/``; nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mirtag.runtime.card import EMBEDDING_NAME, load_card, read_registry
from mirtag.trainer.heads import card_rows, decision_rows

ROOT = Path(__file__).resolve().parents[1]


def fmt(v) -> str:
    if isinstance(v, dict) and "value" in v:
        return f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
    if isinstance(v, float):
        return f"{v:.3f}"
    return "n/a" if v is None else str(v)


MAX_DROP_10DB = 3.0
"""Target: quadrant accuracy drops at most this many points at 10 dB of unseen noise."""


def value(v):
    return v["value"] if isinstance(v, dict) and "value" in v else v


def verdict(v, minimum) -> str:
    if minimum is None or value(v) is None:
        return ""
    return f">= {minimum:.2f}: **{'met' if value(v) >= minimum else 'missed'}**"


def decisions_table(test: dict) -> list[str]:
    """Accuracy and F1s of each head's decisions (``mirtag evaluate`` with thresholds.json)."""
    cols = ["accuracy", "top1_accuracy", "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1"]
    rows = [(name, [test.get(f"{key}_{c}") for c in cols]) for key, name in decision_rows()]
    rows = [(name, cells) for name, cells in rows if any(c is not None for c in cells)]
    if not rows:
        return []
    lines = [
        "",
        "### Decisions per head (test; multi-label F1s over labels with >= 5 test positives)",
        "",
        "| head | accuracy | top-1 accuracy | macro-F1 | weighted precision | weighted recall | weighted F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | " + " | ".join(fmt(c) if c is not None else "" for c in cells) + " |" for name, cells in rows
    ]
    return lines + [
        "",
        "Top-1 accuracy: the highest-scoring label is one of the clip's labels. Confusion matrices: "
        + ", ".join(
            f"`{f.strip()}`"
            for k, v in test.items()
            if k.endswith("_confusion_files")
            for f in v.split(",")
            if f.strip().endswith(".csv")
        )
        + " in the run folder.",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--generator", type=Path)
    ap.add_argument("--map-targets", type=Path, help="output of scripts/map_targets.py, included verbatim")
    ap.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="LABEL=RUN",
        help="a run folder (with report.json from mirtag evaluate) for the ablation table; repeatable",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "exported" / "MODEL_CARD.md")
    args = ap.parse_args()
    report = json.loads((args.run / "report.json").read_text())
    reg = read_registry(ROOT / "exported")
    card = load_card(ROOT / "exported" / reg["models"][reg["default"]["classifier"]]["card"])
    history = json.loads((args.run / "history.json").read_text()) if (args.run / "history.json").is_file() else []
    test = report["test"]
    lines = [f"# Model card: {card.ref}"]
    lines += what_it_predicts(card)
    lines += architecture(card)
    lines += DATA_AND_LICENCES
    lines += training(card, report, history, args.run)
    lines += test_results(report)
    lines += robustness_section(report.get("robustness") or [])
    lines += domain_shift_section(report.get("domain_shift"))
    lines += non_music_section(test)
    lines += genre_per_label_section(test)
    if args.ablation:
        lines += ablation_table(("shipped", args.run), *(a.split("=", 1) for a in args.ablation))
    lines += limitations(card)
    if args.generator and (args.generator / "history.json").is_file():
        lines += generator_section(args.generator)
        if args.map_targets and args.map_targets.is_file():
            lines += [
                "",
                "## Genre-map targets (`python scripts/map_targets.py`)",
                "",
                args.map_targets.read_text().strip(),
            ]
    old = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(keep_written_sections(old, "\n".join(lines) + "\n"))
    print(args.out)


def _shape(spec) -> str:
    """``(batch, 2, 84, 128)``: a tensor's shape as its card states it."""
    return "(" + ", ".join(str(d) for d in spec.shape) + ")"


def what_it_predicts(card) -> list[str]:
    """The heads, their kinds and labels, and the embedding."""
    lines = [
        "",
        "## What it predicts",
        "",
        f"From {card.frontend.window_seconds:.2f}-s windows of a track (harmonic and percussive mel spectrograms, see "
        "README), averaged over the track:",
        "",
    ]
    for h in card.heads:
        kind = "one label (softmax)" if h.kind == "softmax" else "independent labels (sigmoid)"
        labels = (
            ", ".join(h.labels) if len(h.labels) <= 16 else ", ".join(h.labels[:16]) + f", ... ({len(h.labels)} in all)"
        )
        lines.append(f"- `{h.name}`: {kind}: {labels}")
    embedding = next((t for t in card.outputs if t.name == EMBEDDING_NAME), None)
    if embedding is not None:
        lines.append(
            f"- `embedding`: {embedding.shape[-1]} pooled CNN features per window (mean over the track in the "
            "Tagger), for similarity search."
        )
    return lines + [
        "",
        "Quadrants: Q1 happy/excited, Q2 angry/tense, Q3 sad/depressed, Q4 calm/relaxed (valence/arousal plane).",
        "Decisions (the `top` lists) follow calibrated probabilities, one precision-weighted threshold per head and",
        "a per-head cap, all fitted on validation; see 'Decisions and calibration' below.",
    ]


def architecture(card) -> list[str]:
    cfg = card.provenance["config"]
    return [
        "",
        "## Architecture and size",
        "",
        f"{'Plain conv-BN-ReLU-pool' if cfg['arch'] == 'cnn' else 'Residual squeeze-excitation'} CNN, channels {cfg['channels']}, one linear layer per head on mean+max pooled features; "
        f"input {_shape(card.inputs[0])}. ONNX opset "
        f"{card.provenance['export']['opset']}, {card.onnx_path.stat().st_size / 1e6:.2f} MB; "
        f"torch-vs-onnxruntime parity max abs diff {card.provenance['export']['parity_max_abs_diff']:.1e}.",
    ]


DATA_AND_LICENCES = [
    "",
    "## Data and licences",
    "",
    "- 4Q audio emotion dataset (Panda, Malheiro & Paiva, 2018): 720 AllMusic previews, quadrant, AllMusic genres",
    "  and moods. Research use. Split by normalised artist (no artist in two splits), 70/15/15, stratified by quadrant.",
    "- Emotify (Aljanaki, Wiering & Veltkamp, 2016): 320 excerpts, 4 genres mapped to Classical, Electronic,",
    "  Pop/Rock (they supervise only those three genre labels), 9 GEMS emotions as soft targets. No licence stated",
    "  (research use). Split 70/15/15 stratified by genre; it has no artist column, so artists may straddle splits",
    "  (a leakage risk that can flatter its numbers).",
    "- ESC-50 (Piczak, 2015), CC BY-NC 3.0: environmental sounds as 'not music' and as training noise; split by",
    "  category (40 train / 5 validation / 5 test), so the noise in the evaluation is of kinds never heard in training.",
    "- None of the audio ships with mirtag; the weights are the project's own. Splits: `trainer/splits/*.csv`.",
]


def training(card, report: dict, history: list, run: Path) -> list[str]:
    """Augmentation, optimiser, selection, and the commands that reproduce the run."""
    cfg = card.provenance["config"]
    train_minutes = sum(h.get("seconds", 0.0) for h in history) / 60
    distilled = bool(cfg.get("teacher_dir"))
    threads = cfg.get("threads")
    cores = f"{threads} CPU thread{'s' if threads != 1 else ''}" if threads else "2 CPU cores"
    if cfg.get("teacher_genres"):
        config = "configs/distill_genres.toml"
    else:
        config = "configs/distill.toml" if distilled else "configs/classifier.toml"
    return [
        "",
        "## Training",
        "",
        f"Noise augmentation: {cfg['noise_variants']} noisy variants per training clip (ESC-50 train categories, SNR",
        f"uniform in {cfg['snr_db']} dB), clean with probability {cfg['clean_prob']}; random window phase each epoch;",
        *(
            [
                f"each ESC-50 training clip also gets {cfg['noise_mix_variants']} mixtures with another ESC-50 training clip (SNR",
                f"uniform in {cfg.get('noise_mix_snr_db')} dB) as extra 'not music' examples;",
            ]
            if cfg.get("noise_mix_variants")
            else []
        ),
        *(
            [
                f"Distillation: BCE of the `tags` head to the teacher's per-window probabilities (weight {cfg['tags_weight']})",
                f"and MSE of a projection of the embedding to the teacher's standardised features (weight {cfg['embed_weight']}),",
                f"on the labelled training audio and {cfg['debian_windows']} random labelled windows per Debian track and epoch",
                "(see the teacher section below);",
            ]
            if distilled
            else []
        ),
        f"AdamW lr {cfg['lr']}, cosine schedule, batch {cfg['batch_size']}, masked multi-head losses, early stopping on",
        *(
            [
                f"validation of an exponential moving average of the weights (decay {cfg['ema_decay']} per batch, with warm-up),",
                "which is also what is exported",
            ]
            if cfg.get("ema_decay")
            else ["validation"]
        ),
        f"(best epoch {report.get('best_epoch')}). Commit {card.provenance.get('git_commit', 'unknown')[:12]}.",
        "",
        f"Reproduce ({len(history)} epochs took {train_minutes:.0f} minutes on {cores}; feature extraction adds",
        "about 10 minutes on an empty cache, the test report with robustness and domain shift about 6):",
        "",
        "```bash",
        "export MIRTAG_DATA=/path/to/shared/data",
        *(
            ["export MIRTAG_TEACHER=data/teacher   # the committed teacher labels (docs/teacher.md)"]
            if distilled
            else []
        ),
        f"mirtag train classifier --config {config} --seed {cfg.get('seed', 0)} --out-dir {run.as_posix()}"
        "   # features, training, test report, ONNX export",
        f"mirtag evaluate {run.as_posix()}       # + robustness and domain-shift tables",
        f"mirtag export {run.as_posix()} --out exported   # install into exported/ + registry.json",
        f"python scripts/model_card.py {run.as_posix()}   # this file",
        "```",
    ]


def test_results(report: dict) -> list[str]:
    """The target metrics (rows from the heads table), the 10 dB drop, and the decisions table."""
    test = report["test"]
    lines = [
        "",
        f"## Test results ({report.get('test_clips', '?')} test clips, track level, bootstrap 95 % intervals)",
        "",
        "| metric | test | target |",
        "|---|---|---|",
    ]
    for row in card_rows():
        if row.key in test:
            lines.append(f"| {row.name} | {fmt(test[row.key])} | {verdict(test[row.key], row.minimum)} |")
    drop, _ = drop_at_10db(report)
    if drop is not None:
        lines.append(
            f"| Quadrant accuracy drop at 10 dB of unseen noise (points, mean of draws) | {drop:.1f} | "
            f"<= {MAX_DROP_10DB:.0f}: **{'met' if drop <= MAX_DROP_10DB else 'missed'}** |"
        )
    return lines + decisions_table(test)


def robustness_section(rob: list) -> list[str]:
    if not rob:
        return []
    lines = [
        "",
        "### Robustness: held-back noise categories mixed in (ESC-50 test categories)",
        "",
        "| SNR dB | quadrant acc | drop (points) [range over draws] | Emotify genre acc | genre ROC-AUC |",
        "|---|---|---|---|---|",
    ]
    for r in rob:
        rng = r.get("quadrant_accuracy_drop_points_range")
        d = r.get("quadrant_accuracy_drop_points")
        drop = ("n/a" if d is None else f"{d + 0.0:.2f}") + (
            f" [{rng[0] + 0.0:.2f}, {rng[1] + 0.0:.2f}]" if rng else ""
        )
        lines.append(
            f"| {r['snr_db']} | {fmt(r.get('quadrant_accuracy'))} | {drop} "
            f"| {fmt(r.get('emotify_genre_accuracy'))} | {fmt(r.get('genre_macro_roc_auc'))} |"
        )
    draws = next((r.get("noise_draws") for r in rob if r.get("noise_draws")), 1)
    return lines + [
        "",
        "Each music test clip is mixed with a clip of the held-back ESC-50 categories (the same clip and offset at",
        f"every level of a draw); the table gives the mean over {draws} draws. Target: quadrant accuracy drops <= 3",
        "points at 10 dB.",
    ]


def domain_shift_section(ds: dict | None) -> list[str]:
    if not ds:
        return []
    lines = [
        "",
        "### Domain shift: test clips re-encoded as 44.1 kHz stereo MP3 and FLAC",
        "",
        f"Top-1 agreement with the original 22 kHz mono Vorbis clips ({ds['clips']} clips):",
        "",
    ]
    for fmt_name in ("mp3", "flac"):
        agree = ds[f"{fmt_name}_top1_agreement"]
        lines.append(f"- {fmt_name}: " + ", ".join(f"{h} {v:.3f}" for h, v in agree.items()))
    return lines


def non_music_section(test: dict) -> list[str]:
    kinds = test.get("music_score_of_non_music")
    if not kinds:
        return []
    return [
        "",
        "### Which unseen sounds pass for music (test non-music clips, by ESC-50 category)",
        "",
        f"| category | clips | mean music score | at or above the threshold ({test.get('music_threshold')}) |",
        "|---|---|---|---|",
        *(f"| {k['category']} | {k['clips']} | {k['mean_music_score']:.3f} | {k['above_threshold']} |" for k in kinds),
    ]


def genre_per_label_section(test: dict) -> list[str]:
    per = test.get("genre_per_label")
    if not per:
        return []
    return [
        "",
        "### Genre per label (test; AUC n/a: fewer than 5 positives)",
        "",
        "| label | test positives | threshold | precision | recall | F1 | ROC-AUC |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['label']} | {r['test_positives']} | {r['threshold']:.3f} | {fmt(r['precision'])} | "
            f"{fmt(r['recall'])} | {fmt(r['f1'])} | {fmt(r['roc_auc'])} |"
            for r in per
        ),
    ]


def limitations(card) -> list[str]:
    n_genres = next((len(h.labels) for h in card.heads if h.name == "genre"), 0)
    return [
        "",
        "## Limitations",
        "",
        "- Small training set (about 730 music clips, 30 s each); AllMusic genre and mood labels are per track and",
        f"  noisy, so window-level supervision is weak. Genres outside the {n_genres} AllMusic top-level ones are not predicted.",
        "- Trained on 22 kHz mono Vorbis previews; see the domain-shift table for other encodings.",
        "- The mood tags are AllMusic's editorial vocabulary; the quadrant is a coarse 4-way summary of emotion.",
        "- `music` separates music from environmental sounds (ESC-50), not speech or podcasts.",
        "- Any number above is from one seed on one split; intervals show the sampling uncertainty of the test set only.",
    ]


def keep_written_sections(old: str, text: str) -> str:
    """Sections other scripts write (scripts/teacher_gate.py, scripts/tune_decisions.py), kept across regenerations."""
    for name in ("teacher", "gate", "decisions"):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin in old and end in old and begin not in text:
            block = old[old.index(begin) : old.index(end) + len(end)]
            anchor = "## Ablations"
            text = text.replace(anchor, block + "\n\n" + anchor, 1) if anchor in text else text + "\n" + block + "\n"
    return text


ABLATION_COLUMNS = [
    ("quadrant_accuracy", "quadrant acc"),
    ("emotify_genre_accuracy", "Emotify genre acc"),
    ("genre_macro_roc_auc", "genre ROC-AUC"),
    ("moods_macro_roc_auc", "mood ROC-AUC"),
    ("music_roc_auc", "music ROC-AUC"),
]


def run_speed(run: Path) -> float | None:
    """A run's exported graph in windows/s on one onnxruntime CPU thread (``benchmarks/model.py``); None: no export."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.model import windows_per_second

    cards = sorted((Path(run) / "export").glob("*.onnx.json"))
    return windows_per_second(load_card(cards[0]), windows=1024, repeat=3) if cards else None


def drop_at_10db(report: dict) -> tuple[float | None, list | None]:
    """The quadrant drop in points at 10 dB (mean of draws) and its range over draws, from a report."""
    ten = next((r for r in report.get("robustness") or [] if r.get("snr_db") == 10.0), {})
    return ten.get("quadrant_accuracy_drop_points"), ten.get("quadrant_accuracy_drop_points_range")


def ablation_table(*runs) -> list[str]:
    """Test metrics, the 10 dB quadrant drop and the speed of each (label, run folder)."""
    lines = [
        "",
        "## Ablations (test split; one seed each, so differences of a few points are within noise)",
        "",
        "| run | best epoch | validation score | "
        + " | ".join(name for _, name in ABLATION_COLUMNS)
        + " | quadrant drop at 10 dB (points) | windows/s, 1 ORT thread |",
        "|---|---|---|" + "---|" * (len(ABLATION_COLUMNS) + 2),
    ]
    for label, run in runs:
        report = json.loads((Path(run) / "report.json").read_text())
        test = report["test"]
        cells = [
            f"{test[k]['value']:.3f}" if isinstance(test.get(k), dict) else fmt(test.get(k))
            for k, _ in ABLATION_COLUMNS
        ]
        drop, rng = drop_at_10db(report)
        drop_cell = "n/a" if drop is None else f"{drop:.1f}" + (f" [{rng[0]:.1f}, {rng[1]:.1f}]" if rng else "")
        wps = run_speed(Path(run))
        speed = "n/a (no ONNX export)" if wps is None else f"{wps:,.0f}"
        history = json.loads((Path(run) / "history.json").read_text())
        chosen = next((h["score"] for h in history if h["epoch"] == report.get("best_epoch")), None)
        lines.append(
            f"| {label} (`{Path(run).name}`) | {report.get('best_epoch')} | {fmt(chosen)} | "
            + " | ".join(cells)
            + f" | {drop_cell} | {speed} |"
        )
    lines += [
        "",
        "Each ablation changes one thing in `configs/classifier.toml` (`configs/ablations/*.toml`: `mirtag train",
        "classifier --config configs/ablations/NAME.toml && mirtag evaluate runs/ablation_NAME`; `rese_narrow` is",
        "`rese` with half the channels); the 1.0.0 row is the previous shipped configuration. The drop is the mean",
        "over 3 noise draws per clip (range over draws in brackets). Validation score: what checkpoint and model",
        "selection maximise (the mean of the target metrics on the validation split). Speed: measured when this",
        "card was written (best of 3 x 1,024 windows, batch 32); the shipped classifier must reach 1,000 windows/s.",
    ]
    missing = [
        name
        for name in ("noise_off", "plain_mel", "rese", "rese_narrow", "seed1")
        if not any(Path(run).name == f"ablation_{name}" for _, run in runs)
    ]
    if missing:
        lines.append(f"Not run yet (CPU time): {', '.join(f'`configs/ablations/{n}.toml`' for n in missing)}.")
    return lines


def generator_section(run: Path) -> list[str]:
    reg = read_registry(ROOT / "exported")
    name = reg["default"].get("generator")
    if not name:
        return []
    card = load_card(ROOT / "exported" / reg["models"][name]["card"])
    prov = card.provenance
    real = prov.get("real_distribution") or {}
    gen = prov.get("generated_distribution") or {}
    lines = [
        "",
        f"# Model card: {card.ref} (genre-map generator)",
        "",
        f"A WGAN-GP generator from a {card.generator.latent_size}-dim noise vector, uniform in [-1, 1] (the last "
        f"{card.generator.code_dims} dims are the code), to a",
        f"frontend window {tuple(card.frontend.input_shape)} whose channel maxima are 1. The code is "
        "tied to the classifier above by",
        "maximising the mutual information between the code and the classifier's pooled features (Jensen-Shannon /",
        f"Deep InfoMax estimator). It belongs to classifier sha256 {card.generator.classifier_sha256[:16]}...; `mirtag map`",
        "refuses any other classifier. Trained only on the training split's clean windows.",
        "",
        f"Checkpoint: step {prov.get('best_step')} (chosen as described below); total variation distance of its genre",
        f"distribution to the classifier's distribution on real windows {prov.get('tv_distance', float('nan')):.3f} (1,024 samples):",
        "",
        "| genre | real windows | generated |",
        "|---|---|---|",
    ]
    for label in real:
        lines.append(f"| {label} | {real[label]:.3f} | {gen.get(label, float('nan')):.3f} |")
    gcfg = prov.get("config", {})
    lines += [
        "",
        f"Losses of the generator: the critic's (WGAN-GP, {gcfg.get('n_critic')} critic steps per generator step), the MI",
        f"loss (weight {gcfg.get('mi_weight')}), KL(real genre distribution || mean generated genre distribution) through",
        f"the frozen genre head (weight {gcfg.get('dist_weight')}), and a code-plane diversity term (weight",
        f"{gcfg.get('diversity_weight')}): {gcfg.get('diversity_points')} random points in the plane of two random code dims,",
        "the mean pairwise TV distance of their genre predictions is maximised, so that sweeping any two code dims",
        "crosses several genres (without it, most seed maps split Pop/Rock from one neighbour). The checkpoint is",
        "chosen every 100 steps by: coverage of every common genre and TV <= 0.3 first, then the number of seed 0-9",
        f"maps ({gcfg.get('map_grid')} x {gcfg.get('map_grid')} grids) showing >= 3 genres, then TV. One run from scratch",
        f"of the committed config with `--steps {gcfg.get('steps')}` (batch {gcfg.get('batch_size')}; it checkpoints every",
        "100 steps and continues with `--resume`).",
        "",
        "Earlier generator (1.0.0, replaced): the concatenation MI critic sat at chance (loss 2 ln 2) until it was",
        "replaced by the encode-and-dot-product critic; the genre-distribution term brought Classical back from under",
        "1 %; but only 4 of 10 seed maps showed three genres.",
        "",
        f"Reproduce: `mirtag train generator --config configs/generator.toml --steps {gcfg.get('steps')}`, then",
        "`mirtag export runs/generator --out exported`.",
    ]
    return lines


if __name__ == "__main__":
    main()
