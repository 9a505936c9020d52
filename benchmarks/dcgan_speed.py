"""DCGAN training throughput: ganops' trainer against the canonical PyTorch DCGAN example loop.

    python benchmarks/dcgan_speed.py                      # 64×64, nz 100, 64 filters, batch 64, CPU or CUDA
    python benchmarks/dcgan_speed.py --steps 5 --rounds 2 # quicker

The baseline is pytorch/examples' dcgan/main.py (same architecture, BCE loss, Adam 2e-4, β1 0.5),
run in fp32 as the example does. ganops runs the `dcgan` family with the `ns` loss (the same BCE
objective), no EMA, one D step, no augmentation, clusters or mode seeking (the example's recipe, not the
defaults), in channels_last (on CUDA also bf16 autocast). Both see the same random uint8
images. Rounds alternate between the two so that machine noise hits both alike; the figure is
the median round. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

# ---------------------------------------------------------------- the reference (pytorch/examples dcgan)


class RefGenerator(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf: int, nc: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


class Reference:
    """The example's training loop, step for step."""

    def __init__(self, images: torch.Tensor, nz: int, nf: int, batch: int, device: torch.device):
        nc = images.shape[1]
        self.netG, self.netD = RefGenerator(nz, nf, nc).to(device), RefDiscriminator(nf, nc).to(device)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.images, self.nz, self.batch, self.device = images, nz, batch, device

    def step(self) -> torch.Tensor:
        idx = torch.randint(0, len(self.images), (self.batch,))
        real = self.images[idx].to(self.device).float().div_(127.5).sub_(1)
        self.netD.zero_grad()
        label = torch.full((self.batch,), 1.0, device=self.device)
        errD_real = self.criterion(self.netD(real), label)
        errD_real.backward()
        noise = torch.randn(self.batch, self.nz, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(0.0)
        errD_fake = self.criterion(self.netD(fake.detach()), label)
        errD_fake.backward()
        self.optD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        errG = self.criterion(self.netD(fake), label)
        errG.backward()
        self.optG.step()
        return errG.detach()


# ---------------------------------------------------------------- ganops


def ganops_trainer(images: np.ndarray, nz: int, nf: int, batch: int, device: torch.device):
    from ganops.core import params as P
    from ganops.models import TrainData
    from ganops.train.trainer import Trainer

    p = P.validate({"device": device.type, "train": {
        "family": "dcgan", "loss": "ns", "z_dim": nz, "g_filters": nf, "d_filters": nf, "batch_size": batch,
        "ema": False, "lr_g": 2e-4, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999,
        # the example's recipe, not today's defaults: one D step, no clusters, no augmentation, no mode seeking
        "d_steps": 1, "self_condition": 0, "augment": {"kind": "none"}, "mode_seeking": 0.0}})
    return Trainer(p, TrainData(images), device=device)


def _time(step, n: int, device: torch.device) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        out = step()
    out.sum().item()  # one host-device sync per round, not per step
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--nz", type=int, default=100)
    ap.add_argument("--filters", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    from ganops.core.device import resolve

    device = resolve(args.device)
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (1024, args.channels, args.resolution, args.resolution),
                                               dtype=np.uint8)
    if args.resolution != 64:
        raise SystemExit("the reference architecture is the example's 64×64 one: use --resolution 64")
    ref = Reference(torch.from_numpy(images), args.nz, args.filters, args.batch, device)
    ours = ganops_trainer(images, args.nz, args.filters, args.batch, device)
    for _ in range(2):  # warm-up (allocator, cuDNN autotune)
        ref.step()
        ours.train_step()
    ref_rates, our_rates = [], []
    for _ in range(args.rounds):
        ref_rates.append(_time(ref.step, args.steps, device))
        our_rates.append(_time(ours.train_step, args.steps, device))
    ref_sps, our_sps = statistics.median(ref_rates), statistics.median(our_rates)
    threads = torch.get_num_threads()
    print(f"DCGAN {args.resolution}×{args.resolution}×{args.channels}, nz {args.nz}, {args.filters} filters, "
          f"batch {args.batch} on {device} ({threads} threads)")
    print(f"  reference loop (pytorch/examples dcgan): {ref_sps:7.2f} steps/s  {ref_sps * args.batch:8.1f} img/s")
    print(f"  ganops trainer                         : {our_sps:7.2f} steps/s  {our_sps * args.batch:8.1f} img/s")
    print(f"  ratio: {our_sps / ref_sps:.2f}×")
    print(json.dumps({"benchmark": "dcgan_speed", "device": str(device), "threads": threads,
                      "resolution": args.resolution, "batch": args.batch, "filters": args.filters,
                      "steps_per_s": our_sps, "baseline": ref_sps, "ratio": our_sps / ref_sps,
                      "rounds": {"ganops": our_rates, "reference": ref_rates}}))


if __name__ == "__main__":
    main()
