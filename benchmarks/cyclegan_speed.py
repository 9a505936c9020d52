"""CycleGAN training throughput: ganops' trainer (the `cyclegan` family) against a plain loop of the
CycleGAN repository's ``optimize_parameters`` with the same networks.

    python benchmarks/cyclegan_speed.py                 # batch 1 at 128×128 (the paper's), batch 16 at 32×32
    python benchmarks/cyclegan_speed.py --steps 2 --rounds 2

Both sides use ganops' ResNet-9 generators and 70×70 PatchGANs (built like the repository's, same
init), least-squares losses, λ = 10, identity 0.5, pools of 50 and Adam(2e-4, β1 0.5); the reference
is the repository's ``forward`` / ``backward_G`` / ``backward_D_A`` / ``backward_D_B`` sequence with
its Python-random ImagePool and fp32, fed ready-made batches. ganops draws its batches from uint8
images each step, and on CUDA adds bf16 autocast + channels_last. Rounds alternate between the two;
the figure is the median round. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ganops.models import TrainData  # noqa: E402
from ganops.models.transfer_nets import PatchConfig, PatchDiscriminator, ResnetConfig, ResnetGenerator  # noqa: E402
from ganops.train.trainer import Trainer  # noqa: E402

# ---------------------------------------------------------------- the reference (CycleGAN repository)

class RepoImagePool:
    """util/image_pool.py of pytorch-CycleGAN-and-pix2pix."""

    def __init__(self, pool_size: int):
        self.pool_size, self.num_imgs, self.images = pool_size, 0, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if self.num_imgs < self.pool_size:
                self.num_imgs += 1
                self.images.append(image)
                return_images.append(image)
            elif random.uniform(0, 1) > 0.5:
                random_id = random.randint(0, self.pool_size - 1)
                tmp = self.images[random_id].clone()
                self.images[random_id] = image
                return_images.append(tmp)
            else:
                return_images.append(image)
        return torch.cat(return_images, 0)


class RepoCycleGAN:
    """models/cycle_gan_model.py's training step, lsgan, with its loss weights."""

    def __init__(self, channels: int, ngf: int, ndf: int, n_blocks: int, device: torch.device):
        g = ResnetConfig(in_channels=channels, out_channels=channels, filters=ngf, n_blocks=n_blocks)
        d = PatchConfig(in_channels=channels, filters=ndf)
        self.netG_A, self.netG_B = ResnetGenerator(g).to(device), ResnetGenerator(g).to(device)
        self.netD_A, self.netD_B = PatchDiscriminator(d).to(device), PatchDiscriminator(d).to(device)
        self.fake_A_pool, self.fake_B_pool = RepoImagePool(50), RepoImagePool(50)
        self.criterionGAN, self.criterionCycle, self.criterionIdt = nn.MSELoss(), nn.L1Loss(), nn.L1Loss()
        self.optimizer_G = torch.optim.Adam(itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()),
                                            lr=2e-4, betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam(itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()),
                                            lr=2e-4, betas=(0.5, 0.999))

    def gan(self, pred: torch.Tensor, real: bool) -> torch.Tensor:
        return self.criterionGAN(pred, torch.tensor(1.0 if real else 0.0, device=pred.device).expand_as(pred))

    def set_input(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.real_A, self.real_B = a, b

    def backward_D_basic(self, netD, real, fake):
        loss_D = (self.gan(netD(real), True) + self.gan(netD(fake.detach()), False)) * 0.5
        loss_D.backward()
        return loss_D

    def optimize_parameters(self) -> torch.Tensor:
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)
        for net in (self.netD_A, self.netD_B):
            net.requires_grad_(False)
        self.optimizer_G.zero_grad()
        lambda_idt, lambda_A, lambda_B = 0.5, 10.0, 10.0
        loss_idt_A = self.criterionIdt(self.netG_A(self.real_B), self.real_B) * lambda_B * lambda_idt
        loss_idt_B = self.criterionIdt(self.netG_B(self.real_A), self.real_A) * lambda_A * lambda_idt
        loss_G = (self.gan(self.netD_A(self.fake_B), True) + self.gan(self.netD_B(self.fake_A), True)
                  + self.criterionCycle(self.rec_A, self.real_A) * lambda_A
                  + self.criterionCycle(self.rec_B, self.real_B) * lambda_B + loss_idt_A + loss_idt_B)
        loss_G.backward()
        self.optimizer_G.step()
        for net in (self.netD_A, self.netD_B):
            net.requires_grad_(True)
        self.optimizer_D.zero_grad()
        loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, self.fake_B_pool.query(self.fake_B))
        loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, self.fake_A_pool.query(self.fake_A))
        self.optimizer_D.step()
        return (loss_G + loss_D_A + loss_D_B).detach()


# ---------------------------------------------------------------- timing

def _time(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        out = step()
    out.sum().item()   # one host-device sync per round
    return n / (time.perf_counter() - t0)


def compare(res: int, batch: int, channels: int, filters: int, n_blocks: int, steps: int, rounds: int,
            device: torch.device) -> dict:
    from ganops.core import params as P

    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (64, channels, res, res), dtype=np.uint8)
    target = rng.integers(0, 256, (64, channels, res, res), dtype=np.uint8)
    p = P.validate({"device": device.type, "transfer": {
        "family": "cyclegan", "batch_size": batch, "g_filters": filters, "d_filters": filters,
        "n_blocks": n_blocks, "steps": 10_000, "ema": False}})
    torch.manual_seed(0)
    ours = Trainer(p, TrainData(source, target_images=target), device=device, section="transfer")
    ref = RepoCycleGAN(channels, filters, filters, n_blocks, device)
    to = lambda x: torch.from_numpy(x[:batch]).to(device).float().div(127.5).sub(1)  # noqa: E731
    ref.set_input(to(source), to(target))
    for _ in range(2):      # warm-up (allocator, cuDNN autotune), and the pools start filling
        ref.optimize_parameters()
        ours.train_step()
    ref_rates, our_rates = [], []
    for _ in range(rounds):
        ref_rates.append(_time(ref.optimize_parameters, steps))
        our_rates.append(_time(ours.train_step, steps))
    ref_sps, our_sps = statistics.median(ref_rates), statistics.median(our_rates)
    print(f"CycleGAN {res}×{res}×{channels}, ResNet-{n_blocks}, {filters} filters, batch {batch} on {device}: "
          f"reference {ref_sps:.3f} steps/s, ganops {our_sps:.3f} steps/s, ratio {our_sps / ref_sps:.2f}×", flush=True)
    return {"resolution": res, "batch": batch, "steps_per_s": our_sps, "baseline": ref_sps,
            "ratio": our_sps / ref_sps, "rounds": {"ganops": our_rates, "reference": ref_rates}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--filters", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--steps", type=int, default=3, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    from ganops.core.device import resolve

    device = resolve(args.device)
    results = [compare(res, batch, args.channels, args.filters, args.blocks, args.steps, args.rounds, device)
               for res, batch in ((128, 1), (32, 16))]
    print(json.dumps({"benchmark": "cyclegan_speed", "device": str(device), "threads": torch.get_num_threads(),
                      "results": results}))


if __name__ == "__main__":
    main()
