"""Stage `classifier` (on the source domain): DTN's f, a classifier of the source's labels trained with
`transfer.source_classifier`'s keys, which the translator keeps frozen. It is not an evaluator: it takes
part in training (L_CONST compares f(x) with f(G(x))), so it is an artifact of its own, as IC-GAN's
encoder is not the generators' evaluator. Resumable from its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
from ganops.evaluate import evaluator as E
from ganops.models.errors import TrainError
from ganops.stages import common as C
from ganops.tracking.runs import RunContext

FILE = "classifier.pt"


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    src = A.dataset_dir(root, p)
    ups = C.upstream(root, p, "classifier")
    out = A.classifier_dir(root, p)
    device = resolve(p.device)
    images, labels = store.load_images(src), store.load_labels(src)
    classes = np.unique(labels[labels >= 0])
    if classes.size < 2:
        raise TrainError(f"transfer.family=dtn: f is a classifier of the source's labels, but {src} has "
                         f"{'no labels' if classes.size == 0 else 'one class'} (transfer.source.dataset="
                         f"{p.data.dataset}); use a labelled source, or transfer.family=cyclegan")
    with C.resumable(p, root, "classifier", ctx, ups) as (ckpt, run):
        t0 = time.perf_counter()
        held, held_labels = store.load_holdout(src)
        run.dataset(src, p.data.dataset, ups["dataset"], context="training")
        # the evaluators' trainer, with f's keys (one network, one training for both kinds)
        q = p.model_copy(update={"evaluator": p.transfer.source_classifier.as_evaluator()})
        state, train_metrics = E.train(images, labels, q, device, checkpoint=ckpt, log=run.metric)
        if not C.writes():
            return None
        metrics = {"dim": int(state["config"]["dim"]), "n_train": len(images), "n_holdout": len(held),
                   **{k: v for k, v in train_metrics.items() if k.startswith("final_")}}
        known = held_labels >= 0
        if known.any():
            predicted = E.Evaluator(state, device).predict(held[known])
            metrics["holdout_accuracy"] = float((predicted == held_labels[known]).mean())
        with A.atomic_dir(out) as tmp:
            A.atomic_torch_save(tmp / FILE, state)
            C.write_meta(tmp, p, "classifier", ups, metrics, extra={"device": str(device)})
        run.metrics({"total_seconds": time.perf_counter() - t0})
        result = C.finish("classifier", p, root, out, run, metrics)
    return result


def load(p: Params, root: Path):
    """f's network, from the classifier artifact of ``p``'s source domain."""
    return E.Evaluator.load(A.classifier_dir(root, p.domain("source")) / FILE).net
