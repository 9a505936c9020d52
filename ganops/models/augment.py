"""What the discriminator sees: differentiable augmentation of every image D reads, real and fake alike, so
that a small dataset cannot be memorised (the field's answer to D overfitting on hundreds to thousands of
images).

- ``diffaugment`` (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): colour,
  translation and cutout, each applied to every image, in D's step and in G's (gradients flow through them).
- ``ada`` (Karras et al. 2020, "Training GANs with Limited Data"): a pipeline of geometric and colour
  transforms, each applied with probability p, and p steered by D's overfitting signal r_t = E[sign(D(real))]:
  every ``ada_interval`` D updates p moves toward keeping r_t at ``ada_target``, by
  exactly batch·interval / (ada_kimg·1000) (p can go from 0 to 1 in ``ada_kimg`` thousand images). p is checkpointed.
  ADA's horizontal flip and 90° rotations are left out: digits and text are not invariant to them, and on
  short budgets p rises high enough for them to leak.

The transforms are kornia's (differentiable, on CPU and CUDA), applied in [0, 1] (the images are in [-1, 1]).
Their random parameters come from torch's global generator, which the trainer seeds and checkpoints on every
rank: a resumed run draws the same augmentations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganops.catalog.augments import AUGMENTS, check_policy


def _kornia():
    import kornia.augmentation as K   # imported with the first augmenting family, not with the schema

    return K


def diffaugment_ops(policy: str, channels: int, translation: float = 0.125, cutout: float = 0.5) -> list[nn.Module]:
    """DiffAugment's transforms, by name (``color,translation,cutout``), each applied to every image;
    ``translation``: the largest shift, as a share of the side (the paper's 1/8); ``cutout``: the side of the
    blanked square, as a share of the image's (the paper's 1/2)."""
    K, ops = _kornia(), []
    for name in check_policy(policy).split(","):
        if name == "color":     # brightness ±0.5 and contrast ×[0.5, 1.5] in [-1, 1]; saturation ×[0, 2] in colour
            ops.append(K.ColorJiggle(brightness=0.25, contrast=0.5, saturation=1.0 if channels == 3 else 0.0, p=1.0))
        elif name == "translation":   # up to `translation` of the side each way, the uncovered border empty
            ops.append(K.RandomAffine(degrees=0.0, translate=(translation, translation), padding_mode="zeros", p=1.0))
        elif name == "cutout":        # a square of `cutout` of the side, anywhere
            ops.append(K.RandomErasing(scale=(cutout ** 2, cutout ** 2), ratio=(1.0, 1.0), value=0.0, p=1.0))
    return ops


def ada_ops(channels: int) -> list[nn.Module]:
    """ADA's pipeline (geometric, then colour; flips and 90° rotations left out), each with probability p."""
    K = _kornia()
    ops = [K.RandomAffine(degrees=0.0, translate=(0.125, 0.125), padding_mode="reflection", p=0.0),
           K.RandomAffine(degrees=0.0, scale=(0.8, 1.25), padding_mode="reflection", p=0.0),
           K.RandomRotation(degrees=30.0, p=0.0),
           K.RandomAffine(degrees=0.0, scale=(0.8, 1.25, 0.8, 1.25), padding_mode="reflection", p=0.0),
           K.ColorJiggle(brightness=0.2, contrast=0.5, p=0.0)]
    if channels == 3:
        ops.append(K.ColorJiggle(saturation=1.0, hue=0.5, p=0.0))
    return ops


class Augment(nn.Module):
    """D's view of a batch: ``aug(x)`` for every image D reads. ``kind``: one of ``AUGMENTS``."""

    @classmethod
    def of(cls, ap, channels: int, batch: int) -> Augment:
        """From a section's ``augment`` keys (``AugmentParams``)."""
        ada = {"target": ap.ada_target, "interval": ap.ada_interval, "kimg": ap.ada_kimg} if ap.kind == "ada" else {}
        return cls(ap.kind, channels, policy=ap.policy, translation=ap.translation, cutout=ap.cutout, batch=batch,
                   **ada)

    def __init__(self, kind: str, channels: int, *, policy: str = "color,translation,cutout",
                 translation: float = 0.125, cutout: float = 0.5, target: float = 0.6, interval: int = 4,
                 kimg: float = 100.0, batch: int = 64):
        super().__init__()
        if kind not in AUGMENTS:
            raise ValueError(f"augment {kind!r} is not allowed; expected one of {', '.join(AUGMENTS)}")
        self.kind, self.target, self.interval = kind, target, interval
        self.step_size = batch * interval / (kimg * 1000.0)
        ops = (diffaugment_ops(policy, channels, translation, cutout) if kind == "diffaugment"
               else ada_ops(channels) if kind == "ada" else [])
        self.ops = nn.ModuleList(ops)
        self.p = 0.0                                 # ADA's probability (DiffAugment: always 1)
        self._signs: torch.Tensor | None = None      # Σ sign(D(real)) since the last adjustment, on the device
        self._count = 0
        self._steps = 0
        self.rt: float | None = None                 # ADA: the last interval's r_t

    @property
    def active(self) -> bool:
        return bool(self.ops) and (self.kind != "ada" or self.p > 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        y = (x.float() + 1) * 0.5
        for op in self.ops:
            y = op(y)
        return (y * 2 - 1).to(x.dtype)

    def observe(self, real_logits: torch.Tensor, world) -> None:
        """ADA: count the signs of D's logits on the (augmented) reals; every ``interval`` steps move p.
        One host sync (and, on several ranks, one all-reduce) per interval, as stylegan2-ada does."""
        if self.kind != "ada":
            return
        s = torch.sign(real_logits.detach().float()).sum()
        self._signs = s if self._signs is None else self._signs + s
        self._count += real_logits.numel()
        self._steps += 1
        if self._steps % self.interval:
            return
        total = world.mean(torch.stack([self._signs, torch.tensor(float(self._count), device=s.device)]))
        rt = float(total[0] / total[1])
        self.p = min(1.0, max(0.0, self.p + (1.0 if rt > self.target else -1.0) * self.step_size))
        for op in self.ops:
            op.p = self.p
        self.rt = rt
        self._signs, self._count = None, 0

    def state(self) -> dict[str, Any]:
        return {"p": self.p, "steps": self._steps, "count": self._count,
                "signs": None if self._signs is None else float(self._signs)}

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        self.p, self._steps, self._count = float(state["p"]), int(state["steps"]), int(state["count"])
        self._signs = None if state["signs"] is None else torch.tensor(state["signs"], device=device)
        if self.kind == "ada":
            for op in self.ops:
                op.p = self.p
