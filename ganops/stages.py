"""The stage entry points that every front door calls: `ganops stage`, `dvc repro` and Dagster.

Each stage reads its upstream artifact, checks that it was made with the parameters in force,
does its work, writes one directory atomically with a meta.json, writes its DVC metrics file and
logs everything to MLflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganops import artifacts as A
from ganops.params import Params
from ganops.tracking import Run, stage_run

log = logging.getLogger(__name__)

STAGES = ("dataset", "embeddings", "neighbors", "train")


@dataclass
class StageResult:
    stage: str
    path: Path
    metrics: dict[str, Any]
    meta: dict[str, Any]
    images: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    url: str | None = None


# Which parameter sections define each stage's artifact: a downstream stage refuses an upstream
# artifact made with other values, instead of silently building on a stale one.
_IDENTITY = {
    "dataset": ("data",),
    "embeddings": ("data", "embed"),
    "neighbors": ("data", "embed", "neighbors"),
    "train": ("data", "embed", "neighbors", "train"),
}


def _identity(p: Params, stage: str) -> dict[str, Any]:
    return {"seed": p.seed, **p.section(*_IDENTITY[stage])}


def _upstream(directory: Path, p: Params, stage: str) -> dict[str, Any]:
    meta = A.read_meta(directory, produced_by=stage)
    want, have = _identity(p, stage), meta.get("params", {})
    diffs = [f"{k}={have_v!r} (now {want_v!r})"
             for k, want_v, have_v in _diff(want, have)]
    if diffs:
        raise A.ArtifactError(
            f"{directory} was made with other parameters: {', '.join(diffs[:6])}. "
            f"Run `ganops stage {stage}` (or `ganops run`) to rebuild it.")
    return meta


def _built_from(meta: dict[str, Any], directory: Path, key: str, expected: str, rerun: str) -> None:
    """``directory`` must have been computed from the ``key`` artifact now in place (its recorded hash)."""
    if meta.get("upstream", {}).get(key) != expected:
        raise A.ArtifactError(f"{directory} was computed from another version of the {key} artifact. "
                              f"Run `ganops stage {rerun}` again.")


def _diff(want: dict[str, Any], have: dict[str, Any], prefix: str = ""):
    for key, value in want.items():
        other = have.get(key) if isinstance(have, dict) else None
        if isinstance(value, dict):
            yield from _diff(value, other or {}, f"{prefix}{key}.")
        elif value != other:
            yield f"{prefix}{key}", value, other


def _finish(stage: str, p: Params, root: Path, out: Path, run: Run, metrics: dict[str, Any],
            images: dict[str, str], extra_files: tuple[str, ...] = ()) -> StageResult:
    """After the atomic rename: DVC metrics file, MLflow metrics and artifacts."""
    meta = A.read_meta(out)
    A.atomic_write_json(A.metrics_file(root, stage), metrics)
    run.metrics(metrics)
    for name in (*images.values(), *extra_files, A.META):
        run.artifact(out / name)
    log.info("%s: wrote %s (%s)", stage, out, ", ".join(f"{k}={v}" for k, v in list(metrics.items())[:6]))
    return StageResult(stage, out, metrics, meta, {k: out / v for k, v in images.items()}, run.run_id, run.url)


def dataset(p: Params, root: Path) -> StageResult:
    from ganops.data import store
    from ganops.data.sources import load_source

    out = A.dataset_dir(root, p)
    with stage_run(p, root, "dataset") as run:
        t0 = time.perf_counter()
        raw = load_source(p.data, Path(root))
        t1 = time.perf_counter()
        ds = store.prepare(raw, p.data, p.seed)
        with A.atomic_dir(out) as tmp:
            summary = store.write_dataset(tmp, ds, p.data)
            metrics = summary["metrics"]
            A.write_meta(tmp, stage="dataset", params=_identity(p, "dataset"), seed=p.seed, upstream={},
                         metrics=metrics, timings={"load": t1 - t0, "total": time.perf_counter() - t0})
        return _finish("dataset", p, root, out, run, metrics, {"sample_grid": "grid.png"}, ("summary.json",))


def embeddings(p: Params, root: Path, log_fn: Callable[[str, float, int], None] | None = None) -> StageResult:
    from ganops.data import store
    from ganops.device import resolve
    from ganops.embed import embed

    src = A.dataset_dir(root, p)
    up = _upstream(src, p, "dataset")
    out = A.embeddings_dir(root, p)
    device = resolve(p.device)
    ckpt = A.checkpoint_dir(root, "embeddings", p.data.dataset, p.embed.encoder) / "train.pt"
    with stage_run(p, root, "embeddings") as run:
        def on_metric(name: str, value: float, step: int) -> None:
            run.metric(name, value, step)
            if log_fn:
                log_fn(name, value, step)

        t0 = time.perf_counter()
        images, labels = store.load_images(src), store.load_labels(src)
        result = embed(images, labels, p, device, checkpoint=ckpt, log=on_metric)
        feats = result.features
        metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
        metrics.update(n_instances=int(feats.shape[0]), dim=int(feats.shape[1]))
        with A.atomic_dir(out) as tmp:
            A.atomic_save_npy(tmp / "features.npy", feats.astype(np.float32, copy=False))
            files: tuple[str, ...] = ()
            if result.state_dict is not None:
                A.atomic_torch_save(tmp / "encoder.pt", result.state_dict)
                files = ("encoder.pt",)
            if "history" in result.metrics:
                A.atomic_write_json(tmp / "history.json", result.metrics["history"])
            A.write_meta(tmp, stage="embeddings", params=_identity(p, "embeddings"), seed=p.seed,
                         upstream={"dataset": up["content_hash"]}, metrics=metrics,
                         timings={"total": time.perf_counter() - t0}, extra={"device": str(device)})
        return _finish("embeddings", p, root, out, run, metrics, {}, files)


def neighbors(p: Params, root: Path) -> StageResult:
    from ganops import neighbors as nb
    from ganops.data import store

    src_data, src_emb = A.dataset_dir(root, p), A.embeddings_dir(root, p)
    up_data = _upstream(src_data, p, "dataset")
    up_emb = _upstream(src_emb, p, "embeddings")
    _built_from(up_emb, src_emb, "dataset", up_data["content_hash"], "embeddings")
    out = A.neighbors_dir(root, p)
    with stage_run(p, root, "neighbors") as run:
        t0 = time.perf_counter()
        A.require_files(src_emb, ["features.npy"], "embeddings")
        features = np.load(src_emb / "features.npy", mmap_mode="r")
        nb.check_features(features, str(src_emb / "features.npy"))
        labels = store.load_labels(src_data)
        if len(labels) != features.shape[0]:
            raise A.ArtifactError(
                f"{src_emb / 'features.npy'} has {features.shape[0]} rows but {src_data} has {len(labels)} images."
                " Run `ganops stage embeddings` again.")
        res = nb.knn(features, p.neighbors.k, p.neighbors, seed=p.seed)
        diag = nb.diagnostics(res.indices, res.similarities, labels)
        metrics = {**diag, **{k: v for k, v in res.info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}}
        with A.atomic_dir(out) as tmp:
            A.atomic_save_npy(tmp / "indices.npy", res.indices)
            A.atomic_save_npy(tmp / "similarities.npy", res.similarities)
            # Timings and thread counts vary run to run: they go to meta.json, not into the hashed files.
            search = {k: v for k, v in res.info.items() if not k.endswith("_s") and k != "threads"}
            A.atomic_write_json(tmp / "diagnostics.json", {**diag, "search": search})
            nb.save_panel(store.load_images(src_data), res.indices, tmp / "panel.png",
                          rows=p.neighbors.panel_instances, seed=p.seed)
            A.write_meta(tmp, stage="neighbors", params=_identity(p, "neighbors"), seed=p.seed,
                         upstream={"dataset": up_data["content_hash"], "embeddings": up_emb["content_hash"]},
                         metrics=metrics, timings={"total": time.perf_counter() - t0},
                         extra={"search": res.info})
        return _finish("neighbors", p, root, out, run, metrics, {"neighbor_panel": "panel.png"},
                       ("diagnostics.json",))


def train(p: Params, root: Path) -> StageResult:
    from ganops import neighbors as nb
    from ganops import train as T
    from ganops.data import store
    from ganops.device import resolve
    from ganops.samples import preview_grid
    from ganops.tracking import log_generator
    from ganops.visual import save_grid

    family = T.get_family(p.train.family)
    src = A.dataset_dir(root, p)
    upstream = {"dataset": _upstream(src, p, "dataset")["content_hash"]}
    features = neighbors_ = None
    if family.uses_neighbors(p.train):
        emb_dir, nb_dir = A.embeddings_dir(root, p), A.neighbors_dir(root, p)
        if not (nb_dir / A.META).exists():
            raise A.ArtifactError(f"train.family={p.train.family} needs the neighborhoods {nb_dir}, which do not exist: "
                                  "run `ganops stage neighbors` (or `ganops run`) first.")
        upstream["embeddings"] = _upstream(emb_dir, p, "embeddings")["content_hash"]
        up_nb = _upstream(nb_dir, p, "neighbors")
        _built_from(up_nb, nb_dir, "embeddings", upstream["embeddings"], "neighbors")
        upstream["neighbors"] = up_nb["content_hash"]
        features = np.load(emb_dir / "features.npy", mmap_mode="r")
        neighbors_, _ = nb.load_neighbors(nb_dir)
    out = A.generator_dir(root, p)
    ckpt = A.checkpoint_dir(root, "train", p.data.dataset, p.train.family) / "train.pt"
    device = resolve(p.device)
    with stage_run(p, root, "train") as run:
        def on_log(step: int, values: dict[str, float]) -> None:
            run.metrics(values, step=step)

        def on_sample(step: int, images: np.ndarray, nrow: int) -> None:
            run.artifact(save_grid(images, ckpt.parent / "samples" / f"step{step:06d}.png", nrow=nrow), "samples")

        t0 = time.perf_counter()
        images, labels = store.load_images(src), store.load_labels(src)
        res = T.train(p, images, labels, features, neighbors_, device=device, checkpoint_path=ckpt,
                      log=on_log, sample_cb=on_sample, identity_extra=upstream)
        weights = res.weights()
        metrics = {**{f"final_{k}": v for k, v in res.final_losses.items()}, "steps": res.steps,
                   "train_seconds": res.seconds, "resumed_from_step": res.resumed_from or 0}
        with A.atomic_dir(out) as tmp:
            T.save_weights(tmp / "model.pt", weights)
            A.atomic_write_json(tmp / "history.json", res.history)
            preview_grid(weights, images, features, labels, p, tmp / "samples.png")
            A.write_meta(tmp, stage="train", params=_identity(p, "train"), seed=p.seed, upstream=upstream,
                         metrics=metrics, timings={"total": time.perf_counter() - t0},
                         extra={"device": str(device), "resumed_from_step": res.resumed_from})
        result = _finish("train", p, root, out, run, metrics, {"sample_grid": "samples.png"}, ("history.json",))
        log_generator(run, T.build_generator(weights), p)
    ckpt.unlink(missing_ok=True)  # the artifact is complete; a checkpoint is for resuming a killed run only
    return result


RUNNERS: dict[str, Callable[..., StageResult]] = {
    "dataset": dataset, "embeddings": embeddings, "neighbors": neighbors, "train": train}


def run_stage(name: str, p: Params, root: Path | str = ".") -> StageResult:
    if name not in RUNNERS:
        raise ValueError(f"unknown stage {name!r}; stages are: {', '.join(STAGES)}")
    return RUNNERS[name](p, Path(root))


def run_all(p: Params, root: Path | str = ".", until: str | None = None) -> list[StageResult]:
    """The chain in order, up to and including ``until``."""
    names = STAGES[: STAGES.index(until) + 1] if until else STAGES
    return [run_stage(n, p, root) for n in names]
