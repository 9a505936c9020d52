"""What every stage does around its work: read and check its upstream artifacts, refuse to start
where it could not finish (read-only tree, a twin run holding the lock), write meta.json and the
DVC metrics file, and log to MLflow."""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganops.core import artifacts as A
from ganops.core import distributed, identity
from ganops.core.lineage import code_version
from ganops.core.locks import exclusive
from ganops.core.params import Params

log = logging.getLogger("ganops.stages")


@dataclass
class StageResult:
    stage: str
    path: Path
    metrics: dict[str, Any]
    meta: dict[str, Any]
    images: dict[str, Path] = field(default_factory=dict)
    run_id: str | None = None
    url: str | None = None
    logged_model: str | None = None         # train: the MLflow logged model of G
    registered_model: str | None = None     # evaluate: the registered model and the version it made
    model_version: str | None = None
    decision: dict[str, Any] | None = None  # evaluate: the champion/challenger decision


def _diff(want: dict[str, Any], have: dict[str, Any], prefix: str = ""):
    for key, value in want.items():
        other = have.get(key) if isinstance(have, dict) else None
        if isinstance(value, dict):
            yield from _diff(value, other or {}, f"{prefix}{key}.")
        elif value != other:
            yield f"{prefix}{key}", value, other


def command(stage: str, p: Params, root: Path | None = None) -> str:
    """The command line that rebuilds a stage's artifact for these parameters: the family for a model
    stage, the domain for a domain's stage, those of the user's ``--set`` items the stage reads (a hint
    that dropped ``--set transfer.target.root=…`` would build something else), and ``--root`` when the
    project is not the current folder."""
    if stage in ("train", identity.ON_INSTANCES, "transfer", "evaluate_transfer"):
        section = "transfer" if stage in identity.TRANSFER_STAGES else "train"
        line = f"ganops stage {stage} --set {section}.family={identity.family_of(p, stage)}"
    else:
        line = f"ganops stage {stage}" + (f" --domain {p.role}" if p.role else "")
    elsewhere = root is not None and Path(root).resolve() != Path.cwd().resolve()
    return " ".join([line, *(f"--set {shlex.quote(item)}" for item in _overrides_read(stage, p)),
                     *([f"--root {shlex.quote(str(root))}"] if elsewhere else [])])


def _whole_chain(stage: str, p: Params) -> str:
    """The command that runs the whole chain ``stage`` belongs to."""
    return "ganops run --transfer" if p.role or stage in identity.TRANSFER_STAGES else "ganops run"


def _overrides_read(stage: str, p: Params) -> list[str]:
    names = [p.user_key(k) for k in identity.keys(stage, identity.family_of(p, stage))]
    family = {"train.family", "transfer.family"}
    out = []
    for item in p.overrides:
        key = item.partition("=")[0].strip()
        if key not in family and any(key == n or key.startswith(n + ".") or n.startswith(key + ".") for n in names):
            out.append(item)
    return out


def metrics_name(stage: str, p: Params) -> str:
    """The DVC metrics file of a stage: one per family, one per transfer domain."""
    if stage in identity.FAMILY_STAGES:
        return f"{stage}_{identity.family_of(p, stage)}"
    return f"{stage}_{p.role}" if p.role else stage


def resolve_upstream(p: Params, name: str) -> tuple[str, Params]:
    """An upstream name (``evaluator@source``) → the stage and the parameters that built it."""
    stage, role = identity.split_name(name)
    return stage, (p.domain(role) if role else p)


def check_meta(directory: Path, meta: dict[str, Any], p: Params, stage: str, rerun: str | None = None,
               root: Path | None = None) -> None:
    """The artifact in ``directory`` must have been made with the parameters now in force."""
    want = identity.identity(p, stage)
    diffs = [f"{p.user_key(k)}={have!r} (now {now!r})" for k, now, have in _diff(want, meta.get("params", {}))]
    if diffs:
        raise A.ArtifactError(f"{directory} was made with other parameters: {', '.join(diffs)}. "
                              f"Run `{command(rerun or stage, p, root)}` (or `{_whole_chain(stage, p)}`) to "
                              "rebuild it.")


