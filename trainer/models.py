"""Classifier networks (torch): a 2-channel (harmonic, percussive) CNN and a ReSE variant.

Both read the frontend's windows ``(batch, 2, n_mels, window_frames)`` (harmonic,
percussive), pool them into an embedding and put one linear layer per head on
it. ``forward`` returns logits per head; :class:`ExportWrapper` adds the
activations and the ``embedding`` output, which is what the ONNX contract asks.

Size is chosen for speed as much as accuracy: the shipped classifier must run
>= 1,000 windows/s on one onnxruntime CPU thread (``benchmarks/model.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mirtag.runtime.errors import ParameterError

from . import require_torch

torch = require_torch()
nn = torch.nn
F = torch.nn.functional


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a classifier (stored in checkpoints and the card's provenance)."""

    arch: str = "cnn"
    """``cnn`` (conv-BN-ReLU-pool blocks: the small 2-D CNN of the HPSS genre-map work) or ``rese`` (residual squeeze-excitation)."""
    channels: tuple[int, ...] = (16, 32, 64, 128)
    """Output channels of each block; every block but the last halves both axes."""
    dropout: float = 0.3
    se_reduction: int = 8
    heads: dict[str, int] = field(default_factory=dict)
    """Head name -> number of labels."""
    in_channels: int = 2


class ConvBlock(nn.Module):
    """conv 3x3 -> BN -> ReLU (-> max-pool 2)."""

    def __init__(self, cin: int, cout: int, pool: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.pool = pool

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return F.max_pool2d(x, 2) if self.pool else x


class ReSEBlock(nn.Module):
    """Residual block with squeeze-and-excitation (ReSE: residual + SE blocks, the best of basic / SE / ReSE in multi-label tagging of MagnaTagATune), then max-pool 2."""

    def __init__(self, cin: int, cout: int, pool: bool, reduction: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        hidden = max(4, cout // reduction)
        self.se1 = nn.Linear(cout, hidden)
        self.se2 = nn.Linear(hidden, cout)
        self.short = (
            nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )
        self.pool = pool

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        s = torch.sigmoid(self.se2(F.relu(self.se1(y.mean(dim=(2, 3))))))
        y = F.relu(y * s[:, :, None, None] + self.short(x))
        return F.max_pool2d(y, 2) if self.pool else y


class Classifier(nn.Module):
    """Multi-head classifier over HPSS mel windows.

    Parameters
    ----------
    config : ModelConfig

    Notes
    -----
    ``embed(x)`` -> (batch, 2 * channels[-1]): mean- and max-pooled feature map
    of the last block; it is the ``embedding`` output and what the genre-map
    generator ties its code to.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        if not config.heads:
            raise ParameterError("a classifier needs at least one head")
        self.config = config
        blocks = []
        cin = config.in_channels
        for i, cout in enumerate(config.channels):
            pool = i < len(config.channels) - 1
            if config.arch == "cnn":
                blocks.append(ConvBlock(cin, cout, pool))
            elif config.arch == "rese":
                blocks.append(ReSEBlock(cin, cout, pool, config.se_reduction))
            else:
                raise ParameterError(f"unknown arch {config.arch!r} (cnn or rese)")
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.embed_dim = 2 * cin
        self.dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(self.embed_dim, n) for name, n in config.heads.items()})

    def embed(self, x):
        """Pooled features (batch, embed_dim) of windows (batch, 2, n_mels, frames)."""
        h = self.blocks(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def forward(self, x):
        """Logits per head: dict name -> (batch, n_labels)."""
        e = self.dropout(self.embed(x))
        return {name: head(e) for name, head in self.heads.items()}


class ExportWrapper(nn.Module):
    """The ONNX contract: probabilities per head (activation inside the graph) + ``embedding``."""

    def __init__(self, model: Classifier, kinds: dict[str, str]):
        super().__init__()
        self.model = model
        self.kinds = dict(kinds)
        self.names = list(model.config.heads)

    def forward(self, features):
        e = self.model.embed(features)
        outs = []
        for name in self.names:
            logits = self.model.heads[name](e)
            outs.append(torch.softmax(logits, dim=1) if self.kinds[name] == "softmax" else torch.sigmoid(logits))
        return (*outs, e)


def count_parameters(model) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
