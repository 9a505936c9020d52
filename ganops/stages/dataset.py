"""Stage `dataset`: a source by name → images.npy, manifest.parquet, summary.json, grid.png."""

from __future__ import annotations

import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core.params import Params
from ganops.data import store
from ganops.data.sources import load_source
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, stage_run


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    out = A.dataset_dir(root, p)
    with C.guarded(p, root, "dataset", {}), stage_run(p, root, "dataset", ctx) as run:
        t0 = time.perf_counter()
        raw = load_source(p.data, root, seed=p.seed)
        t1 = time.perf_counter()
        ds = store.prepare(raw, p.data, p.seed)
        with A.atomic_dir(out) as tmp:
            summary = store.write_dataset(tmp, ds, p.data, p.seed)
            metrics = summary["metrics"]
            C.write_meta(tmp, p, "dataset", {}, metrics)
        run.metrics({"load_seconds": t1 - t0, "total_seconds": time.perf_counter() - t0})
        result = C.finish("dataset", p, root, out, run, metrics, ("summary.json",))
        run.dataset(out, p.data.dataset, result.meta["content_hash"], context="dataset")
        return result
