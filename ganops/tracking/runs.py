"""MLflow: every stage run logs its parameters, metrics, artifacts and inputs.

By default a SQLite store at the project root (``mlflow.db``) with artifacts in ``mlartifacts/``;
``tracking.uri`` points at a tracking server instead. A pipeline run (``ganops run``, one ``dvc
repro``, one Dagster run) is a parent run with its stages nested. Runs carry the door that started
them, the git commit and the process; a run whose process died is marked KILLED by the next stage,
and a resumed stage continues the run it resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganops.core.distributed import CONTEXT_ENV
from ganops.core.params import Params
from ganops.tracking.store import is_store_failure, store_failure, tracking_uri

log = logging.getLogger(__name__)

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI's model-training view
# MLflow draws a progress bar for every artifact it copies, even one local file: noise in a stage's log
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
RUN_FILE = "mlflow_run.json"


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Who runs a stage: the door (cli, dvc, dagster, python), the pipeline run that groups stages
    (None: a stage on its own) and extra tags (e.g. the Dagster run id)."""

    door: str = "python"
    pipeline: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    owner: tuple[int, int] | None = None    # (pid, start time) of the process that runs the whole pipeline

    @classmethod
    def from_environment(cls, door: str = "cli") -> RunContext:
        """DVC runs each stage's command with DVC_STAGE set; its stages of one `dvc repro` share a pipeline.
        The ranks of a training launched by ganops (``to_environment``) belong to the launching door's run."""
        if os.environ.get(CONTEXT_ENV):
            saved = json.loads(os.environ[CONTEXT_ENV])
            return cls(saved["door"], saved["pipeline"], tuple(map(tuple, saved["tags"])),
                       tuple(saved["owner"]) if saved["owner"] else None)
        if os.environ.get("DVC_STAGE"):
            dvc = _dvc_process()
            tags = (("dvc.stage", os.environ["DVC_STAGE"]),)
            if os.environ.get("DVC_EXP_NAME"):
                tags += (("dvc.experiment", os.environ["DVC_EXP_NAME"]),)
            return cls("dvc", f"dvc-{dvc[0]}-{dvc[1]}" if dvc else None, tags, dvc)
        return cls(door)

    def to_environment(self) -> str:
        """This context as the value of GANOPS_RUN_CONTEXT, for the processes a launcher starts."""
        return json.dumps({"door": self.door, "pipeline": self.pipeline, "tags": [list(t) for t in self.tags],
                           "owner": list(self.owner) if self.owner else None})


def _dvc_process() -> tuple[int, int] | None:
    """pid and start time of the `dvc` process above this one (a stage runs under DVC's shell)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process().parents():
            if "dvc" in " ".join(proc.cmdline()[:2]).lower():
                return proc.pid, int(proc.create_time())
    return None


def _this_process() -> tuple[int, int]:
    import psutil

    return os.getpid(), int(psutil.Process().create_time())


class Run:
    """What a stage logs into; a disabled tracker accepts the same calls and records nothing."""

    def __init__(self, mlflow_module: Any | None):
        self._mlflow = mlflow_module
        self.run_id: str | None = None
        self.url: str | None = None

    @property
    def enabled(self) -> bool:
        return self._mlflow is not None

    def metric(self, name: str, value: float, step: int | None = None) -> None:
        if self._mlflow:
            self._mlflow.log_metric(name, float(value), step=step)

    def metrics(self, values: dict[str, Any], step: int | None = None) -> None:
        if self._mlflow:
            nums = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self._mlflow.log_metrics(nums, step=step)

    def tags(self, values: dict[str, str]) -> None:
        if self._mlflow:
            self._mlflow.set_tags(values)

    def artifact(self, path: Path, subdir: str | None = None) -> None:
        if self._mlflow and Path(path).exists():
            self._mlflow.log_artifact(str(path), artifact_path=subdir)

    def table(self, rows: list[dict[str, Any]], name: str) -> None:
        """Rows as an MLflow table artifact (the UI's artifact view and the evaluation view show it)."""
        if self._mlflow and rows:
            import pandas as pd

            self._mlflow.log_table(pd.DataFrame(rows), artifact_file=name)

    def dict(self, obj: dict[str, Any], name: str) -> None:
        if self._mlflow:
            self._mlflow.log_dict(obj, name)

    def dataset(self, directory: Path, name: str, content_hash: str, context: str) -> None:
        """The dataset artifact as a run input, identified by its content hash (MLflow's Datasets tab)."""
        if not self._mlflow:
            return
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with warnings.catch_warnings():  # MLflow registers its local-files source twice and warns about it
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(Path(directory).resolve().as_uri())
        ds = MetaDataset(source=source, name=name, digest=content_hash[:20])
        self._mlflow.log_input(ds, context=context)


# ---------------------------------------------------------------- store and experiment

def _git_commit(root: Path) -> dict[str, str]:
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0:
        return {}
    return {"mlflow.source.git.commit": out.stdout.strip(), "ganops.git.dirty": str(bool(dirty.stdout.strip()))}


def _relocate(db: Path, root: Path, location: str) -> None:
    """A project copied elsewhere brings mlflow.db with absolute artifact paths into the original:
    point them into this copy, so its runs never write into the project it was copied from."""
    old = location[: -len("/mlartifacts")] if location.endswith("/mlartifacts") else None
    new = (Path(root).resolve() / "mlartifacts").as_uri()[: -len("/mlartifacts")]
    if not old or old == new:
        return
    log.warning("mlflow.db was copied from %s: its artifact locations now point into %s", old, new)
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                              ("model_versions", "source"), ("model_versions", "storage_location"),
                              ("logged_models", "artifact_location")):
            cols = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if column in cols:
                con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE {column} LIKE ?",
                            (new, len(old) + 1, old + "/%"))


