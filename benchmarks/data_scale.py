"""Data preparation at two sizes: the dataset, embeddings and neighborhoods stages over a folder of N PNG files,
time and peak memory of each, so that their growth with N shows (time ∝ N, memory flat).

    python benchmarks/data_scale.py                        # 20,000 and 200,000 files
    python benchmarks/data_scale.py --sizes 2000 20000     # quicker

The folders hold real digits: file i is the MNIST test image i mod 10,000 (../shared/data/mnist), rolled by
i // 10,000 pixels so that no two files are alike, saved as a 28×28 PNG in its class's subfolder. Each stage
runs as `ganops stage …` in its own process, as a user runs it (data.resolution 32, data.shard_rows 10,000,
distributed.data_workers 2): the dataset stage; the embeddings with the pixels encoder and with the default
encoder (SimCLR, one epoch, trained and extracted; then its extraction alone, as the stage runs it); the neighborhoods
(ivfpq over SimCLR's features; exact search grows as N²). Memory per process: the peak resident set
(VmHWM, which counts the pages of memory-mapped files the process touched, page cache the kernel can take
back) and the peak of its anonymous memory (RssAnon, sampled every 20 ms: what it allocated). The baseline is
the smaller size, measured in the same run: the ratios say how time and memory grow. Below 700 images the
neighborhoods use exact search (ivfpq needs 624 to train). The folders are removed at the end unless
--workdir names where to keep them. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
REPO = Path(__file__).resolve().parents[1]
COMMON = ["data.dataset=image_folder", "data.resolution=32", "tracking.enabled=false",
          "device=cpu", "distributed.data_workers=2"]
SIMCLR = ["embed.epochs=1", "embed.min_steps=0"]
STAGES = {"dataset": ("dataset", []),
          "embeddings (pixels)": ("embeddings", ["embed.encoder=pixels"]),
          "embeddings (simclr, 1 epoch)": ("embeddings", SIMCLR),
          "extraction (simclr)": ("extract", SIMCLR),
          "neighbors (ivfpq)": ("neighbors", [*SIMCLR, "neighbors.index=ivfpq"])}
IVFPQ_MIN = 39 * 16          # ivfpq (4-bit codes) trains on at least this many instances; exact below
# The default encoder's extraction alone (the stage times training and extraction together): the trained
# encoder.pt over the dataset's shards, features appended to a file a batch at a time, as the stage does.
EXTRACT = """
import sys, tempfile, torch
from pathlib import Path
from ganops.core import artifacts as A, params as P
from ganops.data import store
from ganops.embed.api import load_encoder
from ganops.embed.base import extract
p = P.load(sys.argv[1], sys.argv[2:])
model = load_encoder(A.embeddings_dir(Path('.'), p) / 'encoder.pt')
with tempfile.TemporaryDirectory(dir='.') as d:
    extract(model, store.load_images(A.dataset_dir(Path('.'), p)), torch.device('cpu'), p.embed.extract_batch_size,
            out=Path(d) / 'features.npy')
"""


def make_folder(root: Path, n: int) -> None:
    from PIL import Image

    from ganops.data.torchvision_sources import read_idx

    images = read_idx(SHARED / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(SHARED / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz")
    for c in range(10):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        j = i % len(images)
        img = np.roll(images[j], i // len(images), axis=1)
        Image.fromarray(img, "L").save(root / str(int(labels[j])) / f"{i:07d}.png", compress_level=1)


def _status(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))   # kB
    except (OSError, StopIteration):
        return 0


def run(project: Path, folder: Path, stage: str, sets: list[str]) -> dict:
    sets = [*COMMON, f"data.root={folder}", *sets]
    if stage == "extract":
        cmd = [sys.executable, "-c", EXTRACT, str(REPO / "params.yaml"), *sets]
    else:
        cmd = [sys.executable, "-m", "ganops", "stage", stage, "-q", "--params", str(REPO / "params.yaml"),
               *(a for s in sets for a in ("--set", s))]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=project, stderr=subprocess.PIPE, text=True)
    peak_anon = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_anon
        while not stop.wait(0.02):
            peak_anon = max(peak_anon, _status(proc.pid, "RssAnon"))

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    stop.set()
    watcher.join()
    seconds = time.perf_counter() - t0
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "peak_anon_mib": round(peak_anon / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--workdir", default=None, help="where the folders and projects go (default: a temporary one)")
    # Whole shards at both sizes: the writer's and readers' buffers are bounded by a shard, so below one full
    # shard the baseline is smaller for the shard size, not for N (at 50,000 the 20k folder fills 0.4 of one).
    ap.add_argument("--shard-rows", type=int, default=10_000, help="data.shard_rows (default 10,000)")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES), metavar="STAGE",
                    help=f"a subset of: {', '.join(STAGES)} (each needs the ones before it that it reads)")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ganops-scale-"))
    rows = []
    for n in args.sizes:
        folder, project = work / f"images{n}", work / f"project{n}"
        project.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if not folder.is_dir():
            make_folder(folder, n)
        print(f"N = {n}: folder written in {time.perf_counter() - t0:.0f} s", flush=True)
        for name in args.stages:
            stage, sets = STAGES[name]
            sets = [f"data.shard_rows={args.shard_rows}", *sets]
            if "neighbors.index=ivfpq" in sets and 0.9 * n < IVFPQ_MIN:     # too few to train its codebooks
                sets = [s.replace("ivfpq", "exact") for s in sets]
            r = {"n": n, "stage": name, **run(project, folder, stage, sets)}
            rows.append(r)
            print(json.dumps(r), flush=True)
        shutil.rmtree(project / "data", ignore_errors=True)
    print("| stage | N | seconds | s per 1,000 images | peak RSS MiB | peak anonymous MiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['n']:,} | {r['seconds']} | {1000 * r['seconds'] / r['n']:.2f} | "
              f"{r['peak_rss_mib']} | {r['peak_anon_mib']} |")
    growth = {}
    if len(args.sizes) >= 2:
        small, large = min(args.sizes), max(args.sizes)
        for name in args.stages:
            a = next(r for r in rows if r["n"] == small and r["stage"] == name)
            b = next(r for r in rows if r["n"] == large and r["stage"] == name)
            growth[name] = {"time_ratio": round(b["seconds"] / a["seconds"], 2),
                            "peak_rss_ratio": round(b["peak_rss_mib"] / a["peak_rss_mib"], 2),
                            "peak_anon_ratio": round(b["peak_anon_mib"] / max(a["peak_anon_mib"], 1e-9), 2)}
            print(f"{name}: {large / small:g}× the images: time ×{growth[name]['time_ratio']}, peak RSS "
                  f"×{growth[name]['peak_rss_ratio']}, peak anonymous ×{growth[name]['peak_anon_ratio']}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"benchmark": "data_scale", "sizes": args.sizes, "shard_rows": args.shard_rows, "rows": rows,
                      "growth": growth}))


if __name__ == "__main__":
    main()
