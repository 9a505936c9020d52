"""LeCam's regulariser of the discriminator (Tseng et al. 2021, "Regularizing Generative Adversarial Networks
under Limited Data"): D's logits on real images are pulled toward no higher than the moving average of its
logits on fakes, and its fakes' toward no lower than the reals' average,

    R_LC = E[relu(D(x) − α_fake)²] + E[relu(α_real − D(G(z)))²],

so that a D facing few images cannot drive the two apart without bound (the paper shows it bounds the
LeCam divergence), the complement of augmentation for limited data that StudioGAN ships beside DiffAugment.

Written here: it is two moving averages and one expression; the maintained GAN libraries ship it only inside
their own training loops. As the authors' code does, the averages take each D step's means before the term
is computed. They start at the first step's means (not at 0, which would pull every logit toward 0 for the
first hundred steps), stay on the device (no host sync), and are checkpointed; on several ranks each rank
averages its own share, as each rank's augmentation draws are its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F


class LeCam:
    def __init__(self, weight: float, decay: float, device: torch.device):
        self.weight, self.decay = weight, decay
        self.ema = torch.zeros(2, device=device)    # D's mean logit on real images, on fakes
        self.started = False

    def __call__(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """``weight`` · R_LC of this D step, after the averages took its means."""
        means = torch.stack([real_logits.detach().mean(), fake_logits.detach().mean()]).float()
        if self.started:
            self.ema.lerp_(means, 1.0 - self.decay)
        else:
            self.ema.copy_(means)
            self.started = True
        reg = F.relu(real_logits - self.ema[1]).pow(2).mean() + F.relu(self.ema[0] - fake_logits).pow(2).mean()
        return self.weight * reg

    def state(self) -> dict[str, Any]:
        return {"ema": self.ema.detach().cpu().clone(), "started": self.started}

    def load(self, state: dict[str, Any]) -> None:
        self.ema.copy_(state["ema"])
        self.started = bool(state["started"])
