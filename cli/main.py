"""The ``mirtag`` command line.

stdout carries data only; logs, progress and summaries go to stderr.
"""

from __future__ import annotations

import logging
import platform
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

from mirtag.cli.options import DEVICE_HELP, ReadableGroup, check_device
from mirtag.runtime.errors import MirtagError
from mirtag.runtime.scan import ScanSettings

app = typer.Typer(
    cls=ReadableGroup,
    name="mirtag",
    help="Music auto-tagging: genres, mood quadrant and mood tags from ONNX models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)
out = Console()
_LOGGER = logging.getLogger("mirtag")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    if err.is_terminal:
        handler: logging.Handler = RichHandler(console=err, show_time=False, show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        # Piped or redirected stderr: one unwrapped line per record (rich would wrap at 80 columns).
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More logging on stderr (-vv for debug).")
    ] = 0,
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
        (
            "numba cache dir",
            numba.config.CACHE_DIR or "next to the sources (__pycache__); set NUMBA_CACHE_DIR for read-only installs",
        ),
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
        table.add_row(Text(k), Text(v))  # plain text: rich markup would eat "[cpu]" and any path with brackets
    out.print(table)


_SCAN = ScanSettings()
"""The scan options' defaults are ScanSettings' own (typed once, in the runtime)."""


@app.command()
def scan(
    out: Annotated[
        str, typer.Option("--out", "-o", help="Output .csv, .jsonl or .json; - for stdout (with --format).")
    ],
    # readable=False: an unreadable file is that file's error row, not a usage error for the whole scan.
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Folders (walked recursively) and files (default: your music folder, XDG_MUSIC_DIR or ~/Music).",
            show_default=False,
            readable=False,
        ),
    ] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="csv or jsonl (needed with --out -).")] = None,
    model: Annotated[
        Optional[Path],
        typer.Option("--model", help="Model .onnx/.onnx.json or folder (default: the shipped classifier)."),
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP, callback=check_device)] = _SCAN.device,
    workers: Annotated[int, typer.Option(min=1, help="Decoder/frontend worker processes.")] = _SCAN.workers,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per model call.")] = _SCAN.batch_size,
    top_k: Annotated[Optional[int], typer.Option(min=1, help="At most K labels in each head's top list.")] = None,
    min_confidence: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=1.0, help="Threshold for the top lists (default: the card's per-label thresholds)."),
    ] = None,
    include: Annotated[
        Optional[list[str]],
        typer.Option(help="Glob of files to scan (repeatable); replaces the audio-extension filter."),
    ] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Glob of files to skip (repeatable).")] = None,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Follow symbolic links (loops are detected).")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rescan everything, replacing the output.")] = False,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors/--no-retry-errors",
            help="Rescan files whose stored row is an error (default), or keep those rows.",
        ),
    ] = True,
    coverage: Annotated[
        str, typer.Option(help="full (every window) or sample:N (N windows spread over each track).")
    ] = _SCAN.coverage,
    time_limit: Annotated[float, typer.Option(help="Seconds one file may take (> 0).")] = _SCAN.time_limit,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 1 if the output holds any error row (this run's or an earlier one's)."),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    shard: Annotated[
        Optional[str],
        typer.Option(
            help="Scan only shard I of N (I/N, 1-based; by a hash of the path under its root). Join the outputs with `mirtag merge`."
        ),
    ] = None,
    embeddings: Annotated[
        Optional[str],
        typer.Option(
            "--embeddings",
            help="Keep each track's embedding in FILE (float16, resumable with the rows; 'auto': <out>.emb), for `mirtag similar`.",
        ),
    ] = None,
    engine: Annotated[
        str, typer.Option(help='local (worker processes here) or ray (a Ray Data pipeline; pip install "ray[data]").')
    ] = "local",
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            help="--engine ray: auto or HOST:PORT of a running cluster (default: a local Ray with --workers CPUs)."
        ),
    ] = None,
    gpus_per_actor: Annotated[
        float, typer.Option(min=0.0, help="--engine ray: GPUs per inference actor (0: CPU actors).")
    ] = 0.0,
    write_tags: Annotated[
        bool,
        typer.Option(
            "--write-tags", help="Then write the results into the files' tags (mirtag write --apply with its defaults)."
        ),
    ] = False,
) -> None:
    """Tag every audio file under PATH... and write one row per file (resumable)."""
    from mirtag.cli.scanview import run_scan

    run_scan(
        paths,
        out,
        fmt,
        {
            "model": model,
            "device": device,
            "workers": workers,
            "batch_size": batch_size,
            "coverage": coverage,
            "top_k": top_k,
            "min_confidence": min_confidence,
            "time_limit": time_limit,
        },
        include=include or (),
        exclude=exclude or (),
        follow_symlinks=follow_symlinks,
        force=force,
        retry_errors=retry_errors,
        strict=strict,
        quiet=quiet,
        shard=shard,
        embeddings=embeddings,
        engine=engine,
        ray_address=ray_address,
        gpus_per_actor=gpus_per_actor,
        write_tags=write_tags,
    )


