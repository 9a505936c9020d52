"""CycleGAN (Zhu et al. 2017): G_ab: A → B and G_ba: B → A trained together, each judged by a PatchGAN
of its output domain (D_b, D_a), with least-squares adversarial losses, an L1 cycle loss (λ), an
identity loss (0.5·λ), a pool of 50 past fakes for the discriminators and a linear learning-rate
decay over the second half: the CycleGAN repository's ``optimize_parameters``, one Adam over both
generators and one over both discriminators. A is ``transfer.source``, B ``transfer.target``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ganops.core import device as devices
from ganops.core.params import TransferParams
from ganops.models.base import Context, TrainData
from ganops.models.errors import TrainError
from ganops.models.transfer import TransferBatch, TransferFamily, TransferInfo
from ganops.models.transfer_nets import PatchConfig, PatchDiscriminator, ResnetConfig, ResnetGenerator


class ImagePool:
    """Shrivastava et al. 2017, as the CycleGAN repository's ImagePool: until ``size`` fakes are kept each
    new one is kept and shown; then with probability ½ a kept one is shown and replaced by the new one.
    Its draws come from a checkpointed rng and its contents go into the checkpoint (exact resume)."""

    def __init__(self, size: int, rng: torch.Generator):
        self.size, self.rng = size, rng
        self.images: torch.Tensor | None = None
        self.count = 0

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        if self.images is None:
            self.images = fakes.new_empty((self.size, *fakes.shape[1:]))
        out = fakes.clone()
        for k in range(len(fakes)):
            if self.count < self.size:
                self.images[self.count] = fakes[k]
                self.count += 1
            elif torch.rand((), generator=self.rng).item() > 0.5:
                i = int(torch.randint(0, self.size, (), generator=self.rng))
                out[k] = self.images[i]
                self.images[i] = fakes[k]
        return out

    def state(self) -> torch.Tensor:
        return torch.empty(0) if self.images is None else self.images[:self.count].cpu()

    def load(self, t: torch.Tensor, device: torch.device) -> None:
        self.count = len(t)
        if self.count:
            self.images = torch.empty((self.size, *t.shape[1:]), dtype=t.dtype, device=device)
            self.images[:self.count] = t.to(device)


class CycleGAN(TransferFamily):
    name = "cyclegan"
    loss_names: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "g_ab", "g_ba", "cycle_a", "cycle_b",
                                             "idt_a", "idt_b", "d_a", "d_b")
    ema_names: ClassVar[tuple[str, ...]] = ("G_ab", "G_ba")

    @classmethod
    def check(cls, tp: TransferParams, data: TrainData) -> TransferInfo:
        info = super().check(tp, data)
        if tp.identity_weight > 0 and info.channels != info.target_channels:
            raise TrainError(f"transfer.identity_weight={tp.identity_weight} needs domains with one channel count, "
                             f"but the source has {info.channels} and the target {info.target_channels}: set "
                             "transfer.identity_weight=0, or transfer.source.channels / transfer.target.channels")
        return info

    def __init__(self, ctx: Context, data: TrainData, info: TransferInfo):
        super().__init__(ctx, data, info)
        tp = self.tp
        ca, cb = info.channels, info.target_channels
        g = lambda i, o: ResnetConfig(in_channels=i, out_channels=o, filters=tp.g_filters, n_blocks=tp.n_blocks)  # noqa: E731
        # the 70×70 PatchGAN has 3 stride-2 layers; below 48 px fewer, so its last map keeps ≥ 2×2 patches
        layers = max(1, min(3, int(math.log2(info.resolution / 3))))
        cfgs = {"G_ab": g(ca, cb), "G_ba": g(cb, ca),
                "D_a": PatchConfig(in_channels=ca, filters=tp.d_filters, n_layers=layers),
                "D_b": PatchConfig(in_channels=cb, filters=tp.d_filters, n_layers=layers)}
        self.networks = {n: (ResnetGenerator(c) if n.startswith("G") else PatchDiscriminator(c)) for n, c in cfgs.items()}
        self.configs = {n: c.to_dict() for n, c in cfgs.items()}
        # each rank keeps a pool of its own fakes (as the repository's per-GPU pools): a stream of its own
        ctx.rngs.setdefault("pool", torch.Generator().manual_seed(ctx.rank_seed(ctx.p.seed + 4)))
        self.pool_a = ImagePool(tp.pool_size, ctx.rngs["pool"])     # fakes of domain A, for D_a
        self.pool_b = ImagePool(tp.pool_size, ctx.rngs["pool"])

    def configure_optimizers(self):
        n = self.networks
        opts = {"G": self.adam(n["G_ab"], n["G_ba"]), "D": self.adam(n["D_a"], n["D_b"])}
        return opts, {k: self.linear_decay(o) for k, o in opts.items()}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {"pool_a": self.pool_a.state(), "pool_b": self.pool_b.state()}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.pool_a.load(state["pool_a"], self.ctx.device)
        self.pool_b.load(state["pool_b"], self.ctx.device)

    def train_step(self, batch: TransferBatch) -> Mapping[str, torch.Tensor]:
        n, tp, dev = self.networks, self.tp, self.ctx.device
        G_ab, G_ba, D_a, D_b = n["G_ab"], n["G_ba"], n["D_a"], n["D_b"]
        aug_a, aug_b = self.aug_source, self.aug_target
        fmt = self.ctx.memory_format
        a, b = batch.source.contiguous(memory_format=fmt), batch.target.contiguous(memory_format=fmt)
        lam, li = tp.cycle_weight, tp.identity_weight
        D_a.requires_grad_(False)
        D_b.requires_grad_(False)
        # Every layer is per-image (instance norm, no batch statistics), so a network's inputs can share
        # one call: G_ab takes A (to translate) and B (identity) together, G_ba likewise, and each D its
        # real and fake images: 4 generator and 2 discriminator calls a step instead of 6 and 4.
        with devices.autocast(dev):
            if li > 0:
                fake_b, same_b = G_ab(torch.cat([a, b])).split([len(a), len(b)])
                fake_a, same_a = G_ba(torch.cat([b, a])).split([len(b), len(a)])
                idt_a = F.l1_loss(same_a.float(), a) * lam * li         # G_ba should leave A images alone
                idt_b = F.l1_loss(same_b.float(), b) * lam * li
            else:
                fake_b, fake_a = G_ab(a), G_ba(b)
                idt_a = idt_b = torch.zeros((), device=dev)
            rec_a, rec_b = G_ba(fake_b), G_ab(fake_a)
            g_ab, g_ba = _ls(D_b(aug_b(fake_b)), 1.0), _ls(D_a(aug_a(fake_a)), 1.0)
            cycle_a, cycle_b = F.l1_loss(rec_a.float(), a) * lam, F.l1_loss(rec_b.float(), b) * lam
            g_loss = g_ab + g_ba + cycle_a + cycle_b + idt_a + idt_b
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D_a.requires_grad_(True)
        D_b.requires_grad_(True)
        seen_a, seen_b = self.pool_a.query(fake_a.detach()), self.pool_b.query(fake_b.detach())
        with devices.autocast(dev):
            d_a = _real_fake(D_a(aug_a(torch.cat([a, seen_a]))), len(a))
            d_b = _real_fake(D_b(aug_b(torch.cat([b, seen_b]))), len(b))
            d_loss = d_a + d_b
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        out = {"d_loss": d_loss, "g_loss": g_loss, "g_ab": g_ab, "g_ba": g_ba, "cycle_a": cycle_a,
               "cycle_b": cycle_b, "idt_a": idt_a, "idt_b": idt_b, "d_a": d_a, "d_b": d_b}
        return {k: v.detach() for k, v in out.items()}

    def preview_columns(self, nets: Mapping[str, nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
        fake = nets["G_ab"](x)
        return [fake, nets["G_ba"](fake)]

    @classmethod
    def translator(cls, configs: Mapping[str, dict], states: Mapping[str, dict], reverse: bool = False) -> nn.Module:
        name = "G_ba" if reverse else "G_ab"
        G = ResnetGenerator(ResnetConfig.from_dict(configs[name]))
        G.load_state_dict(states[name])
        return G


def _ls(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Least-squares GAN loss (the repository's GANLoss('lsgan')): MSE of every patch logit to the target."""
    return (logits.float() - target).pow(2).mean()


def _real_fake(logits: torch.Tensor, n_real: int) -> torch.Tensor:
    """The repository's D loss, ½(GAN(real, 1) + GAN(fake, 0)), from one call on real then fake images."""
    real, fake = logits.split([n_real, len(logits) - n_real])
    return 0.5 * (_ls(real, 1.0) + _ls(fake, 0.0))