def upstream(root: Path, p: Params, stage: str) -> dict[str, str]:
    """Content hashes of the artifacts ``stage`` reads, after checking each was made with the current
    parameters and from the artifact now upstream of it."""
    hashes: dict[str, str] = {}
    needed = identity.upstream_stages(stage, identity.family_of(p, stage))
    for i, name in enumerate(needed):
        up, q = resolve_upstream(p, name)
        directory = A.stage_dir(root, q, up)
        if not (directory / A.META).exists():
            todo = " then ".join(f"`{command(*resolve_upstream(p, n), root)}`" for n in needed[i:])
            raise A.ArtifactError(f"{stage} needs the {name} artifact {directory}, which does not exist yet: "
                                  f"run {todo} (or `{_whole_chain(stage, p)}`), or materialize those assets.")
        meta = A.read_meta(directory, produced_by=up)
        check_meta(directory, meta, q, up, root=root)
        # the artifact's own upstream names are relative to its domain: evaluator@source read dataset@source
        made_from = {(f"{k}@{q.role}" if q.role else k): v for k, v in meta.get("upstream", {}).items()}
        for before, expected in hashes.items():
            if before in made_from and made_from[before] != expected:
                raise A.ArtifactError(f"{directory} was computed from another version of the {before} artifact. "
                                      f"Run `{command(up, q, root)}` again.")
        hashes[name] = meta["content_hash"]
    return hashes


@contextlib.contextmanager
def guarded(p: Params, root: Path, stage: str, ups: dict[str, str], scratch: Path | None = None) -> Iterator[str]:
    """Before any work: every folder the stage will write is writable, and no twin run (same identity,
    same inputs) is going on. Yields the run key, which also names the stage's checkpoint folder."""
    out = A.stage_dir(root, p, stage)
    key = identity.run_key(p, stage, ups)
    for folder in (out.parent, A.metrics_file(root, metrics_name(stage, p)).parent, A.lock_file(root, stage).parent,
                   *((scratch,) if scratch else ())):
        A.check_writable(folder)
    if scratch is not None:
        A.sweep(scratch)
    with exclusive(A.lock_file(root, f"{stage}-{key}"), f"`{command(stage, p, root)}` with these parameters"):
        yield key


@contextlib.contextmanager
def resumable(p: Params, root: Path, stage: str, ctx, ups: dict[str, str]) -> Iterator[tuple[Path, object]]:
    """``guarded`` plus the stage's MLflow run, for a stage that trains: yields (checkpoint path, run). A
    killed run's checkpoint is resumed and its MLflow run continued; after success the checkpoint goes.

    On several ranks, rank 0 alone locks, sweeps, logs and writes; the others train from the same checkpoint
    path with a run that logs nothing, and leave the stage after training (``writes``)."""
    from ganops.tracking.runs import Run, stage_run

    scratch = scratch_dir(root, p, stage, ups)
    ckpt = scratch / "train.pt"
    world = distributed.world()
    if not world.main:
        yield ckpt, Run(None)
        return
    with guarded(p, root, stage, ups, scratch), \
            stage_run(p, root, stage, ctx, resume=scratch if ckpt.exists() else None, scratch=scratch) as run:
        run.tags({"ganops.world_size": str(world.size), "ganops.backend": world.backend or "none"})
        yield ckpt, run
    A.remove_tree(scratch)  # the artifact is complete; the checkpoint only served a killed run


def writes() -> bool:
    """Whether this process writes the stage's artifact: always on one process, rank 0 on several."""
    return distributed.world().main


def progress_callbacks(run, ckpt: Path) -> dict[str, Any]:
    """The trainer's ``log`` and ``sample_cb`` for a training stage: losses and progress grids to its MLflow run
    (the grids written beside the checkpoint first)."""
    from ganops.core.visual import save_grid

    def on_log(step: int, values: dict[str, float]) -> None:
        run.metrics(values, step=step)

    def on_sample(step: int, images, nrow: int) -> None:
        run.artifact(save_grid(images, ckpt.parent / "samples" / f"step{step:06d}.png", nrow=nrow), "samples")

    return {"log": on_log, "sample_cb": on_sample}


