"""SimCLR (Chen et al. 2020) trained inside the pipeline on the dataset itself.

Two augmented views of each image go through the CNN and the projection head; the NT-Xent loss
pulls the two views together against every other view in the batch. k-NN features are the CNN's
output before the head, which keeps the information the augmentations discard at the head.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ganops.core.params import Params
from ganops.embed.base import EncoderError, MetricLog
from ganops.embed.nets import ProjectionHead, SmallCNN
from ganops.embed.training import EncoderFamily, fit
from ganops.models.base import DataInfo, TrainData


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B projections, rows i and i+B being the two views of one image."""
    z = F.normalize(z.float(), dim=1)
    b2 = z.shape[0]
    b = b2 // 2
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))          # a view is not its own negative
    target = torch.cat([torch.arange(b, b2), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(EncoderFamily):
    name = "simclr"

    @classmethod
    def check(cls, e, data: TrainData) -> DataInfo:
        if len(data.images) < 2:
            raise EncoderError(f"SimCLR needs at least 2 images (got {len(data.images)}); use embed.encoder=pixels "
                               "for tiny datasets")
        return super().check(e, data)

    def build(self, info: DataInfo) -> None:
        self.encoder = SmallCNN(info.channels, self.e.dim, resolution=info.resolution)
        self.networks = {"encoder": self.encoder, "head": ProjectionHead(self.e.dim)}

    def loss(self, idx: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        views = self.in_format(torch.cat([self.views(x), self.views(x)]))
        z = self.networks["head"](self.encoder(views))
        if self.ctx.world.grouped:     # the negatives are the whole global batch's, as on one process
            z = _gather_pairs(z)
        return nt_xent(z, self.e.temperature)


def _gather_pairs(z: torch.Tensor) -> torch.Tensor:
    """Every rank's 2b projections (its first views, then its second) as one 2B batch in nt_xent's layout,
    with gradients flowing back to each rank's own rows (``torch.distributed.nn``'s differentiable
    all_gather). Every rank then computes the global loss, and its gradient averaged over the ranks is
    the global batch's."""
    import warnings

    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():     # its deprecation names a private module as the replacement
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(z)
    b = z.shape[0] // 2
    return torch.cat([*(t[:b] for t in parts), *(t[b:] for t in parts)])


def train(images: np.ndarray, p: Params, device: torch.device, checkpoint: Path | None = None,
          log: MetricLog | None = None, on_epoch: Callable[[int, nn.Module], None] | None = None
          ) -> tuple[SmallCNN, dict[str, Any]]:
    """Train the encoder; returns it (eval mode) and metrics. ``on_epoch(epoch, model)`` is for benchmarks."""
    fam, metrics = fit(SimCLR, TrainData(images), p, device, checkpoint, log, on_epoch)
    return fam.encoder, metrics
