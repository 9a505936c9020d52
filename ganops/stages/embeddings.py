"""Stage `embeddings`: L2-normalised features of every image from `embed.encoder` (trained here when
self-supervised or supervised; resumable from its checkpoint)."""

from __future__ import annotations

import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core import identity
from ganops.core.device import resolve
from ganops.core.locks import exclusive
from ganops.core.params import Params
from ganops.data import shards, store
from ganops.embed import embed
from ganops.stages import common as C
from ganops.tracking.runs import RunContext


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    src = A.dataset_dir(root, p)
    ups = C.upstream(root, p, "embeddings")
    out = A.embeddings_dir(root, p)
    device = resolve(p.device)
    with C.resumable(p, root, "embeddings", ctx, ups) as (ckpt, run):
        t0 = time.perf_counter()
        images, labels = store.load_images(src), store.load_labels(src)
        run.dataset(src, p.data.dataset, ups["dataset"], context="training")
        # features straight to the scratch folder, a batch at a time, each rank taking its pieces (one per
        # dataset shard); rank 0 moves them into the artifact as the features' shards
        result = embed(images, labels, p, device, checkpoint=ckpt, log=run.metric, pieces=ckpt.parent / "pieces")
        if not C.writes():
            return None
        feats = result.features
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        metrics.update(n_instances=int(feats.shape[0]), dim=int(feats.shape[1]))
        with A.atomic_dir(out) as tmp:
            shards.place(feats.files, tmp, "features")
            files: tuple[str, ...] = ()
            if result.state_dict is not None:
                A.atomic_torch_save(tmp / "encoder.pt", result.state_dict)
                files = ("encoder.pt",)
            if "history" in result.metrics:
                # per-epoch durations measure the run, not the encoder: MLflow has them
                history = [A.artifact_metrics(h) for h in result.metrics["history"]]
                A.atomic_write_json(tmp / "history.json", history)
            C.write_meta(tmp, p, "embeddings", ups, metrics, extra={"device": str(device)},
                         worlds=result.metrics.get("worlds"))
        run.metrics({"total_seconds": time.perf_counter() - t0})
        result_ = C.finish("embeddings", p, root, out, run, metrics, files)
    return result_


def write_pieces(p: Params, root: Path, indices: list[int]) -> dict:
    """The features of dataset shards ``indices`` into the stage's scratch folder, where `run` (any door) moves
    them into the artifact instead of extracting again: Dagster's `embeddings_shards` partitions, each in its own
    run. The encoder is fitted once: the first process trains it (into the stage's checkpoint) while the others
    wait, then resume the finished checkpoint without training."""
    from ganops.embed.api import fit_encoder
    from ganops.embed.base import extract_pieces

    src = A.dataset_dir(root, p)
    ups = C.upstream(root, p, "embeddings")
    scratch = C.scratch_dir(root, p, "embeddings", ups)
    A.check_writable(scratch)
    device = resolve(p.device)
    t0 = time.perf_counter()
    images, labels = store.load_images(src), store.load_labels(src)
    lock = A.lock_file(root, f"embeddings-{identity.run_key(p, 'embeddings', ups)}")
    with exclusive(lock, f"`{C.command('embeddings', p, root)}` with these parameters", wait=True):
        model, _ = fit_encoder(images, labels, p, device, checkpoint=scratch / "train.pt")
    t1 = time.perf_counter()
    extract_pieces(model, images, device, p.embed.extract_batch_size, scratch / "pieces", p.data.shard_rows,
                   only=indices)
    rows = sum(min(len(images), (i + 1) * p.data.shard_rows) - i * p.data.shard_rows for i in indices)
    return {"pieces": len(indices), "rows": rows, "fit_seconds": t1 - t0, "extract_seconds": time.perf_counter() - t1}
