"""Generator training for genre maps: WGAN-GP with a code tied to the classifier by mutual information.

The generator maps ``z`` (128 dims, uniform [-1, 1]; the last ``code_dims`` are
the code ``c``) to a frontend window ``(2, n_mels, window_frames)`` whose channel
maxima are 1 (normalised inside the graph, so the classifier reads it as it
reads real music). A critic with gradient penalty gives the Wasserstein
estimate; a statistics network ``T(c, m)`` estimates the mutual information
between the code and the frozen classifier's pooled features ``m = embed(G(z))``
with the Jensen-Shannon (Deep InfoMax) bound, and the generator maximises it:

    loss_MI = E_joint[softplus(-T(c, m))] + E_marginal[softplus(T(c', m))]

The genre-boundary GAN this follows (the master's thesis "Visualization of
Boundaries in Music Genre Classification by using Deep Learning", GTZAN)
collapsed: pop 0.3 %, country 0.9 % of generated samples, and training broke
after 125 epochs. Here every evaluation logs the
Wasserstein estimate, the MI loss and the genre distribution of generated
samples against the classifier's distribution on real windows, and how many
seed maps show three genres or more; the kept checkpoint is chosen by those
(coverage and TV <= 0.3, then map diversity, then TV), not by a fixed epoch.
A code-plane diversity term (:func:`code_plane_diversity`) makes planes of
two code dims cross several genres.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirtag.runtime.card import FrontendConfig, GeneratorSpec, ModelCard, TensorSpec, load_card, sha256_file
from mirtag.runtime.errors import ModelLoadError
from mirtag.runtime.genremap import (
    COVERAGE_GENERATED_SHARE,
    COVERAGE_REAL_SHARE,
    MAP_SEEDS,
    MIN_LABELS_SHOWN,
    SHOWN_SHARE,
    TV_TARGET,
)

from . import require_torch

torch = require_torch()
nn = torch.nn
F = torch.nn.functional

_LOGGER = logging.getLogger(__name__)


@dataclass
class GanConfig:
    """A generator run (TOML sections are flattened, like the classifier's)."""

    name: str = "mirtag-genremap"
    version: str = "1.0.0"
    seed: int = 0
    out_dir: str = "runs/generator"
    classifier: str = "exported"
    """The frozen classifier: a model folder, .onnx or .onnx.json whose card names its ``.pt``."""
    cache_dir: str = "cache/features"
    latent_size: int = 128
    code_dims: int = 10
    gen_channels: tuple[int, ...] = (128, 64, 32, 16)
    critic_channels: tuple[int, ...] = (16, 32, 64, 128)
    batch_size: int = 32
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    lr_t: float = 1e-3
    """The MI estimator's own learning rate: it must keep up with the generator."""
    n_critic: int = 2
    gp_weight: float = 10.0
    mi_weight: float = 1.0
    dist_weight: float = 0.0
    """Weight of KL(real genre distribution || mean generated genre distribution), computed with the
    frozen classifier's genre head: pushes the generator not to drop rare genres (0 = off)."""
    diversity_weight: float = 0.0
    """Weight of the code-plane diversity term: each generator step also generates ``diversity_points``
    random points in the plane of two random code dims through each of ``batch_size // diversity_points``
    noise vectors, and rewards the mean pairwise TV distance between their genre predictions, so that
    any code plane holds several genres (0 = off)."""
    diversity_points: int = 4
    map_grid: int = 11
    """Evaluation: points per axis of the seeds-0-9 genre grids (dims 0 1) counted in the checkpoint choice."""
    steps: int = 2000
    """Generator steps."""
    eval_every: int = 100
    eval_samples: int = 1024
    max_real_windows: int = 12000
    threads: int = 2
    device: str = "auto"
    """``auto`` (the first CUDA GPU when torch sees one, else the CPU), ``cpu`` or ``cuda[:N]``. The GAN
    trains in float32 on any device: the gradient penalty differentiates through the critic's gradient,
    which half precision makes noisy, and the critic is small."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint) after this many minutes of this session (0 = no limit); --resume continues."""

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str] | None, **overrides: Any) -> GanConfig:
        """Read a TOML config (keys flattened across sections) and apply overrides."""
        from .train import read_flat_toml

        values = read_flat_toml(path, cls, overrides)
        for key in ("gen_channels", "critic_channels"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


class Generator(nn.Module):
    """z (B, latent) -> (B, 2, n_mels, frames), each channel's maximum 1."""

    def __init__(self, cfg: GanConfig, fe: FrontendConfig):
        super().__init__()
        self.n_mels, self.frames = fe.n_mels, fe.window_frames
        ch = cfg.gen_channels
        n_up = len(ch) - 1
        self.h0 = math.ceil(fe.n_mels / 2**n_up)
        self.w0 = math.ceil(fe.window_frames / 2**n_up)
        self.fc = nn.Linear(cfg.latent_size, ch[0] * self.h0 * self.w0)
        ups = []
        for a, b in zip(ch[:-1], ch[1:]):
            ups += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
        self.ups = nn.Sequential(*ups)
        self.out = nn.Conv2d(ch[-1], 2, 3, padding=1)
        self.c0 = ch[0]

    def forward(self, z):
        x = F.relu(self.fc(z)).view(-1, self.c0, self.h0, self.w0)
        x = self.out(self.ups(x))[:, :, : self.n_mels, : self.frames]
        x = F.softplus(x)
        # The frontend's domain: each (window, channel) divided by its maximum.
        return x / (x.amax(dim=(2, 3), keepdim=True) + 1e-6)


class Critic(nn.Module):
    """Strided convolutions (no batch norm: the gradient penalty is per sample) + minibatch stddev."""

    def __init__(self, cfg: GanConfig, fe: FrontendConfig):
        super().__init__()
        layers, cin = [], 2
        for c in cfg.critic_channels:
            layers += [nn.Conv2d(cin, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            cin = c
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.convs(torch.zeros(1, 2, fe.n_mels, fe.window_frames)).numel()
        self.fc = nn.Linear(n + 1, 1)

    def forward(self, x):
        h = self.convs(x).flatten(1)
        # Minibatch standard deviation: a collapsed batch looks different from a real one.
        std = h.std(dim=0).mean().expand(h.shape[0], 1)
        return self.fc(torch.cat([h, std], dim=1)).squeeze(1)


class MIEstimator(nn.Module):
    """T(c, m) = <f(c), g(m)> / sqrt(d): Deep InfoMax's encode-and-dot-product critic.

    A separable critic: even untrained, its gradient asks the generator to make
    the code readable along the directions g projects the classifier's features
    on, which gets the Jensen-Shannon bound off chance. (A concatenation MLP sat
    at chance, loss 2 ln 2, for hundreds of steps: the code is 10 of 128 input
    dims, and nothing taught the generator to show it.) The classifier's pooled
    features are unnormalised ReLU outputs, hence the LayerNorm.
    """

    def __init__(self, code_dims: int, embed_dim: int, hidden: int = 256, dim: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(embed_dim)
        self.f = nn.Sequential(nn.Linear(code_dims, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.g = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.scale = dim**-0.5

    def forward(self, c, m):
        return (self.f(c) * self.g(self.norm(m))).sum(dim=1) * self.scale


def mi_loss(T: MIEstimator, c, m):
    """Jensen-Shannon (Deep InfoMax) loss: minimising it maximises the MI between c and m."""
    joint = T(c, m)
    shuffled = c[torch.randperm(c.shape[0])]
    marginal = T(shuffled, m)
    return F.softplus(-joint).mean() + F.softplus(marginal).mean()


def gradient_penalty(critic, real, fake):
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad = torch.autograd.grad(critic(x).sum(), x, create_graph=True)[0]
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def sample_z(n: int, latent: int, gen: torch.Generator | None = None, device=None):
    """Noise vectors (n, latent), uniform in [-1, 1]; drawn on the CPU (the same stream on every device)."""
    z = torch.rand(n, latent, generator=gen) * 2 - 1
    return z if device is None else z.to(device)


def genre_distribution(classifier, x, genre_index: int = 0) -> np.ndarray:
    """Counts of argmax over the classifier's genre head for windows x."""
    with torch.no_grad():
        logits = classifier(x.to(next(classifier.parameters()).device))
    head = list(logits)[genre_index]
    return np.bincount(logits[head].argmax(dim=1).cpu().numpy(), minlength=logits[head].shape[1])


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    p = p / max(p.sum(), 1)
    q = q / max(q.sum(), 1)
    return 0.5 * float(np.abs(p - q).sum())


def coverage_ok(real: np.ndarray, fake: np.ndarray) -> bool:
    """Every genre with >= 3 % of real predictions gets >= 1 % of generated ones (the map targets' coverage)."""
    r, f = real / real.sum(), fake / max(fake.sum(), 1)
    return bool(np.all(f[r >= COVERAGE_REAL_SHARE] >= COVERAGE_GENERATED_SHARE))


def map_diversity(G, classifier, genre_head: str, cfg: GanConfig, seeds: Sequence[int] = MAP_SEEDS) -> list[int]:
    """Genres owning >= 3 % of the cells of each seed's ``map_grid`` x ``map_grid`` grid over code dims 0 and 1.

    The same noise vectors as ``mirtag map grid --seed S`` (``default_rng(S).uniform(-1, 1, latent)``),
    on a coarser grid, so a checkpoint can be chosen by how many maps show three genres or more.
    """
    from mirtag.runtime.genremap import cell_shares, noise_vector, plane_z

    shown = []
    device = next(G.parameters()).device
    with torch.no_grad():
        for seed in seeds:
            z = plane_z(noise_vector(seed, cfg.latent_size), cfg.latent_size - cfg.code_dims, (0, 1), cfg.map_grid)
            logits = classifier.heads[genre_head](classifier.embed(G(torch.from_numpy(z).to(device))))
            shown.append(int((cell_shares(logits.argmax(dim=1).cpu().numpy(), logits.shape[1]) >= SHOWN_SHARE).sum()))
    return shown


def code_plane_diversity(G, classifier, genre_head: str, z, code_dims: int, points: int = 4):
    """How many genres a code plane holds: the mean pairwise TV distance between the genre predictions
    at ``points`` random points of the plane of two random code dims through each of the first
    ``len(z) // points`` noise vectors (1 when every point has its own confident genre, 0 when all
    agree; two genres split evenly give at most 2/3 with 4 points, so three or more are rewarded).

    Returns the distance (a tensor to maximise) and the generated windows (also a fake batch).
    """
    b, latent = z.shape
    n = max(1, b // points)
    zp = z[:n].repeat_interleave(points, dim=0)
    dims = latent - code_dims + torch.rand(n, code_dims, device=z.device).argsort(dim=1)[:, :2]
    zp.scatter_(1, dims.repeat_interleave(points, dim=0), torch.rand(n * points, 2, device=z.device) * 2 - 1)
    x = G(zp)
    p = torch.softmax(classifier.heads[genre_head](classifier.embed(x)), dim=1).view(n, points, -1)
    tv = 0.5 * (p[:, :, None, :] - p[:, None, :, :]).abs().sum(dim=3)
    pairs = points * (points - 1)
    return tv.sum(dim=(1, 2)).mean() / pairs, x


def load_frozen_classifier(spec: str):
    """The classifier (torch, frozen) and its card, from a model folder / .onnx / card whose provenance names a .pt."""
    from .export import load_classifier

    card = load_card(spec)
    pt = card.provenance.get("state_dict", {})
    pt_path = card.path.parent / pt.get("file", "")
    if not pt or not pt_path.is_file():
        raise ModelLoadError(f"{card.path}: its torch state dict ({pt.get('file') or 'none named'}) is missing")
    if sha256_file(pt_path) != pt["sha256"]:
        raise ModelLoadError(f"{pt_path}: sha256 does not match the card (a changed or partial copy)")
    model = load_classifier(pt_path)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), card


def real_windows(cfg: GanConfig, card: ModelCard, data_root: Path) -> np.ndarray:
    """Clean training windows (float16) of the music clips, from the classifier's feature cache."""
    from .train import TrainConfig, prepare_data, standard_windows

    tc = TrainConfig.from_dict(card.provenance["config"])
    tc = dataclasses.replace(tc, cache_dir=cfg.cache_dir)
    _, splits = prepare_data(tc, data_root)
    train = splits["train"]
    keep = [i for i, c in enumerate(train.clips) if c.music]
    music = train.subset(keep, [train.mels[i][:1] for i in keep])  # clean versions only
    x, _ = standard_windows(music, tc)
    rng = np.random.default_rng(cfg.seed)
    if len(x) > cfg.max_real_windows:
        x = x[np.sort(rng.choice(len(x), cfg.max_real_windows, replace=False))]
    return x.astype(np.float16)


@dataclass
class _GanRun:
    """The live state of a generator run: what ``last.pt`` saves and resumes."""

    G: Any
    D: Any
    T: Any
    opt_g: Any
    opt_d: Any
    opt_t: Any
    step: int = 0
    history: list = dataclasses.field(default_factory=list)
    best: dict = dataclasses.field(default_factory=lambda: {"tv": math.inf, "step": -1})

    def save_last(self, path: Path, real_dist: np.ndarray) -> None:
        torch.save(
            {
                "G": self.G.state_dict(),
                "D": self.D.state_dict(),
                "T": self.T.state_dict(),
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "opt_t": self.opt_t.state_dict(),
                "step": self.step,
                "best": self.best,
                "real_dist": torch.from_numpy(real_dist),
            },
            path,
        )


def _real_genre_distribution(classifier, real_t, genre_idx: int, n_labels: int) -> np.ndarray:
    """Top-genre counts of the classifier over every real window."""
    dist = np.zeros(n_labels, np.int64)
    # Every real window (they are ordered by dataset: a prefix would leave whole datasets out).
    for s in range(0, len(real_t), 256):
        dist += genre_distribution(classifier, real_t[s : s + 256].float(), genre_idx)
    return dist


def _new_gan_run(
    cfg: GanConfig, fe: FrontendConfig, embed_dim: int, device, out: Path, resume: bool, real_dist: np.ndarray, say
) -> _GanRun:
    """Networks and optimisers; from ``last.pt`` when resuming."""
    G, D = Generator(cfg, fe).to(device), Critic(cfg, fe).to(device)
    T = MIEstimator(cfg.code_dims, embed_dim).to(device)
    run = _GanRun(
        G,
        D,
        T,
        opt_g=torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(0.5, 0.9)),
        opt_d=torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.9)),
        opt_t=torch.optim.Adam(T.parameters(), lr=cfg.lr_t, betas=(0.5, 0.999)),
    )
    last = out / "last.pt"
    if resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        for name in ("G", "D", "T"):
            getattr(run, name).load_state_dict(ck[name])
        for name in ("opt_g", "opt_d", "opt_t"):
            getattr(run, name).load_state_dict(ck[name])
        run.step, run.best = int(ck["step"]), dict(ck["best"])
        if ck.get("real_dist") is None or not np.array_equal(np.asarray(ck["real_dist"]), real_dist):
            # The reference distribution changed: earlier "best" choices are not comparable.
            run.best = {"tv": math.inf, "step": -1}
            say("real genre distribution differs from the checkpoint's: checkpoint choice starts afresh")
        run.history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
        torch.manual_seed(cfg.seed + run.step)
        say(f"resumed at generator step {run.step}")
    return run


def _critic_steps(run: _GanRun, cfg: GanConfig, real_t, rng: np.random.Generator, device) -> float:
    """``n_critic`` WGAN-GP critic updates; returns the last Wasserstein estimate."""
    w_est = float("nan")
    for _ in range(cfg.n_critic):
        idx = rng.integers(0, len(real_t), cfg.batch_size)
        xr = real_t[idx].float().to(device)
        with torch.no_grad():
            xf = run.G(sample_z(cfg.batch_size, cfg.latent_size, device=device))
        d_real, d_fake = run.D(xr).mean(), run.D(xf).mean()
        loss_d = d_fake - d_real + cfg.gp_weight * gradient_penalty(run.D, xr, xf)
        run.opt_d.zero_grad()
        loss_d.backward()
        run.opt_d.step()
        w_est = float((d_real - d_fake).detach())
    return w_est


def _generator_step(run: _GanRun, cfg: GanConfig, classifier, genre_head: str, p_real, device) -> tuple[float, float]:
    """One generator (and MI estimator) update: adversarial + MI + code-plane diversity + genre-distribution terms.

    Returns the MI loss and the diversity (NaN when its weight is 0).
    """
    code = slice(cfg.latent_size - cfg.code_dims, cfg.latent_size)
    z = sample_z(cfg.batch_size, cfg.latent_size, device=device)
    xf = run.G(z)
    m = classifier.embed(xf)
    loss_mi = mi_loss(run.T, z[:, code], m)
    div_v = float("nan")
    if cfg.diversity_weight:
        div, x2 = code_plane_diversity(run.G, classifier, genre_head, z, cfg.code_dims, cfg.diversity_points)
        loss_g = -run.D(torch.cat([xf, x2])).mean() + cfg.mi_weight * loss_mi - cfg.diversity_weight * div
        div_v = float(div.detach())
    else:
        loss_g = -run.D(xf).mean() + cfg.mi_weight * loss_mi
    if cfg.dist_weight:
        q = torch.softmax(classifier.heads[genre_head](m), dim=1).mean(dim=0)
        loss_g = loss_g + cfg.dist_weight * (p_real * (torch.log(p_real) - torch.log(q + 1e-8))).sum()
    run.opt_g.zero_grad()
    run.opt_t.zero_grad()
    loss_g.backward()
    run.opt_g.step()
    run.opt_t.step()
    return float(loss_mi.detach()), div_v


def _evaluate(
    run: _GanRun,
    cfg: GanConfig,
    classifier,
    genre_idx: int,
    genre_head: str,
    z_eval,
    device,
    real_dist: np.ndarray,
    labels,
) -> dict[str, Any]:
    """The map targets at this step: TV distance, coverage, seed maps with enough genres, generated shares."""
    run.G.eval()
    with torch.no_grad():
        fake_dist = sum(
            genre_distribution(classifier, run.G(z_eval[s : s + 256].to(device)), genre_idx)
            for s in range(0, len(z_eval), 256)
        )
        shown = map_diversity(run.G, classifier, genre_head, cfg)
    return {
        "tv": total_variation(real_dist.astype(float), fake_dist.astype(float)),
        "coverage_ok": coverage_ok(real_dist.astype(float), fake_dist.astype(float)),
        "maps_3_genres": sum(k >= MIN_LABELS_SHOWN for k in shown),
        "genres_per_map": shown,
        "generated": dict(zip(labels, (fake_dist / fake_dist.sum()).round(4).tolist())),
    }


def _keep_if_better(run: _GanRun, row: dict[str, Any], out: Path) -> bool:
    """Checkpoint choice: coverage and TV within target first, then the most seed maps with enough genres,
    then the smallest TV distance. Saves ``best.pt`` when this step wins."""
    best = run.best
    tv, ok, maps = row["tv"], row["coverage_ok"], row["maps_3_genres"]
    key = (ok and tv <= TV_TARGET, maps, -tv)
    better = key > (best.get("ok", False) and best["tv"] <= TV_TARGET, best.get("maps", -1), -best["tv"])
    if better:
        run.best = {"tv": tv, "step": run.step, "ok": ok, "maps": maps}
        torch.save({"G": run.G.state_dict(), "step": run.step}, out / "best.pt")
    return better


def train_generator(
    cfg: GanConfig, data_root: Path, *, resume: bool = False, reporter=None, real: np.ndarray | None = None
) -> Path:
    """Train (or resume) a generator run; exports the best checkpoint. Returns the run folder."""
    from .device import pick_device, tune_cpu

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=1))
    torch.manual_seed(cfg.seed)
    tune_cpu(cfg.threads)
    say = reporter.stage if reporter else (lambda text: _LOGGER.info("%s", text))
    t_start = time.time()

    device = pick_device(cfg.device)
    classifier, ccard = load_frozen_classifier(cfg.classifier)
    classifier.to(device)
    fe = ccard.frontend
    if real is None:
        say("loading real windows from the feature cache")
        real = real_windows(cfg, ccard, data_root)
    say(f"{len(real)} real windows; training on {device}")
    real_t = torch.from_numpy(real)
    genre_idx = [h.name for h in ccard.heads].index("genre") if any(h.name == "genre" for h in ccard.heads) else 0
    labels = ccard.heads[genre_idx].labels
    real_dist = _real_genre_distribution(classifier, real_t, genre_idx, len(labels))
    real_shares = dict(zip(labels, (real_dist / real_dist.sum()).round(4).tolist()))
    genre_head = ccard.heads[genre_idx].name
    p_real = torch.from_numpy((real_dist + 1.0) / (real_dist + 1.0).sum()).float().to(device)  # smoothed, no log(0)

    run = _new_gan_run(cfg, fe, classifier.embed_dim, device, out, resume, real_dist, say)
    rng = np.random.default_rng([cfg.seed, run.step])
    z_eval = sample_z(cfg.eval_samples, cfg.latent_size, torch.Generator().manual_seed(cfg.seed + 12345))
    t_last = time.time()
    while run.step < cfg.steps:
        run.G.train()
        w_est = _critic_steps(run, cfg, real_t, rng, device)
        mi, div_v = _generator_step(run, cfg, classifier, genre_head, p_real, device)
        run.step += 1
        if reporter:
            reporter.progress(run.step, cfg.steps)
        if run.step % cfg.eval_every and run.step != cfg.steps:
            continue
        row = {
            "step": run.step,
            "wasserstein": w_est,
            "mi_loss": mi,
            "diversity": div_v,
            **_evaluate(run, cfg, classifier, genre_idx, genre_head, z_eval, device, real_dist, labels),
            "seconds_per_step": (time.time() - t_last) / cfg.eval_every,
        }
        t_last = time.time()
        run.history.append(row)
        better = _keep_if_better(run, row, out)
        run.save_last(out / "last.pt", real_dist)
        (out / "history.json").write_text(json.dumps(run.history, indent=1))
        (out / "real_distribution.json").write_text(json.dumps(real_shares))
        msg = (
            f"step {run.step}: W {w_est:.3f}  MI loss {mi:.3f}  diversity {div_v:.3f}  TV {row['tv']:.3f}  "
            f"coverage {'ok' if row['coverage_ok'] else 'no'}  maps with 3+ genres "
            f"{row['maps_3_genres']}/{len(row['genres_per_map'])}{'  (best)' if better else ''}"
        )
        if reporter:
            reporter.line(msg)
        else:
            _LOGGER.info(msg)
        if cfg.max_minutes and time.time() - t_start > cfg.max_minutes * 60:
            say(
                f"time budget reached at step {run.step}: exporting the best checkpoint so far "
                "(--resume continues training)"
            )
            break
    best = run.best
    say(f"exporting the checkpoint of step {best['step']} (TV {best['tv']:.3f})")
    ck = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    G = run.G
    G.load_state_dict(ck["G"])
    G.to("cpu")  # export and its parity check run on the CPU, as the runtime does
    export_generator(
        G.eval(),
        cfg,
        fe,
        ccard,
        out / "export",
        provenance={
            "trainer": "mirtag train generator",
            "config": dataclasses.asdict(cfg),
            "best_step": best["step"],
            "tv_distance": best["tv"],
            "real_distribution": real_shares,
            "generated_distribution": next((h["generated"] for h in run.history if h["step"] == best["step"]), None),
        },
    )
    return out


def export_generator(
    G, cfg: GanConfig, fe: FrontendConfig, classifier_card: ModelCard, out_dir: Path, provenance: dict[str, Any]
) -> ModelCard:
    """``<name>.onnx`` (input ``z`` (batch, latent), output ``features``) + its generator card, parity-checked."""
    from .export import check_parity, export_onnx

    out_dir = Path(out_dir)
    G = G.eval()
    path = export_onnx(G, sample_z(2, cfg.latent_size), out_dir / f"{cfg.name}.onnx", ["features"], input_name="z")
    z = np.random.default_rng(0).uniform(-1, 1, (4, cfg.latent_size)).astype(np.float32)
    worst = check_parity(G, path, z, ["features"], input_name="z")
    card = ModelCard(
        model_type="generator",
        name=cfg.name,
        version=cfg.version,
        sha256=sha256_file(path),
        onnx_file=path.name,
        frontend=fe,
        inputs=(TensorSpec("z", ("batch", cfg.latent_size)),),
        outputs=(TensorSpec("features", ("batch", *fe.input_shape)),),
        generator=GeneratorSpec(
            latent_size=cfg.latent_size,
            code_dims=cfg.code_dims,
            value_range=(0.0, 1.0),
            classifier_sha256=classifier_card.sha256,
            noise="uniform(-1, 1); code = last code_dims",
        ),
        provenance={**provenance, "classifier": classifier_card.ref, "export": {"parity_max_abs_diff": worst}},
    )
    card.save(out_dir / f"{cfg.name}.onnx.json")
    return card
