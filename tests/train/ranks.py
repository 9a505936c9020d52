"""A training on one process or on the ranks torchrun starts (the library's own entry points, as a user's
script would call them): ``python ranks.py FAMILY OUT [KEY=VALUE ...] [--ghost=N]`` (``--ghost``: one process
whose batch norms normalise N slices of each batch apart). Rank 0 writes the trained weights,
the history and every rank's weights' fingerprint to OUT (a torch file)."""

import sys

import numpy as np
import torch

from ganops.core import distributed
from ganops.core import params as P
from ganops.models import TrainData
from ganops.train import train


def data(family: str) -> TrainData:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 1, 16, 16), dtype=np.uint8)
    if family == "cyclegan":
        return TrainData(images, target_images=rng.integers(0, 256, (48, 1, 16, 16), dtype=np.uint8))
    return TrainData(images, labels=np.arange(64) % 4)


def ghost_batch_norm(shares: int) -> None:
    """Make every batch norm in training normalise each of ``shares`` equal slices of its batch on its own: one
    process computing what ``shares`` ranks compute, each normalising its share of the global batch."""
    from torch.nn.modules.batchnorm import _BatchNorm

    plain = _BatchNorm.forward

    def forward(self, x):
        if not self.training:
            return plain(self, x)
        return torch.cat([plain(self, part) for part in x.chunk(shares)])

    _BatchNorm.forward = forward


def main(family: str, out: str, *sets: str) -> None:
    torch.set_num_threads(1)
    ghost = [s for s in sets if s.startswith("--ghost=")]
    if ghost:
        ghost_batch_norm(int(ghost[0].split("=")[1]))
        sets = tuple(s for s in sets if s not in ghost)
    section = "transfer" if family == "cyclegan" else "train"
    p = P.load(None, [f"{section}.family={family}", "device=cpu", *sets])
    world = distributed.init("gloo", torch.device("cpu"), timeout_s=60)
    res = train(p, data=data(family), section=section, progress=False)
    # the trained weights (a batch norm's running statistics are each rank's own: rank 0's are saved)
    digest = float(sum(t.double().sum() for s in res.states.values() for k, t in s.items()
                       if t.is_floating_point() and ".running_" not in k))
    every = world.gather(digest)
    if world.main:
        torch.save({"states": res.states, "configs": res.configs, "history": res.history, "ranks": every, "world": world.size,
                    "comm_seconds": world.comm_seconds}, out)
    distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
