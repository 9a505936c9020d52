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

from ganops.embed import training as T
from ganops.embed.augment import Policy, augment
from ganops.embed.base import EncoderError, MetricLog
from ganops.embed.nets import ProjectionHead, SmallCNN
from ganops.params import Params


def nt_xent(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over 2B projections, rows i and i+B being the two views of one image."""
    z = F.normalize(z.float(), dim=1)
    b2 = z.shape[0]
    b = b2 // 2
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))          # a view is not its own negative
    target = torch.cat([torch.arange(b, b2), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def train(images: np.ndarray, p: Params, device: torch.device, checkpoint: Path | None = None,
          log: MetricLog | None = None, on_epoch: Callable[[int, nn.Module], None] | None = None,
          policy: Policy | None = None) -> tuple[SmallCNN, dict[str, Any]]:
    """Train the encoder; returns it (eval mode) and metrics. ``on_epoch(epoch, model)`` is for benchmarks."""
    e = p.embed
    n, c, h, w = images.shape
    if n < 2:
        raise EncoderError(f"SimCLR needs at least 2 images (got {n}); use embed.encoder=pixels for tiny datasets")
    policy = policy or Policy()
    torch.manual_seed(p.seed)                   # weight initialisation
    model = T.prepare(SmallCNN(c, e.dim, resolution=max(h, w)), device)
    head = T.prepare(ProjectionHead(e.dim), device)
    cuda = device.type == "cuda"

    def loss_fn(idx: np.ndarray, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        views = torch.cat([augment(x, g, policy), augment(x, g, policy)])
        if cuda:
            views = views.contiguous(memory_format=torch.channels_last)
        return nt_xent(head(model(views)), e.temperature)

    metrics = T.fit(images, p, device, nn.ModuleDict({"encoder": model, "head": head}), loss_fn, "simclr",
                    {"temperature": e.temperature, "policy": repr(policy)}, checkpoint, log,
                    on_epoch=(lambda ep: on_epoch(ep, model)) if on_epoch else None)
    return model, metrics
