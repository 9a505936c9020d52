"""DCGAN networks with optional conditioning (Radford et al. 2015; Miyato & Koyama 2018; BigGAN).

The DCGAN rules: strided convolutions in D, fractionally-strided (transposed) convolutions in G, no
fully connected hidden layers, batch norm everywhere except G's output and D's input, ReLU in G with
a tanh output, LeakyReLU(0.2) in D, weights drawn from N(0, 0.02).

Conditioning (used by cGAN and IC-GAN), all optional and set by the config:

- ``Condition``: a label embedding and/or a learned linear projection of an instance feature h,
  concatenated (in G) or summed (in D's projection).
- G: the condition vector is concatenated with z at the input, and with ``cbn`` it also sets the
  gains and biases of every batch norm (conditional batch norm, as BigGAN and IC-GAN).
- D: a projection term ⟨e(c), φ(x)⟩ is added to the logit, φ(x) being D's last feature map summed
  over space (projection discriminator).
- Self-conditioned (a DCGAN's ``train.self_condition``): the labels are k-means clusters of the images
  (``ganops.models.clusters``). G holds their cumulative frequencies and, given no label, draws the cluster
  from z; D holds their centroids and, given no label, assigns the image. Both stay functions of their
  image or noise alone, as an unconditional G and D are.

Both networks are rebuilt from their config dicts alone (``GConfig.from_dict``), which the trainer
saves with the weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _sn

from ganops.catalog.families import RESOLUTIONS
from ganops.models.clusters import cluster_of_noise, nearest, pooled
from ganops.models.errors import TrainError


def check_resolution(height: int, width: int, key: str = "data.resolution",
                     rerun: str = "run `ganops stage dataset` again") -> int:
    if height != width or height not in RESOLUTIONS:
        raise TrainError(
            f"{key}: images are {height}×{width}, which the DCGAN-style networks do not support; "
            f"allowed values are square powers of two {', '.join(map(str, RESOLUTIONS))}. "
            f"Set {key} to one of them and {rerun}.")
    return height


@dataclass(frozen=True)
class _Config:
    resolution: int = 32
    channels: int = 1
    filters: int = 64
    n_classes: int = 0        # > 0: conditioned on an integer label
    feat_dim: int = 0         # > 0: conditioned on an instance feature h of this size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
        return cls(**d)

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0 or self.feat_dim > 0

    @property
    def n_up(self) -> int:
        return int(math.log2(check_resolution(self.resolution, self.resolution))) - 2


@dataclass(frozen=True)
class GConfig(_Config):
    z_dim: int = 100
    cond_dim: int = 64        # size of each embedded condition part (label, projected h)
    cbn: bool = False         # conditional batch norm from the condition vector
    self_conditioned: bool = False   # the n_classes are clusters of the training images that G draws from z
                                     # at their frequencies when no label is given (``ganops.models.clusters``)

    def activations(self) -> int:
        """Floats one image's forward keeps for the backward pass: each layer's conv, norm and ReLU outputs,
        then the image and its tanh (what the memory estimate of a training reads)."""
        widths = [self.filters * 2 ** (self.n_up - 1 - i) for i in range(self.n_up)]
        return sum(3 * w * (4 * 2 ** i) ** 2 for i, w in enumerate(widths)) + 2 * self.channels * self.resolution ** 2


@dataclass(frozen=True)
class DConfig(_Config):
    spectral_norm: bool = False   # spectral norm on every layer; it replaces D's batch norm (SNGAN)
    outputs: int = 1              # logits per image (DTN's discriminator tells three classes apart)
    cluster_dim: int = 0          # > 0: the n_classes are clusters of pooled images of this size, whose centroids D
                                  # holds to assign an image given without a label (a self-conditioned GAN)

    def activations(self) -> int:
        """Floats one image's forward keeps for the backward pass: the image, then each layer's conv, norm
        (none under spectral norm) and LeakyReLU outputs."""
        per_layer = 2 if self.spectral_norm else 3
        return self.channels * self.resolution ** 2 + sum(
            per_layer * self.filters * 2 ** i * (self.resolution // 2 ** (i + 1)) ** 2 for i in range(self.n_up))


def init_weights(module: nn.Module) -> None:
    """DCGAN init: conv and linear weights ~ N(0, 0.02), BN gains ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Condition(nn.Module):
    """Label y and/or feature h → condition vector: parts concatenated (``sum=False``) or summed."""

    def __init__(self, n_classes: int, feat_dim: int, dim: int, *, sum: bool = False, sn: bool = False):
        super().__init__()
        wrap = _sn if sn else (lambda m: m)
        self.embed = wrap(nn.Embedding(n_classes, dim)) if n_classes else None
        self.proj = wrap(nn.Linear(feat_dim, dim, bias=False)) if feat_dim else None
        self.sum = sum
        self.out_dim = dim if sum else dim * ((n_classes > 0) + (feat_dim > 0))

    def forward(self, y: torch.Tensor | None, h: torch.Tensor | None) -> torch.Tensor:
        parts = []
        if self.embed is not None:
            if y is None:
                raise ValueError("this network is class-conditional: pass the labels y")
            parts.append(self.embed(y))
        if self.proj is not None:
            if h is None:
                raise ValueError("this network is instance-conditional: pass the instance features h")
            parts.append(self.proj(h.to(self.proj.weight.dtype)))
        if self.sum:
            return parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)
        return torch.cat(parts, 1)


