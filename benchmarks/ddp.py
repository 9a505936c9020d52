"""Training steps per second on one process and on 2 gloo ranks (torchrun) at the same global batch, and the
share of a step the ranks spend talking (averaging gradients and losses), for DCGAN and IC-GAN on the
bundled digits at 32 px through the library's trainer.

    python benchmarks/ddp.py [--steps 120] [--batch 64]

On this 2-core machine both runs use both cores: the single process with two threads, each rank with one.
On a GPU machine pass ``--device cuda --nproc <GPUs>`` (NCCL). The last line is one JSON object
(DESIGN.md §7): steps/s of each, their ratio (ranks over one process) and the communication share.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _data(family: str):
    from sklearn.datasets import load_digits

    from ganops.data.resize import resize_square
    from ganops.models import TrainData

    digits = load_digits()
    images = (digits.images[:, None] * (255 / 16)).astype(np.uint8)
    images = resize_square(images, 32)
    if family != "icgan":
        return TrainData(images, labels=digits.target.astype(np.int64))
    flat = images.reshape(len(images), -1).astype(np.float32)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    sim = flat @ flat.T
    np.fill_diagonal(sim, -np.inf)
    return TrainData(images, features=flat, neighbors=np.argsort(-sim, axis=1)[:, :5].astype(np.int64))


def worker(family: str, out: str, steps: int, batch: int, device: str) -> None:
    import torch

    from ganops.core import distributed
    from ganops.core.params import load
    from ganops.train.trainer import Trainer

    p = load(None, [f"train.family={family}", f"train.steps={steps}", f"train.batch_size={batch}", f"device={device}",
                    f"train.log_every={steps}", f"train.sample_every={steps}"])
    world = distributed.init("auto", torch.device(device), timeout_s=120)
    data = _data(family)
    warm = Trainer(p, data)
    for _ in range(5):                      # warm up allocators and kernels outside the timed run
        warm.train_step()
    world.comm_seconds = 0.0
    res = Trainer(p, data).run(progress=False)
    if world.main:
        Path(out).write_text(json.dumps({"steps_per_s": steps / res.seconds,
                                         "comm_share": world.comm_seconds / res.seconds, "world": world.size}))
    distributed.shutdown()


def measure(family: str, nproc: int | None, steps: int, batch: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        args = [str(Path(__file__).resolve()), "--worker", family, str(out), "--steps", str(steps),
                "--batch", str(batch), "--device", device]
        if nproc is None:
            cmd = [sys.executable, *args]
            env = dict(os.environ)
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *args]
            env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", nargs=2, metavar=("FAMILY", "OUT"))
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.steps, args.batch, args.device)
        return
    result = {"device": args.device, "global_batch": args.batch, "steps": args.steps, "ranks": args.nproc}
    for family in ("dcgan", "icgan"):
        one = measure(family, None, args.steps, args.batch, args.device)
        many = measure(family, args.nproc, args.steps, args.batch, args.device)
        result[family] = {"one_process_steps_per_s": round(one["steps_per_s"], 2),
                          "ranks_steps_per_s": round(many["steps_per_s"], 2),
                          "ratio": round(many["steps_per_s"] / one["steps_per_s"], 3),
                          "comm_share": round(many["comm_share"], 3)}
        print(f"{family}: 1 process {one['steps_per_s']:.1f} steps/s, {args.nproc} ranks "
              f"{many['steps_per_s']:.1f} steps/s, communication {many['comm_share']:.0%} of a step", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