def _experiment(mlflow: Any, p: Params, root: Path) -> str:
    exp = mlflow.get_experiment_by_name(p.tracking.experiment)
    if exp is None:
        location = None if p.tracking.uri else (Path(root).resolve() / "mlartifacts").as_uri()
        with contextlib.suppress(Exception):   # another process may have created it meanwhile
            mlflow.create_experiment(p.tracking.experiment, artifact_location=location, tags=EXPERIMENT_KIND)
        exp = mlflow.get_experiment_by_name(p.tracking.experiment)
    elif not p.tracking.uri:
        _relocate(Path(root).resolve() / "mlflow.db", root, exp.artifact_location)
    mlflow.set_experiment(experiment_id=exp.experiment_id)
    return exp.experiment_id


def _process_tags() -> dict[str, str]:
    pid, started = _this_process()
    return {"ganops.pid": str(pid), "ganops.pid_started": str(started), "ganops.host": socket.gethostname(),
            "ganops.argv": " ".join(sys.argv)[:5000]}


def _alive(tags: dict[str, str]) -> bool:
    import psutil

    try:
        return int(psutil.Process(int(tags["ganops.pid"])).create_time()) == int(tags["ganops.pid_started"])
    except (psutil.Error, KeyError, ValueError):
        return False


def mark_dead_runs(client: Any, experiment_id: str, quiet: bool = False) -> list[str]:
    """Runs left RUNNING by a process of this host that no longer exists become KILLED (said, unless ``quiet``)."""
    host = socket.gethostname()
    dead = []
    for r in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = r.data.tags
        if tags.get("ganops.host") == host and "ganops.pid" in tags and not _alive(tags):
            client.set_terminated(r.info.run_id, status="KILLED")
            dead.append(r.info.run_id)
    if dead and not quiet:
        log.warning("marked %d MLflow run(s) KILLED: their process is gone (%s)", len(dead), ", ".join(dead))
    return dead


def settle_launched(p: Params, root: Path, ctx: RunContext, status: str) -> None:
    """After the ranks of a training this process launched stopped with a failure (or Ctrl-C): the stage's run,
    left RUNNING by a rank that is gone, becomes KILLED, and the pipeline run it belongs to ends ``status``, as
    when the stage fails in this process. Best effort: the failure itself is what the user is told."""
    if not p.tracking.enabled:
        return
    from ganops.tracking.registry import mlflow_client

    with contextlib.suppress(Exception):
        client = mlflow_client(p, root)
        exp = client.get_experiment_by_name(p.tracking.experiment)
        if exp is None:
            return
        mark_dead_runs(client, exp.experiment_id, quiet=True)    # the one line of the failure says enough
        if ctx.pipeline:
            for r in client.search_runs([exp.experiment_id], f"tags.`ganops.pipeline` = '{ctx.pipeline}' and "
                                        "attributes.status = 'RUNNING'", max_results=10):
                client.set_terminated(r.info.run_id, status=status, end_time=int(time.time() * 1000))


