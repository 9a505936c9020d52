"""The small CNN that SimCLR and the classifier train inside the pipeline.

Four BatchNorm conv stages that halve the resolution (any input side ≥ 8 works: global average
pooling at the end), then a linear layer + BatchNorm to ``dim``: that BN output is the feature used
for k-NN. The whole encoder, preprocessing included, is rebuilt from a small JSON-able config, so
``load_encoder`` embeds a new image exactly as the dataset was embedded.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ganops.embed.base import EncoderError

WIDTHS = (32, 64, 128, 256)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Input: float images in [0, 1], N×C×H×W. Output: N×dim features."""

    def __init__(self, in_channels: int, dim: int, widths: tuple[int, ...] = WIDTHS, resolution: int = 32):
        super().__init__()
        self.config: dict[str, Any] = {"arch": "small_cnn", "in_channels": in_channels, "dim": dim,
                                       "widths": list(widths), "resolution": resolution}
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            layers.append(_block(cin, w))
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))   # ceil: odd sides (e.g. 8→4→2→1) still work
            cin = w
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) / 0.5
        x = self.body(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.bn(self.fc(x))


class ProjectionHead(nn.Module):
    """SimCLR's MLP g(·): the contrastive loss is computed on its output, k-NN on its input."""

    def __init__(self, dim: int, hidden: int = 512, out: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(inplace=False), nn.Linear(dim, hidden, bias=False), nn.BatchNorm1d(hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def build(config: dict[str, Any]) -> nn.Module:
    """Rebuild an encoder from the config saved in encoder.pt."""
    arch = config.get("arch")
    if arch == "small_cnn":
        return SmallCNN(int(config["in_channels"]), int(config["dim"]), tuple(config["widths"]),
                        int(config.get("resolution", 32)))
    raise EncoderError(f"encoder.pt has an unknown architecture {arch!r}; expected 'small_cnn', "
                       "'resnet50' or 'swav'. Re-run `ganops stage embeddings` with this version of ganops.")