def scratch_dir(root: Path, p: Params, stage: str, ups: dict[str, str]) -> Path:
    """Where a resumable stage keeps its checkpoint: keyed by the run, so different runs never share one."""
    key = identity.run_key(p, stage, ups)
    if stage == "transfer":
        return A.checkpoint_dir(root, stage, f"{A.pair(p)}-{p.transfer.family}-{key}")
    name = {"train": p.train.family, "evaluate": p.train.family, "evaluator": p.evaluator.kind}.get(
        stage, p.embed.encoder)
    return A.checkpoint_dir(root, stage, f"{p.data.dataset}-{name}-{key}")


def write_meta(tmp: Path, p: Params, stage: str, ups: dict[str, str], metrics: dict[str, Any],
               extra: dict[str, Any] | None = None, worlds: list[dict[str, int]] | None = None) -> dict[str, Any]:
    """``worlds``: the world sizes that trained it (``TrainResult.worlds``), kept where there were several."""
    world = distributed.world()
    if world.grouped:     # how it was trained, outside its identity (a world of one writes what it always did)
        extra = {**(extra or {}), "world_size": world.size}
    if worlds and len(worlds) > 1:   # resumed on another world size: each size from the step it took over
        extra = {**(extra or {}), "world_size": world.size, "worlds": worlds}
    return A.write_meta(tmp, stage=stage, params=identity.identity(p, stage), seed=p.seed, upstream=ups,
                        metrics=A.artifact_metrics(metrics), code_version=code_version(stage), extra=extra)


# The pictures of each stage's artifact, by the name every door shows them under; an evaluation shows each
# picture it drew, named by its file.
PICTURES = {"dataset": {"dataset_grid": "grid.png"}, "neighbors": {"neighbor_panel": "panel.png"},
            "train": {"preview_grid": "samples.png"}, "transfer": {"preview_grid": "samples.png"}}
CONTENT_TAG = "ganops.content_hash"   # on a stage's MLflow run: the artifact it wrote
# What `dvc metrics show` prints of an evaluation (short names, so the table fits a terminal): all in the
# evaluator's space; every figure stays in metrics/<stage>.json and report.json.
HEADLINE = {"evaluate": {"fid": "fid_evaluator", "precision": "precision_evaluator", "recall": "recall_evaluator",
                         "label_accuracy": "label_accuracy"},
            "evaluate_transfer": {"fid": "fid_target", "transfer_accuracy": "transfer_accuracy"},
            # against the other dataset; its label accuracy is the instance's class kept (label_agreement)
            identity.ON_INSTANCES: {"fid": "fid_evaluator", "precision": "precision_evaluator",
                                    "recall": "recall_evaluator", "label_accuracy": "label_agreement"}}


def pictures(stage: str, directory: Path) -> dict[str, Path]:
    """The pictures a finished artifact holds, by name."""
    directory = Path(directory)
    if stage in ("evaluate", identity.ON_INSTANCES, "evaluate_transfer"):
        return {png.stem: png for png in sorted(directory.glob("*.png"))}
    return {name: directory / file for name, file in PICTURES.get(stage, {}).items() if (directory / file).exists()}


def finish(stage: str, p: Params, root: Path, out: Path, run, metrics: dict[str, Any],
           extra_files: tuple[str, ...] = ()) -> StageResult:
    """After the atomic rename: the DVC metrics file (only what the artifact determines), MLflow (the run
    tagged with the artifact's content hash, so a door that did not build it finds its run)."""
    meta = A.read_meta(out)
    figures = A.artifact_metrics(metrics)
    A.atomic_write_json(A.metrics_file(root, metrics_name(stage, p)), figures)
    if stage in HEADLINE:
        name = metrics_name(stage, p).replace("evaluate_transfer_", "transfer_").replace("evaluate_", "")
        A.atomic_write_json(A.leaderboard_file(root, name),
                            {short: figures[key] for short, key in HEADLINE[stage].items() if key in figures})
    run.metrics(metrics)
    run.tags({CONTENT_TAG: meta["content_hash"]})
    images = pictures(stage, out)
    for path in (*images.values(), *(out / name for name in (*extra_files, A.META))):
        run.artifact(path)
    log.info("%s: wrote %s (%s)", stage, out, ", ".join(f"{k}={v}" for k, v in list(metrics.items())[:6]))
    return StageResult(stage, out, metrics, meta, images, run.run_id, run.url)
