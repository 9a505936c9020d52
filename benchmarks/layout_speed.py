"""The generator families' training speed in the two memory layouts: channels_last (the trainer's choice for them,
on the CPU too) against torch's default contiguous layout, on the same machine in the same run.

    python benchmarks/layout_speed.py                          # make run's recipe (params.yaml), digits at 16×16
    python benchmarks/layout_speed.py --steps 10 --rounds 2    # quicker
    python benchmarks/layout_speed.py --set train.g_filters=32 train.d_filters=32

Each family trains with params.yaml's train.* (``--set`` overrides) on the pipeline's digits (scikit-learn's,
resized to data.resolution as the dataset stage resizes them); IC-GAN on random instance features of the
embedder's width and their neighborhoods (speed only: what the features say does not change the step's cost).
Rounds alternate between the layouts so that machine noise hits both alike; the figure is the median round.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def _data(p, family: str):
    from ganops.data.resize import resize_square
    from ganops.data.sources import load_digits
    from ganops.models import TrainData

    raw = load_digits(p.data.model_copy(update={"dataset": "digits"}), REPO, p.seed)   # the pipeline's own digits
    images, labels = resize_square(raw.images, p.data.resolution), raw.labels
    features = neighbors = None
    if family == "icgan":
        rng = np.random.default_rng(0)
        features = rng.standard_normal((len(images), p.embed.dim)).astype(np.float32)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        sims = features @ features.T
        np.fill_diagonal(sims, -np.inf)     # IC-GAN's neighborhoods exclude the instance itself
        neighbors = np.argsort(-sims, axis=1)[:, : p.neighbors.k].astype(np.int64)
    return TrainData(images, labels, features, neighbors)


def _rate(trainer, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        out = trainer.train_step()
    out.sum().item()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=["dcgan", "cgan", "icgan"])
    ap.add_argument("--steps", type=int, default=30, help="steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="parameter overrides")
    args = ap.parse_args()
    from ganops.core import params as P
    from ganops.train.trainer import Trainer

    results = {}
    for family in args.families:
        p = P.load(REPO / "params.yaml", [*args.set, f"train.family={family}", "device=cpu"], required=True)
        data = _data(p, family)
        trainers = {layout: Trainer(p, data, channels_last=layout == "channels_last")
                    for layout in ("contiguous", "channels_last")}
        for tr in trainers.values():   # warm-up: oneDNN picks its kernels on the first calls
            for _ in range(2):
                tr.train_step()
        rates = {layout: [] for layout in trainers}
        for _ in range(args.rounds):
            for layout, tr in trainers.items():
                rates[layout].append(_rate(tr, args.steps))
        med = {layout: statistics.median(r) for layout, r in rates.items()}
        results[family] = {"steps_per_s": med["channels_last"], "baseline": med["contiguous"],
                           "ratio": med["channels_last"] / med["contiguous"], "rounds": rates}
        print(f"{family:6s} contiguous {med['contiguous']:6.2f} steps/s   channels_last {med['channels_last']:6.2f} "
              f"steps/s   ratio {results[family]['ratio']:.2f}×")
    print(json.dumps({"benchmark": "layout_speed", "device": "cpu", "threads": torch.get_num_threads(),
                      "overrides": args.set, "families": results}))


if __name__ == "__main__":
    main()
