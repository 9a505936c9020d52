"""Adversarial losses, chosen by name from one table (StudioGAN style).

Each loss takes raw discriminator logits (any shape; averaged over the batch):

- ``ns``: non-saturating (Goodfellow et al. 2014, DCGAN): BCE-with-logits, G maximises log D(G(z)).
- ``hinge``: hinge (Lim & Ye 2017; SNGAN, BigGAN, IC-GAN's default).
- ``ls``: least squares (Mao et al. 2017) with targets a=0 (fake), b=c=1 (real), each term halved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


@dataclass(frozen=True)
class Loss:
    name: str
    d: Callable[[Tensor, Tensor], Tensor]   # d(real_logits, fake_logits) → scalar
    g: Callable[[Tensor], Tensor]           # g(fake_logits) → scalar


LOSSES: dict[str, Loss] = {
    "ns": Loss(
        "ns",
        d=lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(),
        g=lambda fake: F.softplus(-fake).mean(),
    ),
    "hinge": Loss(
        "hinge",
        d=lambda real, fake: F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean(),
        g=lambda fake: -fake.mean(),
    ),
    "ls": Loss(
        "ls",
        d=lambda real, fake: 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean(),
        g=lambda fake: 0.5 * (fake - 1.0).pow(2).mean(),
    ),
}


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"key 'train.loss': value {name!r} is not allowed; expected one of "
                         f"{', '.join(LOSSES)}") from None