def _parent(client: Any, experiment_id: str, ctx: RunContext, root: Path) -> str:
    """The pipeline's parent run: found by its tag, created once (a lock keeps concurrent stages from
    creating two)."""
    from ganops.core.artifacts import lock_file
    from ganops.core.locks import exclusive

    with exclusive(lock_file(root, "mlflow-pipeline"), "creating the pipeline run", wait=True):
        found = client.search_runs([experiment_id], f"tags.`ganops.pipeline` = '{ctx.pipeline}'", max_results=1)
        if found:
            return found[0].info.run_id
        tags = {"ganops.pipeline": ctx.pipeline, "ganops.door": ctx.door, **dict(ctx.tags), **_git_commit(root)}
        if ctx.owner:  # lets a later stage mark the parent KILLED when that process is gone
            tags.update({"ganops.pid": str(ctx.owner[0]), "ganops.pid_started": str(ctx.owner[1]),
                         "ganops.host": socket.gethostname()})
        run = client.create_run(experiment_id, run_name=f"pipeline ({ctx.door})", tags=tags)
        return run.info.run_id


@contextlib.contextmanager
def pipeline_run(p: Params, root: Path, ctx: RunContext) -> Iterator[RunContext]:
    """Group the stages run in this block under one parent run (unless a door already grouped them)."""
    if ctx.pipeline is not None:
        yield ctx
        return
    yield dataclasses.replace(ctx, pipeline=f"{ctx.door}-{uuid.uuid4().hex[:12]}", owner=_this_process())


def _resumable_run(client: Any, resume: Path | None) -> str | None:
    """The run a killed stage was logging to, if its checkpoint folder names one that still exists."""
    if resume is None or not (Path(resume) / RUN_FILE).exists():
        return None
    with contextlib.suppress(Exception):
        run_id = json.loads((Path(resume) / RUN_FILE).read_text())["run_id"]
        client.get_run(run_id)
        return run_id
    return None


@contextlib.contextmanager
def stage_run(p: Params, root: Path, stage: str, ctx: RunContext | None = None, resume: Path | None = None,
              scratch: Path | None = None) -> Iterator[Run]:
    """One MLflow run for one stage execution. ``resume``: the checkpoint folder of a killed run of the
    same stage, whose MLflow run this one continues; ``scratch``: where to note this run's id for that.
    A failure of the store (a full disk under mlflow.db, a server gone) is a one-line TrackingError."""
    try:
        with _stage_run(p, root, stage, ctx, resume, scratch) as run:
            yield run
    except Exception as exc:
        if is_store_failure(exc):
            raise store_failure(p, root, exc) from None
        raise


@contextlib.contextmanager
def _stage_run(p: Params, root: Path, stage: str, ctx: RunContext | None, resume: Path | None,
               scratch: Path | None) -> Iterator[Run]:
    ctx = ctx or RunContext()
    if not p.tracking.enabled:
        yield Run(None)
        return
    import mlflow  # heavy import: only when tracking is on
    from mlflow.tracking import MlflowClient

    from ganops.core.artifacts import atomic_write_json

    mlflow.set_tracking_uri(tracking_uri(p, root))
    client = MlflowClient()
    experiment_id = _experiment(mlflow, p, root)
    mark_dead_runs(client, experiment_id)
    parent = _parent(client, experiment_id, ctx, root) if ctx.pipeline else None
    if parent:
        client.update_run(parent, status="RUNNING")  # while one of its stages runs
    tags = {"ganops.stage": stage, "ganops.door": ctx.door, **dict(ctx.tags), **_process_tags(), **_git_commit(root)}
    previous = _resumable_run(client, resume)
    if previous:
        log.info("%s: continuing MLflow run %s of the killed run", stage, previous)
        active = mlflow.start_run(run_id=previous)
    else:
        name = run_name(p, stage)
        if p.role:
            name, tags["ganops.domain"] = f"{name} ({p.role})", p.role
        active = mlflow.start_run(run_name=name, parent_run_id=parent, tags=tags)
    with active:   # from here a failure (a full disk under mlflow.db too) ends the run FAILED, not FINISHED
        if previous:
            mlflow.set_tags({**tags, "ganops.resumed": "true"})
        else:
            mlflow.log_params({k: ("" if v is None else v) for k, v in p.flat().items()})
        if scratch is not None:
            atomic_write_json(Path(scratch) / RUN_FILE, {"run_id": active.info.run_id})
        run = Run(mlflow)
        run.run_id = active.info.run_id
        run.url = run_url(p, active.info.experiment_id, active.info.run_id)
        outcome = "FAILED"   # a stage that raises fails its pipeline run too
        try:
            yield run
            outcome = "FINISHED"
        except KeyboardInterrupt:   # Ctrl-C: the user stopped it, nothing failed
            outcome = "KILLED"
            mlflow.end_run(status="KILLED")
            raise
        finally:
            if parent:
                client.set_terminated(parent, status=outcome, end_time=int(time.time() * 1000))


