"""CycleGAN's networks (Zhu et al. 2017), as the CycleGAN repository builds them: a ResNet generator
(c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings, c7s1-out, tanh;
reflection padding, instance norm) and the 70×70 PatchGAN discriminator (C64-C128-C256-C512, a
stride-1 conv to one logit per patch; instance norm, LeakyReLU 0.2). Weights ~ N(0, 0.02).
Both are rebuilt from their config dicts alone, which the trainer saves with the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from ganops.models.errors import TrainError


@dataclass(frozen=True)
class ResnetConfig:
    in_channels: int = 3
    out_channels: int = 3
    filters: int = 64
    n_blocks: int = 9

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ResnetConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class PatchConfig:
    in_channels: int = 3
    filters: int = 64
    n_layers: int = 3            # 3: the 70×70 PatchGAN

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PatchConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=False, track_running_stats=False)


def init_normal(module: nn.Module) -> None:
    """The CycleGAN repository's 'normal' init: conv weights ~ N(0, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResnetBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), _norm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image in [-1, 1] → image in [-1, 1] of the same side (a multiple of 4)."""

    def __init__(self, cfg: ResnetConfig):
        super().__init__()
        self.cfg = cfg
        f = cfg.filters
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cfg.in_channels, f, 7), _norm(f), nn.ReLU(True)]
        for m in (1, 2):
            layers += [nn.Conv2d(f * m, f * m * 2, 3, 2, 1), _norm(f * m * 2), nn.ReLU(True)]
        layers += [ResnetBlock(f * 4) for _ in range(cfg.n_blocks)]
        for m in (4, 2):
            layers += [nn.ConvTranspose2d(f * m, f * m // 2, 3, 2, 1, output_padding=1), _norm(f * m // 2),
                       nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(f, cfg.out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise TrainError(f"the ResNet generator needs sides divisible by 4, got {tuple(x.shape[-2:])}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """Image → a map of logits, one per (70×70 with 3 layers) patch."""

    def __init__(self, cfg: PatchConfig):
        super().__init__()
        self.cfg = cfg
        f = cfg.filters
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, f, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, cfg.n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < cfg.n_layers else 1
            layers += [nn.Conv2d(f * prev, f * mult, 4, stride, 1), _norm(f * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(f * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
