"""The Domain Transfer Network (Taigman, Polyak & Wolf 2016): G = g∘f, f a classifier's encoder trained
on the source domain's labels and frozen, g a DCGAN-style decoder from f's features to a target image.

A three-way discriminator tells G(x_s), G(x_t) and real x_t apart (classes 0, 1, 2). G minimises
L_GANG (both kinds of G output judged "real target") + α·L_CONST (f(x) against f(G(x)) for source x)
+ β·L_TID (G(x) against x for target x) + γ·L_TV, with MSE distances as the paper found best; the
defaults are the paper's digit settings (α = β = 15, γ = 0, ``transfer.*``). One D update, then one
G update on the same G outputs, per step.

f reads float images in [0, 1] with the source's channels (the embeddings' SmallCNN): target images
and G's outputs are converted to that channel count before f sees them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ganops.core import device as devices
from ganops.core.params import TransferParams
from ganops.core.pixels import match_channels
from ganops.models.base import Context, TrainData
from ganops.models.blocks import DConfig, Discriminator, GConfig, Generator, check_resolution
from ganops.models.errors import TrainError
from ganops.models.transfer import TransferBatch, TransferFamily, TransferInfo

FAKE_SOURCE, FAKE_TARGET, REAL_TARGET = 0, 1, 2


class DTN(TransferFamily):
    name = "dtn"
    loss_names: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "gan", "const", "tid", "tv")
    ema_names: ClassVar[tuple[str, ...]] = ("G",)

    @classmethod
    def check(cls, tp: TransferParams, data: TrainData) -> TransferInfo:
        info = super().check(tp, data)
        check_resolution(info.resolution, info.resolution, "transfer.source.resolution and transfer.target.resolution",
                         "run `ganops stage dataset --domain source` and `--domain target` again")
        f = data.source_classifier
        if f is None or not isinstance(getattr(f, "config", None), dict):
            raise TrainError("transfer.family=dtn needs f, a classifier trained on the source domain's labels "
                             "(the source dataset's evaluator): run `ganops stage evaluator` for transfer.source")
        if int(f.config.get("in_channels", info.channels)) != info.channels:
            raise TrainError(f"transfer.family=dtn: f reads {f.config['in_channels']}-channel images, the source "
                             f"has {info.channels}; rebuild the source's evaluator")
        return info

    def __init__(self, ctx: Context, data: TrainData, info: TransferInfo):
        super().__init__(ctx, data, info)
        tp = self.tp
        f = copy.deepcopy(data.source_classifier).eval().requires_grad_(False)   # frozen: never trained here
        dim = int(f.config["dim"])
        g_cfg = GConfig(resolution=info.resolution, channels=info.target_channels, filters=tp.g_filters, z_dim=dim)
        d_cfg = DConfig(resolution=info.resolution, channels=info.target_channels, filters=tp.d_filters, outputs=3)
        self.f, self.G, self.D = f, Generator(g_cfg), Discriminator(d_cfg)
        self.networks = {"f": f, "G": self.G, "D": self.D}
        self.configs = {"f": dict(f.config), "G": g_cfg.to_dict(), "D": d_cfg.to_dict()}

    def configure_optimizers(self):
        opts = {"G": self.adam(self.G), "D": self.adam(self.D)}
        return opts, {k: self.linear_decay(o) for k, o in opts.items()}

    def encode(self, f: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """f of images in [-1, 1] of any channel count."""
        return f((match_channels(x, self.info.channels).float() + 1) * 0.5)

    def train_step(self, batch: TransferBatch) -> Mapping[str, torch.Tensor]:
        tp, dev, f, G, D, A = self.tp, self.ctx.device, self.f, self.G, self.D, self.aug_target
        xs, xt = batch.source, batch.target.contiguous(memory_format=self.ctx.memory_format)
        B = len(xs)
        cls = lambda k: torch.full((B,), k, dtype=torch.long, device=dev)  # noqa: E731
        with torch.no_grad(), devices.autocast(dev):
            fs, ft = self.encode(f, xs), self.encode(f, xt)
        D.requires_grad_(True)
        with devices.autocast(dev):
            gs, gt = G(fs), G(ft)
            d_loss = (F.cross_entropy(D(A(gs.detach())).float(), cls(FAKE_SOURCE))
                      + F.cross_entropy(D(A(gt.detach())).float(), cls(FAKE_TARGET))
                      + F.cross_entropy(D(A(xt)).float(), cls(REAL_TARGET)))
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        D.requires_grad_(False)
        with devices.autocast(dev):
            gan = (F.cross_entropy(D(A(gs)).float(), cls(REAL_TARGET))
                   + F.cross_entropy(D(A(gt)).float(), cls(REAL_TARGET)))
            const = F.mse_loss(self.encode(f, gs).float(), fs.float())
            tid = F.mse_loss(gt.float(), xt)
            tv = _total_variation(gs.float()) if tp.tv_weight > 0 else torch.zeros((), device=dev)
            g_loss = gan + tp.const_weight * const + tp.tid_weight * tid + tp.tv_weight * tv
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        out = {"d_loss": d_loss, "g_loss": g_loss, "gan": gan, "const": const, "tid": tid, "tv": tv}
        return {k: v.detach() for k, v in out.items()}

    def preview_columns(self, nets: Mapping[str, nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
        return [nets["G"](self.encode(nets["f"], x))]

    @classmethod
    def translator(cls, configs: Mapping[str, dict], states: Mapping[str, dict], reverse: bool = False) -> nn.Module:
        from ganops.embed.nets import build

        f, G = build(configs["f"]), Generator(GConfig.from_dict(configs["G"]))
        f.load_state_dict(states["f"])
        G.load_state_dict(states["G"])
        return DTNTranslator(f, G)


class DTNTranslator(nn.Module):
    """G = g∘f on images in [-1, 1]: what the DTN's users run."""

    def __init__(self, f: nn.Module, G: Generator):
        super().__init__()
        self.f, self.G = f, G
        self.channels = int(f.config["in_channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.G(self.f((match_channels(x, self.channels).float() + 1) * 0.5))


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
