"""Stage `dataset`: a source by name → images.npy, manifest.parquet, summary.json, grid.png (a dataset of more
than data.shard_rows images: the folders images/ and manifest/ of shards). The images are decoded a chunk at a
time into shards in the stage's scratch folder: a killed run resumes at the first shard it had not finished."""

from __future__ import annotations

import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core.params import Params
from ganops.data import writer
from ganops.data.sources import stream_source
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, stage_run


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    out = A.dataset_dir(root, p)
    scratch = C.scratch_dir(root, p, "dataset", {})
    with C.guarded(p, root, "dataset", {}, scratch), stage_run(p, root, "dataset", ctx) as run:
        t0 = time.perf_counter()
        stream = stream_source(p.data, root, seed=p.seed, workers=p.distributed.data_workers)
        t1 = time.perf_counter()
        with A.atomic_dir(out) as tmp:
            summary = writer.write_stream(tmp, stream, p.data, p.seed, scratch=scratch)
            metrics = summary["metrics"]
            C.write_meta(tmp, p, "dataset", {}, metrics)
        A.remove_tree(scratch)
        run.metrics({"list_seconds": t1 - t0, "total_seconds": time.perf_counter() - t0})
        result = C.finish("dataset", p, root, out, run, metrics, ("summary.json",))
        run.dataset(out, p.data.dataset, result.meta["content_hash"], context="dataset")
        return result