def run_name(p: Params, stage: str) -> str:
    """What the run list shows: the stage and what tells its runs apart (the family, the encoder, k)."""
    return {"embeddings": f"embeddings {p.embed.encoder}", "neighbors": f"neighbors {p.embed.encoder} k{p.neighbors.k}",
            "train": f"train {p.train.family}", "evaluate": f"evaluate {p.train.family}",
            "evaluate_on_instances": f"evaluate {p.train.family} on {p.on_instances.dataset}",
            "evaluator": "evaluator" if p.evaluator.kind == "auto" else f"evaluator {p.evaluator.kind}",
            "transfer": f"transfer {p.transfer.family}",
            "evaluate_transfer": f"evaluate transfer {p.transfer.family}"}.get(stage, stage)


# MLflow 3's UI opens an experiment in the workflow last picked in the browser, GenAI at first, whatever the
# experiment's mlflow.experimentKind tag says; this query parameter opens it in model training.
UI_VIEW = "?workflowType=machine_learning"


def run_url(p: Params, experiment_id: str, run_id: str) -> str:
    """The run's page: on the tracking server, or on the local UI (`make mlflow-ui`) for a local store."""
    uri = p.tracking.uri
    base = uri if uri.startswith(("http://", "https://")) else p.tracking.ui_url
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}{UI_VIEW}"


def registered_model_name(p: Params, kind: str = "generator") -> str:
    """``ganops-<dataset>-<family>`` for generators, ``ganops-<source>-to-<target>-<family>`` for translators."""
    if kind == "transfer":
        from ganops.core.artifacts import pair

        return f"ganops-{pair(p)}-{p.transfer.family}"
    return f"ganops-{p.data.dataset}-{p.train.family}"


# The trained model artifact's content hash (a generator's or a translator's), on its logged model.
GENERATOR_TAG = "ganops.generator_hash"


def log_generator(run: Run, model: Any, weights_file: Path, content_hash: str, name: str = "generator") -> str | None:
    """A trained model (``ganops.models.TrainedModel``: G's EMA weights, or a translator) as an MLflow PyTorch
    model, tagged with the artifact's content hash so the evaluation finds it and registers it; returns the
    logged model's id.

    It is logged as a torch.export program (MLflow's pt2 format): loading it runs no pickle and needs no
    ganops, only torch (``mlflow.pytorch.load_model`` gives a module called with the model's inputs in its
    signature's order). model.pt rides along: ganops reads registry models from it with
    ``torch.load(weights_only=True)``."""
    if not run.enabled:
        return None
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    module, inputs, output = model.served()

    def spec(port: Any) -> TensorSpec:
        return TensorSpec(np.dtype(port.dtype), port.shape, port.name)

    # two of each input: a batch of one would be exported as a fixed batch of one
    example = tuple(torch.zeros([2 if d == -1 else d for d in port.shape], dtype=getattr(torch, port.dtype))
                    for port in inputs)
    with warnings.catch_warnings():   # torch.export's notes on what it specialised are not the user's business
        warnings.simplefilter("ignore")
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        info = mlflow.pytorch.log_model(module, name=name, serialization_format="pt2", input_example=example,
                                        signature=ModelSignature(Schema([spec(p) for p in inputs]),
                                                                 Schema([spec(output)])),
                                        extra_files=[str(weights_file)],
                                        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    mlflow.set_logged_model_tags(info.model_id, {GENERATOR_TAG: content_hash})
    return info.model_id
