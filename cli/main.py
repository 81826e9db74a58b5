"""The ``mirtag`` command line.

stdout carries data only; logs, progress and summaries go to stderr.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from mirtag.runtime.errors import MirtagError

app = typer.Typer(
    name="mirtag",
    help="Music auto-tagging: genres, mood quadrant and mood tags from ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()
_LOGGER = logging.getLogger("mirtag")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


@app.callback()
def _root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging on stderr (-vv for debug).")] = 0,
) -> None:
    _setup_logging(verbose)


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


@app.command()
def info() -> None:
    """Print versions, onnxruntime providers, the numba threading layer and cache, and the shipped models."""
    import numba

    from mirtag.runtime import card as card_mod
    from mirtag.runtime import session

    table = Table(show_header=False, box=None)
    rows = [
        ("mirtag", _version("mirtag")),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy / numba", f"{_version('numpy')} / {numba.__version__}"),
        ("numba threading layer", f"{numba.config.THREADING_LAYER} (kernels run serial unless parallel=True)"),
        ("numba cache dir", numba.config.CACHE_DIR or "next to the sources (__pycache__); set NUMBA_CACHE_DIR for read-only installs"),
    ]
    runtimes = session.installed_runtimes()
    rows.append(("onnxruntime packages", ", ".join(f"{r} {_version(r)}" for r in runtimes) or "none"))
    if len(runtimes) > 1:
        rows.append(("WARNING", "onnxruntime and onnxruntime-gpu are both installed: CUDA will not work"))
    try:
        ort = session.import_onnxruntime()
        rows.append(("providers available", ", ".join(ort.get_available_providers())))
        n, why = session.cuda_driver_devices()
        rows.append(("CUDA devices", str(n) if n else f"0 ({why})"))
    except MirtagError as exc:
        rows.append(("providers available", str(exc)))
    models_dir = card_mod.exported_dir()
    rows.append(("models folder", str(models_dir)))
    try:
        reg = card_mod.read_registry(models_dir)
        defaults = {v: k for k, v in reg["default"].items()}
        for name, entry in reg["models"].items():
            tag = f" (default {defaults[name]})" if name in defaults else ""
            rows.append(("model", f"{name}: {entry.get('file')}{tag}"))
        if not reg["models"]:
            rows.append(("model", "none shipped yet"))
    except MirtagError as exc:
        rows.append(("model", str(exc)))
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)


train_app = typer.Typer(help="Train models (needs the train extra: torch, onnx, onnxscript).", no_args_is_help=True)
app.add_typer(train_app, name="train")


class _RichReporter:
    """Progress for long training runs: stages, a batch bar, one line per epoch (stderr)."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            console=err, transient=True)
        self.task = None

    def stage(self, text: str) -> None:
        err.print(f"[bold]{text}[/bold]")
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None

    def progress(self, done: int, total: int) -> None:
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task("working", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def epoch(self, row: dict) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        metrics = " ".join(f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "best") and isinstance(v, float))
        err.print(f"epoch {row['epoch']:3d} {metrics}{'  (best)' if row.get('best') else ''}", markup=False, highlight=False)

    def close(self) -> None:
        self.bar.stop()


@train_app.command("classifier")
def train_classifier_cmd(
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML config (see configs/classifier.toml).")] = None,
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Data folder (default: $MIRTAG_DATA).")] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out-dir", help="Run folder (overrides the config).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the config's epochs.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's last checkpoint.")] = False,
) -> None:
    """Train the multi-head classifier, evaluate it on the test split and export it to ONNX."""
    from mirtag.trainer import require_torch

    require_torch()
    from mirtag.trainer.data import data_root as resolve_root
    from mirtag.trainer.train import TrainConfig, train_classifier

    cfg = TrainConfig.from_toml(config, out_dir=out_dir, epochs=epochs)
    reporter = _RichReporter()
    try:
        run = train_classifier(cfg, resolve_root(data_root), resume=resume, reporter=reporter)
    finally:
        reporter.close()
    err.print(f"run folder: {run}  (report.md, export/)")


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A training run folder (uses its best.pt and config.json).")],
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="Data folder (default: $MIRTAG_DATA).")] = None,
    domain_limit: Annotated[Optional[int], typer.Option(help="Re-encode at most this many test clips for the domain-shift check.")] = None,
) -> None:
    """Test-split report with bootstrap intervals, a noise-robustness table and a domain-shift check."""
    from mirtag.trainer import require_torch

    require_torch()
    from mirtag.trainer.data import data_root as resolve_root
    from mirtag.trainer.evaluate import evaluate_run

    evaluate_run(run_dir, resolve_root(data_root), domain_limit=domain_limit)
    err.print(f"wrote {run_dir / 'report.md'} and {run_dir / 'report.json'}")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A training run folder (its export/ subfolder is used).")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to install into (its registry.json is updated).")] = Path("exported"),
    default: Annotated[bool, typer.Option(help="Make it the default classifier of that folder.")] = True,
) -> None:
    """Install a run's exported model (.onnx, card, .pt) into a model folder and its registry."""
    import json
    import shutil

    from mirtag.runtime.card import REGISTRY_NAME, load_card, sha256_file

    src = run_dir / "export"
    cards = sorted(src.glob("*.onnx.json"))
    if not cards:
        raise MirtagError(f"{src}: no exported model (train first)")
    card = load_card(cards[0])
    out.mkdir(parents=True, exist_ok=True)
    names = [card.onnx_file, cards[0].name] + ([card.provenance["state_dict"]["file"]] if "state_dict" in card.provenance else [])
    for name in names:
        shutil.copy2(src / name, out / name)
    reg_path = out / REGISTRY_NAME
    reg = json.loads(reg_path.read_text()) if reg_path.is_file() else {"format_version": 1, "default": {}, "models": {}}
    reg["models"][card.name] = {"file": card.onnx_file, "card": cards[0].name, "sha256": card.sha256,
                                "size_bytes": (out / card.onnx_file).stat().st_size, "model_type": card.model_type}
    if default:
        reg["default"][card.model_type] = card.name
    reg_path.write_text(json.dumps(reg, indent=2) + "\n")
    load_card(out / card.onnx_file)  # the installed copy must load and match its hash
    assert sha256_file(out / card.onnx_file) == card.sha256
    err.print(f"installed {card.ref} into {out}")


def main() -> None:
    """Entry point: run the app, turning MirtagError into a one-line message and exit 1."""
    try:
        app()
    except MirtagError as exc:
        err.print(f"mirtag: error: {exc}", markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
