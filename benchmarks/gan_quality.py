"""GAN quality on the real MNIST test split: dcgan, cgan and icgan with the same step budget.

    python benchmarks/gan_quality.py                       # 1500 steps each, 32 filters
    python benchmarks/gan_quality.py --steps 300 --families cgan icgan

Until the evaluation stage exists, quality is judged by a classifier trained here on real MNIST
(8,000 images; its accuracy on the other 2,000 is printed as the ceiling):
- cgan: accuracy of the classifier on samples of each requested label;
- icgan: samples conditioned on an instance, scored against that instance's label (the
  neighborhoods come from the same features the stage would use, `--encoder`);
- dcgan: no labels to request; the predicted-class histogram shows mode coverage.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def load_mnist(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from ganops.data.sources import load_source
    from ganops.data.store import prepare
    from ganops.params import DataParams

    p = DataParams(dataset="mnist", root=str(SHARED), resolution=resolution, download=False)
    ds = prepare(load_source(p, SHARED.parent), p, 0)
    return ds.images, ds.labels


class Judge(nn.Module):
    """A small CNN classifier of real digits: the stand-in evaluator."""

    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Flatten(), nn.LazyLinear(128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.f(x)


def _float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(images, np.float32) / 127.5 - 1.0)


def train_judge(images, labels, seed: int) -> tuple[Judge, float]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    tr, te = order[:8000], order[8000:]
    torch.manual_seed(seed)
    judge = Judge()
    x, y = _float(images[tr]), torch.from_numpy(labels[tr])
    judge(x[:2])
    opt = torch.optim.Adam(judge.parameters(), 1e-3)
    for _ in range(3):
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            F.cross_entropy(judge(x[idx]), y[idx]).backward()
            opt.step()
    return judge.eval(), float(predict(judge, images[te]).eq(torch.from_numpy(labels[te])).float().mean())


@torch.no_grad()
def predict(judge: Judge, images: np.ndarray) -> torch.Tensor:
    return torch.cat([judge(_float(images[s:s + 1000])).argmax(1) for s in range(0, len(images), 1000)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=["dcgan", "cgan", "icgan"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--encoder", default="pixels", help="features for icgan's neighborhoods (pixels or simclr)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--per-label", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/out", help="where the sample grids go")
    args = ap.parse_args()

    from ganops import params as P
    from ganops.device import resolve
    from ganops.embed import embed
    from ganops.neighbors import diagnostics, knn
    from ganops.train import generate, train
    from ganops.visual import save_grid

    images, labels = load_mnist(32)
    judge, judge_acc = train_judge(images, labels, args.seed)
    print(f"judge: accuracy {judge_acc:.3f} on 2,000 held-out real MNIST test images")
    base = {"seed": args.seed, "data": {"dataset": "mnist", "resolution": 32},
            "embed": {"encoder": args.encoder}, "neighbors": {"k": args.k},
            "train": {"steps": args.steps, "g_filters": args.filters, "d_filters": args.filters,
                      "log_every": max(1, args.steps // 10)}}
    device = resolve("auto")
    features = neighbors = None
    out_dir = Path(args.out)
    results: dict[str, dict] = {"judge_accuracy": judge_acc}
    rng = np.random.default_rng(args.seed)
    for family in args.families:
        p = P.validate({**base, "train": {**base["train"], "family": family}})
        if family == "icgan" and features is None:
            t = time.perf_counter()
            features = embed(images, labels, p, device).features
            res = knn(features, args.k, p.neighbors, seed=args.seed)
            neighbors = res.indices
            purity = diagnostics(res.indices, res.similarities, labels)["purity"]
            print(f"icgan: {args.encoder} features + k={args.k} neighborhoods, purity {purity:.3f} "
                  f"({time.perf_counter() - t:.0f} s)")
            results["neighbor_purity"] = purity
        t = time.perf_counter()
        result = train(p, images, labels, features, neighbors, device=device, progress=False)
        secs = time.perf_counter() - t
        weights = result.weights()
        row: dict = {"train_seconds": secs, "final_losses": result.final_losses}
        if family == "cgan":
            want = np.repeat(np.arange(10), args.per_label)
            fake = generate(weights, len(want), seed=args.seed, labels=want)
            hit = predict(judge, fake).numpy() == want
            row["accuracy_per_label"] = [float(hit[want == c].mean()) for c in range(10)]
            row["accuracy"] = float(hit.mean())
        elif family == "icgan":
            inst = np.concatenate([rng.choice(np.flatnonzero(labels == c), args.per_label, replace=False)
                                   for c in range(10)])
            want = labels[inst]
            fake = generate(weights, len(inst), seed=args.seed, features=features[inst])
            hit = predict(judge, fake).numpy() == want
            row["accuracy_per_label"] = [float(hit[want == c].mean()) for c in range(10)]
            row["accuracy"] = float(hit.mean())
        else:
            fake = generate(weights, 10 * args.per_label, seed=args.seed)
            counts = np.bincount(predict(judge, fake).numpy(), minlength=10)
            row["predicted_class_share"] = (counts / counts.sum()).round(3).tolist()
            row["classes_covered"] = int((counts / counts.sum() > 0.02).sum())
        save_grid(fake[:: max(1, len(fake) // 100)][:100], out_dir / f"{family}.png", nrow=10)
        results[family] = row
        summary = f"accuracy {row['accuracy']:.3f}" if "accuracy" in row else \
            f"{row['classes_covered']}/10 classes covered"
        print(f"{family}: {args.steps} steps in {secs:.0f} s, {summary}  (grid: {out_dir / f'{family}.png'})")
        if "accuracy_per_label" in row:
            print("   per label: " + " ".join(f"{c}:{a:.2f}" for c, a in enumerate(row["accuracy_per_label"])))
    print(json.dumps({"benchmark": "gan_quality", "steps": args.steps, "filters": args.filters,
                      "baseline": "judge accuracy on real images", **results,
                      "ratio": {f: results[f]["accuracy"] / judge_acc for f in results
                                if isinstance(results.get(f), dict) and "accuracy" in results[f]}}))


if __name__ == "__main__":
    main()
