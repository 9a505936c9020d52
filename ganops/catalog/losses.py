"""Adversarial losses, chosen by name from one table (StudioGAN style); the schema's allowed values
for ``train.loss`` are this table's keys.

Each loss takes raw discriminator logits (any shape; averaged over the batch):

- ``ns``: non-saturating (Goodfellow et al. 2014, DCGAN): BCE-with-logits, G maximises log D(G(z)).
- ``hinge``: hinge (Lim & Ye 2017; SNGAN, BigGAN, IC-GAN's default).
- ``ls``: least squares (Mao et al. 2017) with targets a=0 (fake), b=c=1 (real), each term halved.

torch is imported on the first call, not with the module: ``ganops.core.params`` reads the table, and the
CLI's parameter commands start without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def _F():
    from torch.nn import functional
    return functional


@dataclass(frozen=True)
class Loss:
    name: str
    d: Callable[[Tensor, Tensor], Tensor]   # d(real_logits, fake_logits) → scalar
    g: Callable[[Tensor], Tensor]           # g(fake_logits) → scalar
    about: str = ""


LOSSES: dict[str, Loss] = {
    "ns": Loss(
        "ns",
        d=lambda real, fake: _F().softplus(-real).mean() + _F().softplus(fake).mean(),
        g=lambda fake: _F().softplus(-fake).mean(),
        about="non-saturating",
    ),
    "hinge": Loss(
        "hinge",
        d=lambda real, fake: _F().relu(1.0 - real).mean() + _F().relu(1.0 + fake).mean(),
        g=lambda fake: -fake.mean(),
        about="hinge",
    ),
    "ls": Loss(
        "ls",
        d=lambda real, fake: 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean(),
        g=lambda fake: 0.5 * (fake - 1.0).pow(2).mean(),
        about="least squares",
    ),
}
LOSS_NAMES = tuple(LOSSES)


def get_loss(name: str) -> Loss:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"key 'train.loss': value {name!r} is not allowed; expected one of "
                         f"{', '.join(LOSSES)}") from None
