"""k-NN label purity of the embedding encoders: how often an instance's nearest neighbours share its label.

IC-GAN conditions on an instance's neighbourhood, so a neighbourhood that mixes classes blurs the
generator's conditioning. This prints purity at k=10 and k=50 (cosine, self excluded) for each
encoder on MNIST test (the real t10k files, padded 28→32) and scikit-learn digits (8→32), with the
raw-pixel encoder as the baseline, and SimCLR's training time.

    python benchmarks/knn_purity.py --datasets mnist digits --encoders pixels simclr classifier
    python benchmarks/knn_purity.py --datasets mnist --encoders simclr --curve 5   # purity every 5 epochs

The last line is one JSON object (DESIGN.md §7).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganops.core.params import NeighborsParams, Params
from ganops.embed import embed, extract, simclr
from ganops.neighbors.search import knn

MNIST_RAW = REPO.parent / "shared" / "data" / "mnist" / "MNIST" / "raw"


def _idx(path: Path) -> np.ndarray:
    """Parse an idx file (MNIST's format): magic (dtype code, ndim), big-endian dims, raw bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(raw: Path = MNIST_RAW) -> tuple[np.ndarray, np.ndarray]:
    images = _idx(raw / "t10k-images-idx3-ubyte.gz")
    labels = _idx(raw / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))[:, None]     # 28→32, as torchvision's Pad(2)
    return np.ascontiguousarray(images), labels


def load_digits32() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return (x * 255).round().clamp(0, 255).to(torch.uint8).numpy(), d.target.astype(np.int64)


def purity(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (10, 50)) -> dict[str, float]:
    res = knn(np.ascontiguousarray(features, dtype=np.float32), max(ks), NeighborsParams(use_gpu=False))
    same = labels[res.indices] == labels[:, None]         # N×k: neighbour shares the label
    return {f"purity_at_{k}": round(float(same[:, :k].mean()), 4) for k in ks}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["mnist", "digits"], choices=["mnist", "digits"])
    ap.add_argument("--encoders", nargs="+", default=["pixels", "simclr", "classifier"],
                    choices=["pixels", "simclr", "classifier"])
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the params default)")
    ap.add_argument("--limit", type=int, default=None, help="use the first N images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", type=int, default=0, help="simclr: print purity every N epochs")
    ap.add_argument("--set", nargs="*", default=[], help="extra embed.* overrides, e.g. embed.lr=1e-3")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    loaders = {"mnist": load_mnist, "digits": load_digits32}

    rows, out = [], {"benchmark": "knn_purity", "threads": args.threads}
    for ds in args.datasets:
        images, labels = loaders[ds]()
        if args.limit:
            images, labels = images[:args.limit], labels[:args.limit]
        for enc in args.encoders:
            embed_over = {"encoder": enc, **({"epochs": args.epochs} if args.epochs else {})}
            for kv in args.set:
                key, value = kv.split("=", 1)
                embed_over[key.removeprefix("embed.")] = type(getattr(Params().embed, key.removeprefix("embed.")))(value)
            p = Params(seed=args.seed, embed=embed_over)
            t0 = time.perf_counter()
            if enc == "simclr" and args.curve:
                def on_epoch(ep: int, model: torch.nn.Module, _lab=labels, _img=images, p=p, ds=ds,
                             t0=t0) -> None:
                    if ep % args.curve == 0 or ep == p.embed.epochs:
                        f = extract(model, _img, device, p.embed.extract_batch_size)
                        print(f"  {ds} simclr epoch {ep}: {purity(f, _lab)}  ({time.perf_counter() - t0:.0f}s)",
                              flush=True)
                model, metrics = simclr.train(images, p, device, on_epoch=on_epoch)
                feats = extract(model, images, device, p.embed.extract_batch_size)
            else:
                res = embed(images, labels, p, device)
                feats, metrics = res.features, res.metrics
            seconds = time.perf_counter() - t0
            pur = purity(feats, labels)
            row = {"dataset": ds, "encoder": enc, "n": len(images), "dim": feats.shape[1], **pur,
                   "seconds": round(seconds, 1), "epochs": metrics.get("epochs", 0),
                   "seconds_per_epoch": round(metrics.get("seconds_per_epoch", 0.0), 2)}
            rows.append(row)
            print(" | ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            out[f"{ds}_{enc}_purity_at_10"] = pur["purity_at_10"]
            out[f"{ds}_{enc}_purity_at_50"] = pur["purity_at_50"]
            if enc != "pixels":
                out[f"{ds}_{enc}_train_seconds"] = round(metrics.get("train_seconds", seconds), 1)

    print()
    print(f"{'dataset':8} {'encoder':11} {'n':>6} {'dim':>5} {'p@10':>7} {'p@50':>7} {'seconds':>8} {'s/epoch':>8}")
    for r in rows:
        print(f"{r['dataset']:8} {r['encoder']:11} {r['n']:>6} {r['dim']:>5} {r['purity_at_10']:>7.4f} "
              f"{r['purity_at_50']:>7.4f} {r['seconds']:>8.1f} {r['seconds_per_epoch']:>8.2f}")
    for ds in args.datasets:   # the ratio against the raw-pixel baseline, measured in this run
        base = out.get(f"{ds}_pixels_purity_at_10")
        best = out.get(f"{ds}_simclr_purity_at_10")
        if base and best:
            out.setdefault("baseline", {})[ds] = base
            out.setdefault("ratio", {})[ds] = round(best / base, 4)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
