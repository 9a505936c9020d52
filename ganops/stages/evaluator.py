"""Stage `evaluator`: the network that scores every generator of a dataset, trained on the real
training images, with the real images' features computed once and kept (features.npy for the
training images, holdout_features.npy for the held-out ones). Resumable from its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
from ganops.evaluate import evaluator as E
from ganops.stages import common as C
from ganops.tracking.runs import RunContext


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    src = A.dataset_dir(root, p)
    ups = C.upstream(root, p, "evaluator")
    out = A.evaluator_dir(root, p)
    device = resolve(p.device)
    with C.resumable(p, root, "evaluator", ctx, ups) as (ckpt, run):
        t0 = time.perf_counter()
        images, labels = store.load_images(src), store.load_labels(src)
        held, held_labels = store.load_holdout(src)
        run.dataset(src, p.data.dataset, ups["dataset"], context="training")
        state, train_metrics = E.train(images, labels, p, device, checkpoint=ckpt, log=run.metric)
        if not C.writes():
            return None
        ev = E.Evaluator(state, device)
        features = ev.features(images)
        held_features, predicted = ev.features_and_labels(held)
        metrics = {"kind_classifier": int(ev.kind == "classifier"), "dim": ev.dim, "n_train": len(images),
                   "n_holdout": len(held), **{k: v for k, v in train_metrics.items() if k.startswith("final_")}}
        if predicted is not None and len(held):
            known = held_labels >= 0
            # the judge's own accuracy on images no network has seen: how far its verdicts on samples can be trusted
            metrics["holdout_accuracy"] = float((predicted[known] == held_labels[known]).mean())
        with A.atomic_dir(out) as tmp:
            A.atomic_torch_save(tmp / "evaluator.pt", state)
            A.atomic_save_npy(tmp / "features.npy", features.astype(np.float32, copy=False))
            A.atomic_save_npy(tmp / "holdout_features.npy", held_features.astype(np.float32, copy=False))
            C.write_meta(tmp, p, "evaluator", ups, metrics, extra={"kind": ev.kind, "device": str(device)})
        run.metrics({"total_seconds": time.perf_counter() - t0})
        result = C.finish("evaluator", p, root, out, run, metrics)
    return result
