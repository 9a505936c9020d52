"""The baseline encoder: raw pixels in [0, 1], flattened, centred on the dataset's mean image.

Centring matters for cosine similarity: uncentred pixel vectors of dark-background images all
point the same way. Deterministic; nothing is trained.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ganops.embed.base import batches

_CHUNK = 4096


def mean_image(images: np.ndarray) -> torch.Tensor:
    """Mean over the dataset in float64, reading ``_CHUNK`` images at a time (memory maps stay cheap)."""
    total = np.zeros(images.shape[1:], dtype=np.float64)
    for sl in batches(len(images), _CHUNK):
        total += np.asarray(images[sl]).sum(axis=0, dtype=np.float64)
    return torch.from_numpy(total / (255.0 * len(images))).float()


class PixelEncoder(nn.Module):
    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean).flatten(1)