class CondBatchNorm2d(nn.Module):
    """Batch norm whose gain (1 + Δ) and bias come from a condition vector; plain affine BN without one."""

    def __init__(self, num_features: int, cond_dim: int = 0):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=cond_dim == 0)
        if cond_dim:
            self.gain = nn.Linear(cond_dim, num_features, bias=False)
            self.bias = nn.Linear(cond_dim, num_features, bias=False)
        else:
            self.gain = self.bias = None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        out = self.bn(x)
        if self.gain is None:
            return out
        gain = 1.0 + self.gain(c)
        bias = self.bias(c)
        return out * gain[:, :, None, None].to(out.dtype) + bias[:, :, None, None].to(out.dtype)


class Generator(nn.Module):
    """z (+ condition) → image in [-1, 1]: a 4×4 transposed conv from the 1×1 input, then stride-2
    transposed convs doubling the side up to the resolution; widths filters·2^k, halving each time."""

    def __init__(self, cfg: GConfig):
        super().__init__()
        self.cfg = cfg
        n_up = cfg.n_up
        self.cond = Condition(cfg.n_classes, cfg.feat_dim, cfg.cond_dim) if cfg.conditional else None
        c_dim = self.cond.out_dim if self.cond is not None else 0
        bn_c = c_dim if cfg.cbn else 0
        widths = [cfg.filters * 2 ** (n_up - 1 - i) for i in range(n_up)]   # at 4×4, 8×8, …
        self.convs = nn.ModuleList([nn.ConvTranspose2d(cfg.z_dim + c_dim, widths[0], 4, 1, 0, bias=False)])
        self.norms = nn.ModuleList([CondBatchNorm2d(widths[0], bn_c)])
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            self.convs.append(nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False))
            self.norms.append(CondBatchNorm2d(w_out, bn_c))
        self.out = nn.ConvTranspose2d(widths[-1], cfg.channels, 4, 2, 1, bias=False)
        if cfg.self_conditioned:        # the clusters' cumulative frequencies, set by the family before training
            self.register_buffer("cdf", torch.linspace(1.0 / cfg.n_classes, 1.0, cfg.n_classes))
        # N(0, 0.02) for the condition's embedding too: a unit-variance one (tried) made G ignore z
        # within a class (cGAN on digits, 500 steps: per-class pixel std 0.04 against 0.23 and real 0.26)
        init_weights(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, h: torch.Tensor | None = None):
        if y is None and self.cfg.self_conditioned:
            y = cluster_of_noise(z, self.cdf)
        c = self.cond(y, h) if self.cond is not None else None
        x = z if c is None else torch.cat([z, c.to(z.dtype)], 1)
        x = x[:, :, None, None]
        bn_c = c if self.cfg.cbn else None
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu(norm(conv(x), bn_c))
        return torch.tanh(self.out(x))


class Discriminator(nn.Module):
    """Image (+ condition) → one logit per image: stride-2 convs halving the side down to 4×4, a 4×4
    conv to the logit, plus the projection term ⟨e(c), Σ_space φ(x)⟩ when conditional."""

    def __init__(self, cfg: DConfig):
        super().__init__()
        self.cfg = cfg
        n_down = cfg.n_up
        wrap = _sn if cfg.spectral_norm else (lambda m: m)
        widths = [cfg.filters * 2 ** i for i in range(n_down)]              # at res/2, res/4, …, 4×4
        layers: list[nn.Module] = [wrap(nn.Conv2d(cfg.channels, widths[0], 4, 2, 1, bias=cfg.spectral_norm)),
                                   nn.LeakyReLU(0.2)]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers.append(wrap(nn.Conv2d(w_in, w_out, 4, 2, 1, bias=cfg.spectral_norm)))
            if not cfg.spectral_norm:
                layers.append(nn.BatchNorm2d(w_out))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers)
        self.logit = wrap(nn.Conv2d(widths[-1], cfg.outputs, 4, 1, 0, bias=cfg.spectral_norm))
        self.cond = (Condition(cfg.n_classes, cfg.feat_dim, widths[-1], sum=True, sn=cfg.spectral_norm)
                     if cfg.conditional else None)
        init_weights(self)
        if self.cond is not None and self.cond.embed is not None:
            # the projection's class embedding as SNGAN's projection D initialises it (Xavier, std ≈ 0.12 for
            # 10 classes × 128): at DCGAN's N(0, 0.02) D all but ignored the label at first, and cGAN's
            # samples followed it less (per-label accuracy 0.876 against 0.946 at N(0, 0.1) on MNIST,
            # 1,500 steps, 32 filters; benchmarks/gan_quality.py)
            emb = self.cond.embed
            weight = emb.parametrizations.weight.original if parametrize.is_parametrized(emb) else emb.weight
            nn.init.xavier_uniform_(weight)
        if cfg.cluster_dim:             # set by the family before training
            self.register_buffer("centroids", torch.zeros(cfg.n_classes, cfg.cluster_dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, h: torch.Tensor | None = None):
        if y is None and self.cfg.cluster_dim:
            y = nearest(pooled(x), self.centroids)
        phi = self.features(x)
        out = self.logit(phi).flatten(1)
        if self.cfg.outputs == 1:
            out = out.squeeze(1)
        if self.cond is not None:
            e = self.cond(y, h)
            out = out + (phi.sum((2, 3)) * e.to(phi.dtype)).sum(1)
        return out
