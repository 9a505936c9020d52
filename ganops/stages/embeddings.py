"""Stage `embeddings`: L2-normalised features of every image from `embed.encoder` (trained here when
self-supervised or supervised; resumable from its checkpoint)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
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
        # features straight to the scratch folder, a batch at a time, then moved into the artifact
        result = embed(images, labels, p, device, checkpoint=ckpt, log=run.metric,
                       features_path=ckpt.parent / "features.npy" if C.writes() else None)
        if not C.writes():
            return None
        feats = result.features
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        metrics.update(n_instances=int(feats.shape[0]), dim=int(feats.shape[1]))
        with A.atomic_dir(out) as tmp:
            os.replace(ckpt.parent / "features.npy", tmp / "features.npy")
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
