"""A training on one process or on the ranks torchrun starts (the library's own entry points, as a user's
script would call them): ``python ranks.py FAMILY OUT [KEY=VALUE ...]``. Rank 0 writes the trained weights,
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


def main(family: str, out: str, *sets: str) -> None:
    torch.set_num_threads(1)
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
