"""Stage `train`: the GAN of `train.family`, from the inputs that family reads (the dataset; for
IC-GAN also the embeddings and neighborhoods), resumable from a checkpoint keyed by the run."""

from __future__ import annotations

import logging
from pathlib import Path

from ganops import train as T
from ganops.catalog.families import SPECS
from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
from ganops.models import load_model
from ganops.models.weights import save_weights
from ganops.neighbors import search as nb
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, log_generator

log = logging.getLogger("ganops.stages")


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    ups = C.upstream(root, p, "train")
    src = A.dataset_dir(root, p)
    features = neighbors = None
    if SPECS[p.train.family].needs_neighbors:
        features = store.load_features(A.embeddings_dir(root, p))
        neighbors, _ = nb.load_neighbors(A.neighbors_dir(root, p))
    out = A.generator_dir(root, p)
    device = resolve(p.device)
    with C.resumable(p, root, "train", ctx, ups) as (ckpt, run):
        images, labels = store.load_images(src), store.load_labels(src)
        run.dataset(src, p.data.dataset, ups["dataset"], context="training")
        init, warm = _champion(p, root)
        res = T.train(p, images, labels, features, neighbors, device=device, checkpoint_path=ckpt,
                      **C.progress_callbacks(run, ckpt), identity_extra={**ups, **warm}, init=init)
        if not C.writes():
            return None
        model = load_model(res.weights())
        metrics = {**{f"final_{k}": v for k, v in res.final_losses.items()}, "steps": res.steps}
        with A.atomic_dir(out) as tmp:
            save_weights(tmp / "model.pt", model.weights)
            A.atomic_write_json(tmp / "history.json", res.history)
            model.preview_grid(tmp / "samples.png", p.train.grid_size, p.seed, images, features, labels)
            C.write_meta(tmp, p, "train", ups, metrics, extra={"device": str(device), **warm}, worlds=res.worlds)
        run.metrics({"train_seconds": res.seconds, "resumed_from_step": res.resumed_from or 0})
        result = C.finish("train", p, root, out, run, metrics, ("history.json",))
        result.logged_model = log_generator(run, model, out / "model.pt", result.meta["content_hash"])
    return result


def _champion(p: Params, root: Path) -> tuple[dict | None, dict[str, str]]:
    """train.warm_start: the registry champion's weights, and what names it (kept in meta.json)."""
    if not p.train.warm_start:
        return None, {}
    from ganops.tracking import registry
    from ganops.tracking.runs import GENERATOR_TAG

    if not p.tracking.enabled:
        raise registry.RegistryError("train.warm_start=true needs the MLflow registry: set tracking.enabled=true")
    try:
        weights, mv = registry.load_weights(p, root, registry.ALIAS)
    except registry.RegistryError:
        log.warning("train.warm_start: %s has no champion yet; training from scratch",
                    registry.registered_model_name(p))
        return None, {"warm_start_from": "none (no champion yet)"}
    source = f"{registry.registered_model_name(p)} v{mv.version} (generator {mv.tags.get(GENERATOR_TAG, '?')})"
    log.info("train.warm_start: starting from the champion, %s", source)
    return weights, {"warm_start_from": source}
