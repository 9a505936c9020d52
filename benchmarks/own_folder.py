"""A user's own small folder through dataset → embeddings → neighbors at the defaults: k-NN label purity and
the neighbors' margin over random pairs, against the old encoder budget (embed.epochs alone, batch 256).

The folder is written as a user would have it: PNG files of the real MNIST test split (``../shared/data/mnist``)
in one subfolder per class, a seeded sample of ``--n`` images. Each seed runs the stages through the library
with params.yaml's values (tracking off), once as they are and once with ``embed.min_steps=0`` and
``embed.batch_size=256`` (the budget before: on 300 images, one update an epoch).

    python benchmarks/own_folder.py --n 300 --seeds 0 1 2

The last line is one JSON object (DESIGN.md §7): purity@10 per seed of both, and the ratio of their means.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganops.core.params import load
from ganops.stages import run_stage

MNIST_RAW = REPO.parent / "shared" / "data" / "mnist" / "MNIST" / "raw"
BASELINE = ["embed.min_steps=0", "embed.batch_size=256"]


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def write_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` MNIST test images as root/<label>/<index>.png."""
    from PIL import Image

    images = _idx(MNIST_RAW / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(MNIST_RAW / "t10k-labels-idx1-ubyte.gz", 8)
    for i in np.random.default_rng(seed).choice(len(images), n, replace=False):
        folder = root / str(labels[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i:05d}.png")
    return root


def neighborhoods(folder: Path, seed: int, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as project:
        p = load(REPO / "params.yaml", [f"seed={seed}", "data.dataset=image_folder", f"data.root={folder}",
                                         "tracking.enabled=false", "device=cpu", *extra])
        t0 = time.perf_counter()
        for stage in ("dataset", "embeddings", "neighbors"):
            result = run_stage(stage, p, project)
        m = result.metrics
        return {"purity_at_10": round(m["purity_at_10"], 4), "margin": round(m["similarity_margin"], 4),
                "similarity_mean": round(m["similarity_mean"], 4),
                "similarity_random_mean": round(m["similarity_random_mean"], 4),
                "seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="images in the folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "folder", args.n)
        rows = {"defaults": {}, "baseline": {}}
        for seed in args.seeds:
            for name, extra in (("defaults", []), ("baseline", BASELINE)):
                rows[name][seed] = neighborhoods(folder, seed, extra)
                print(f"seed {seed} {name:8s} {rows[name][seed]}", flush=True)
    mean = {name: float(np.mean([r["purity_at_10"] for r in rows[name].values()])) for name in rows}
    print(json.dumps({"benchmark": "own_folder", "n": args.n, "seeds": args.seeds,
                      "purity_at_10": [rows["defaults"][s]["purity_at_10"] for s in args.seeds],
                      "margin": [rows["defaults"][s]["margin"] for s in args.seeds],
                      "seconds": [rows["defaults"][s]["seconds"] for s in args.seeds],
                      "baseline": [rows["baseline"][s]["purity_at_10"] for s in args.seeds],
                      "baseline_margin": [rows["baseline"][s]["margin"] for s in args.seeds],
                      "ratio": round(mean["defaults"] / mean["baseline"], 3)}))


if __name__ == "__main__":
    main()
