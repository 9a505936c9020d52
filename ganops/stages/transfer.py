"""Stage `transfer`: the domain-transfer model of `transfer.family` (CycleGAN, DTN) from the two domains'
datasets (and, for DTN, f: the source domain's evaluator, a classifier of its labels), on the same
trainer as the generators: resumable from a checkpoint keyed by the run, logged to MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops import train as T
from ganops.catalog.families import TRANSFER_SPECS
from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
from ganops.evaluate import evaluator as E
from ganops.models import TrainData, load_model
from ganops.models.errors import TrainError
from ganops.models.weights import save_weights
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, log_generator

PREVIEW = 32   # held-out source images in samples.png


def source_classifier(p: Params, root: Path):
    """DTN's f: the source domain's evaluator network (its features; frozen by the family)."""
    path = A.evaluator_dir(root, p.domain("source")) / "evaluator.pt"
    ev = E.Evaluator.load(path)
    if ev.kind != "classifier":
        raise TrainError(f"transfer.family=dtn: f must be a classifier of the source's labels, but {path} is a "
                         f"{ev.kind} evaluator (the source has no labels, or transfer.source_evaluator.kind="
                         f"{p.transfer.source_evaluator.kind}); "
                         "set transfer.source_evaluator.kind=classifier on a labelled source, or use "
                         "transfer.family=cyclegan")
    return ev.net


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    ups = C.upstream(root, p, "transfer")
    src, tgt = A.dataset_dir(root, p.domain("source")), A.dataset_dir(root, p.domain("target"))
    f = source_classifier(p, root) if TRANSFER_SPECS[p.transfer.family].needs_source_classifier else None
    out = A.translator_dir(root, p)
    device = resolve(p.device)
    with C.resumable(p, root, "transfer", ctx, ups) as (ckpt, run):
        source, target = store.load_images(src), store.load_images(tgt)
        run.dataset(src, p.transfer.source.dataset, ups["dataset@source"], context="source")
        run.dataset(tgt, p.transfer.target.dataset, ups["dataset@target"], context="target")
        res = T.train(p, data=TrainData(source, target_images=target, source_classifier=f), section="transfer",
                      device=device, checkpoint_path=ckpt, **C.progress_callbacks(run, ckpt), identity_extra=ups)
        model = load_model(res.weights())
        metrics = {**{f"final_{k}": v for k, v in res.final_losses.items()}, "steps": res.steps}
        held, _ = store.load_holdout(src)
        preview = np.asarray(held[:PREVIEW] if len(held) else source[:PREVIEW])
        with A.atomic_dir(out) as tmp:
            save_weights(tmp / "model.pt", model.weights)
            A.atomic_write_json(tmp / "history.json", res.history)
            model.preview_grid(tmp / "samples.png", preview)
            C.write_meta(tmp, p, "transfer", ups, metrics, extra={"device": str(device)})
        run.metrics({"train_seconds": res.seconds, "resumed_from_step": res.resumed_from or 0})
        result = C.finish("transfer", p, root, out, run, metrics, {"preview_grid": "samples.png"}, ("history.json",))
        result.logged_model = log_generator(run, model.translator(), out / "model.pt",
                                            result.meta["content_hash"], name="translator")
    return result
