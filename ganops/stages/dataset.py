"""Stage `dataset`: a source by name → images.npy, manifest.parquet, summary.json, grid.png (a dataset of more
than data.shard_rows images: the folders images/ and manifest/ of shards). The images are decoded a chunk at a
time into shards in the stage's scratch folder: a killed run resumes at the first shard it had not finished."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core.params import Params
from ganops.data import writer
from ganops.data.sources import source_labels, stream_source
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, stage_run


def _scratch(root: Path, p: Params) -> Path:
    """Where the shards are written before they move into the artifact: named by what decides them (not by
    data.skip_corrupt, data.grid_size or data.download), so that a run stopped by unreadable files is taken up
    by the run that skips them. The stream's files and the shard size are checked again inside
    (``writer``): a changed folder starts over."""
    decides = p.data.model_dump(exclude={"skip_corrupt", "grid_size", "download"})
    key = hashlib.sha256(json.dumps({"seed": p.seed, "data": decides}, sort_keys=True).encode()).hexdigest()[:16]
    return A.checkpoint_dir(root, "dataset", f"{p.data.dataset}-shards-{key}")


def shard_total(p: Params, root: Path) -> int:
    """How many shards ``data.dataset`` makes at ``data.shard_rows`` (an image folder: its listing alone)."""
    return writer.shard_total(source_labels(p.data, root, seed=p.seed), p.data, p.seed)


def write_shards(p: Params, root: Path, indices: list[int]) -> dict:
    """Shards ``indices`` into the stage's scratch folder, where `run` (any door) takes them up instead of decoding
    them again: Dagster's `dataset_shards` partitions, each written by its own run, on any machine that shares
    the project folder. Several processes may write shards of one dataset at once (a lock per shard)."""
    scratch = _scratch(root, p)
    A.check_writable(scratch.parent)
    t0 = time.perf_counter()
    stream = stream_source(p.data, root, seed=p.seed, workers=p.distributed.data_workers)
    t1 = time.perf_counter()
    done = writer.write_shards(scratch, stream, p.data, p.seed, indices)
    return {**done, "list_seconds": t1 - t0, "write_seconds": time.perf_counter() - t1}


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    out = A.dataset_dir(root, p)
    scratch = _scratch(root, p)
    with C.guarded(p, root, "dataset", {}, scratch), stage_run(p, root, "dataset", ctx) as run:
        t0 = time.perf_counter()
        try:
            stream = stream_source(p.data, root, seed=p.seed, workers=p.distributed.data_workers)
            t1 = time.perf_counter()
            with A.atomic_dir(out) as tmp:
                summary = writer.write_stream(tmp, stream, p.data, p.seed, scratch=scratch)
                metrics = summary["metrics"]
                C.write_meta(tmp, p, "dataset", {}, metrics)
        except BaseException:
            if not any((scratch / "records").rglob("*.json")):    # nothing a rerun could take up
                A.remove_tree(scratch)
            raise
        A.remove_tree(scratch)
        run.metrics({"list_seconds": t1 - t0, "total_seconds": time.perf_counter() - t0})
        result = C.finish("dataset", p, root, out, run, metrics, ("summary.json",))
        run.dataset(out, p.data.dataset, result.meta["content_hash"], context="dataset")
        return result
