"""Stage `transfer`: the domain-transfer model of `transfer.family` (CycleGAN, DTN) from the two domains'
datasets (and, for DTN, f: the source domain's classifier, stage `classifier`), on the same
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
from ganops.models import TrainData, load_model
from ganops.models.weights import save_weights
from ganops.stages import classifier
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, log_generator

PREVIEW = 32   # held-out source images in samples.png


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    ups = C.upstream(root, p, "transfer")
    src, tgt = A.dataset_dir(root, p.domain("source")), A.dataset_dir(root, p.domain("target"))
    f = classifier.load(p, root) if TRANSFER_SPECS[p.transfer.family].needs_source_classifier else None
    out = A.translator_dir(root, p)
    device = resolve(p.device)
    with C.resumable(p, root, "transfer", ctx, ups) as (ckpt, run):
        source, target = store.load_images(src), store.load_images(tgt)
        run.dataset(src, p.transfer.source.dataset, ups["dataset@source"], context="source")
        run.dataset(tgt, p.transfer.target.dataset, ups["dataset@target"], context="target")
        res = T.train(p, data=TrainData(source, target_images=target, source_classifier=f), section="transfer",
                      device=device, checkpoint_path=ckpt, **C.progress_callbacks(run, ckpt), identity_extra=ups)
        if not C.writes():
            return None
        model = load_model(res.weights())
        metrics = {**{f"final_{k}": v for k, v in res.final_losses.items()}, "steps": res.steps}
        held, _ = store.load_holdout(src)
        preview = np.asarray(held[:PREVIEW] if len(held) else source[:PREVIEW])
        with A.atomic_dir(out) as tmp:
            save_weights(tmp / "model.pt", model.weights)
            A.atomic_write_json(tmp / "history.json", res.history)
            model.preview_grid(tmp / "samples.png", preview)
            C.write_meta(tmp, p, "transfer", ups, metrics, extra={"device": str(device)}, worlds=res.worlds)
        run.metrics({"train_seconds": res.seconds, "resumed_from_step": res.resumed_from or 0})
        result = C.finish("transfer", p, root, out, run, metrics, ("history.json",))
        result.logged_model = log_generator(run, model, out / "model.pt", result.meta["content_hash"],
                                            name="translator")
    return result
