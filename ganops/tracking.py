"""MLflow: every stage run logs its parameters, metrics and artifacts.

By default a SQLite store at the project root (``mlflow.db``) with artifacts in ``mlartifacts/``;
``tracking.uri`` points at a tracking server instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ganops.params import Params

log = logging.getLogger(__name__)


def tracking_uri(p: Params, root: Path) -> str:
    return p.tracking.uri or f"sqlite:///{(Path(root).resolve() / 'mlflow.db')}"


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

    def artifact(self, path: Path, subdir: str | None = None) -> None:
        if self._mlflow and Path(path).exists():
            self._mlflow.log_artifact(str(path), artifact_path=subdir)

    def dict(self, obj: dict[str, Any], name: str) -> None:
        if self._mlflow:
            self._mlflow.log_dict(obj, name)


@contextlib.contextmanager
def stage_run(p: Params, root: Path, stage: str, tags: dict[str, str] | None = None) -> Iterator[Run]:
    """One MLflow run for one stage execution, with the effective parameters logged."""
    if not p.tracking.enabled:
        yield Run(None)
        return
    import mlflow  # heavy import: only when tracking is on

    mlflow.set_tracking_uri(tracking_uri(p, root))
    if mlflow.get_experiment_by_name(p.tracking.experiment) is None:
        location = None if p.tracking.uri else (Path(root).resolve() / "mlartifacts").as_uri()
        mlflow.create_experiment(p.tracking.experiment, artifact_location=location)
    mlflow.set_experiment(p.tracking.experiment)
    with mlflow.start_run(run_name=stage, tags={"ganops.stage": stage, **(tags or {})}) as active:
        mlflow.log_params({k: ("" if v is None else v) for k, v in p.flat().items()})
        run = Run(mlflow)
        run.run_id = active.info.run_id
        run.url = _run_url(p, active)
        yield run


def _run_url(p: Params, active: Any) -> str:
    """The run's page: on the tracking server, or on the local UI (`make mlflow-ui`) for a local store."""
    uri = p.tracking.uri
    base = uri if uri.startswith(("http://", "https://")) else p.tracking.ui_url
    return f"{base.rstrip('/')}/#/experiments/{active.info.experiment_id}/runs/{active.info.run_id}"


def registered_model_name(p: Params) -> str:
    return f"ganops-{p.data.dataset}-{p.train.family}"


def log_generator(run: Run, generator: Any, p: Params) -> str | None:
    """G (its EMA weights) as an MLflow PyTorch model, registered under ``ganops-<dataset>-<family>``."""
    if not run.enabled:
        return None
    import mlflow.pytorch
    import torch

    # Explicit requirements: inferring them would import-scan the environment (slow, and offline-hostile).
    # Pickle, not MLflow 3's default pt2 export: G takes optional label/instance inputs that a traced
    # graph cannot keep optional; loading needs `ganops` importable, as any pickled module does.
    info = mlflow.pytorch.log_model(generator, name="generator", registered_model_name=registered_model_name(p),
                                    serialization_format="pickle",
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "ganops"])
    return info.model_uri