train_app = typer.Typer(help="Train models (needs the train extra: torch, onnx, onnxscript).", no_args_is_help=True)
app.add_typer(train_app, name="train")
from mirtag.cli.mapcmd import map_app  # noqa: E402

app.add_typer(map_app, name="map")
from mirtag.cli.mergecmd import merge_cmd  # noqa: E402

app.command("merge")(merge_cmd)
from mirtag.cli.tagcmd import tag_cmd  # noqa: E402

app.command("tag")(tag_cmd)
from mirtag.cli.writecmd import register as _register_write  # noqa: E402

_register_write(app)  # mirtag write, mirtag untag
from mirtag.cli.similarcmd import similar_cmd  # noqa: E402

app.command("similar")(similar_cmd)
from mirtag.cli.playlistcmd import playlist_cmd  # noqa: E402

app.command("playlist")(playlist_cmd)


class _RichReporter:
    """Progress for long training runs: stages, a batch bar, one line per epoch (stderr)."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
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
        metrics = " ".join(
            f"{k}={v:.4f}" for k, v in row.items() if k not in ("epoch", "best", "eta_s") and isinstance(v, float)
        )
        # eta_s is an upper bound for the whole run: early stopping may end it sooner.
        eta = f"  run ETA <= {row['eta_s'] / 60:.0f} min" if "eta_s" in row else ""
        err.print(
            f"epoch {row['epoch']:3d} {metrics}{'  (best)' if row.get('best') else ''}{eta}",
            markup=False,
            highlight=False,
        )

    def line(self, text: str) -> None:
        err.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self.bar.stop()


@train_app.command("classifier")
def train_classifier_cmd(
    config: Annotated[
        Optional[Path], typer.Option("--config", help="TOML config (see configs/classifier.toml).")
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Data folder (default: $MIRTAG_DATA).")
    ] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out-dir", help="Run folder (overrides the config).")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Override the config's epochs.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's last checkpoint.")] = False,
    device: Annotated[
        Optional[str], typer.Option(help="auto (a CUDA GPU when there is one), cpu or cuda[:N]; overrides the config.")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the config's seed (the seeds of a comparison).")] = None,
    threads: Annotated[
        Optional[int], typer.Option(help="Override the config's torch CPU threads (1 each for two runs side by side).")
    ] = None,
) -> None:
    """Train the multi-head classifier, evaluate it on the test split and export it to ONNX."""
    from mirtag.trainer import require_torch

    require_torch()
    from mirtag.trainer.data import data_root as resolve_root
    from mirtag.trainer.train import TrainConfig, train_classifier

    cfg = TrainConfig.from_toml(config, out_dir=out_dir, epochs=epochs, device=device, seed=seed, threads=threads)
    reporter = _RichReporter()
    try:
        run = train_classifier(cfg, resolve_root(data_root), resume=resume, reporter=reporter)
    finally:
        reporter.close()
    err.print(f"run folder: {run}  (report.md, export/)")


@train_app.command("generator")
def train_generator_cmd(
    config: Annotated[
        Optional[Path], typer.Option("--config", help="TOML config (see configs/generator.toml).")
    ] = None,
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Data folder (default: $MIRTAG_DATA).")
    ] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out-dir", help="Run folder (overrides the config).")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Override the config's generator steps.")] = None,
    max_minutes: Annotated[
        Optional[float], typer.Option(help="Stop with a checkpoint after this many minutes.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's last checkpoint.")] = False,
    device: Annotated[
        Optional[str], typer.Option(help="auto (a CUDA GPU when there is one), cpu or cuda[:N]; overrides the config.")
    ] = None,
) -> None:
    """Train the genre-map generator (WGAN-GP + MI with the frozen classifier) and export it to ONNX."""
    from mirtag.trainer import require_torch

    require_torch()
    from mirtag.trainer.data import data_root as resolve_root
    from mirtag.trainer.gan import GanConfig, train_generator

    cfg = GanConfig.from_toml(config, out_dir=out_dir, steps=steps, max_minutes=max_minutes, device=device)
    reporter = _RichReporter()
    try:
        run = train_generator(cfg, resolve_root(data_root), resume=resume, reporter=reporter)
    finally:
        reporter.close()
    err.print(f"run folder: {run}  (history.json, export/)")


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A training run folder (uses its best.pt and config.json).")],
    data_root: Annotated[
        Optional[Path], typer.Option("--data-root", help="Data folder (default: $MIRTAG_DATA).")
    ] = None,
    domain_limit: Annotated[
        Optional[int],
        typer.Option(help="Re-encode at most this many test clips for the domain-shift check (0 skips it)."),
    ] = None,
    noise_draws: Annotated[
        int, typer.Option(min=1, help="Noise draws per SNR in the robustness table (the mean is reported).")
    ] = 3,
) -> None:
    """Test-split report with bootstrap intervals, a noise-robustness table and a domain-shift check."""
    from mirtag.trainer import require_torch

    require_torch()
    from mirtag.trainer.data import data_root as resolve_root
    from mirtag.trainer.evaluate import evaluate_run

    evaluate_run(run_dir, resolve_root(data_root), domain_limit=domain_limit, noise_draws=noise_draws)
    err.print(f"wrote {run_dir / 'report.md'} and {run_dir / 'report.json'}")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A training run folder (its export/ subfolder is used).")],
    out: Annotated[
        Path, typer.Option("--out", help="Model folder to install into (its registry.json is updated).")
    ] = Path("exported"),
    default: Annotated[bool, typer.Option(help="Make it the default classifier of that folder.")] = True,
) -> None:
    """Install a run's exported model (.onnx, card, .pt) into a model folder and its registry."""
    from mirtag.runtime.card import install_model

    src = run_dir / "export"
    if not sorted(src.glob("*.onnx.json")):
        raise MirtagError(f"{src}: no exported model (train first)")
    card = install_model(src, out, default=default)
    err.print(f"installed {card.ref} into {out}")


class _Interrupted(BaseException):
    """Ctrl-C outside a scan (click would turn a KeyboardInterrupt into "Aborted!" and exit 1)."""


def _on_sigint(signum, frame) -> None:
    raise _Interrupted


def main() -> None:
    """Entry point: run the app, turning MirtagError into a one-line message and exit 1, Ctrl-C into exit 130."""
    import signal

    signal.signal(signal.SIGINT, _on_sigint)  # scan installs its own handler while it runs
    try:
        app()
    except _Interrupted:
        err.print("mirtag: interrupted", markup=False, highlight=False)
        sys.exit(130)
    except MirtagError as exc:
        err.print(f"mirtag: error: {exc}", markup=False, highlight=False)
        sys.exit(1)
    finally:
        # The command's work is done (output closed, summary printed). Python's finalization puts
        # back SIG_DFL for handlers it installed, so a Ctrl-C landing in those last milliseconds
        # would kill a finished run by the signal; an ignored SIGINT is left ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":
    main()
