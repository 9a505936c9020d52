"""The stage entry points that every front door calls: `ganops stage`, `dvc repro` and Dagster.

Each stage (one module here) reads its upstream artifacts, checks they were made with the
parameters in force, does its work, writes one directory atomically with a meta.json, writes its
DVC metrics file and logs to MLflow. Stage modules are imported by name, so each one's source
closure (ganops.core.lineage) holds only what that stage runs.

A stage that trains (``TRAINING_STAGES``) runs on several processes when ``distributed.*`` asks for more
than one: this process launches torchrun (``ganops.core.launch``) and reads the artifact rank 0 wrote.
Under a launcher (torchrun, a training operator, srun) every rank runs the stage; rank 0 alone writes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ganops.core import distributed
from ganops.core.device import resolve
from ganops.core.identity import (
    ALL_STAGES,
    DOMAIN_STAGES,
    STAGES,
    TRAINING_STAGES,
    roles,
    split_name,
    transfer_chain,
)
from ganops.core.params import Params, ParamsError
from ganops.stages.common import StageResult
from ganops.tracking.runs import RunContext, pipeline_run, settle_launched
from ganops.tracking.store import check_store

__all__ = ["ALL_STAGES", "STAGES", "StageResult", "run_all", "run_stage", "run_transfer"]


def run_stage(name: str, p: Params, root: Path | str = ".", ctx: RunContext | None = None,
              domain: str | None = None) -> StageResult:
    """One stage; ``domain`` (source or target) runs the dataset or evaluator stage for that side of the
    domain transfer, on ``transfer.<domain>``'s data keys (the classifier, DTN's f, on the source only)."""
    if name not in ALL_STAGES:
        raise ParamsError(f"unknown stage {name!r}; stages are: {', '.join(ALL_STAGES)}")
    if domain is None and name not in STAGES:
        if name in DOMAIN_STAGES:
            raise ParamsError(f"the {name} stage runs on a domain of the transfer: add --domain "
                              f"{' or --domain '.join(roles(name))}")
    if domain is not None:
        if name not in DOMAIN_STAGES:
            raise ParamsError(f"--domain {domain}: only the {', '.join(DOMAIN_STAGES)} stages run per domain, "
                              f"not {name}")
        if domain not in roles(name):
            raise ParamsError(f"--domain {domain}: the {name} stage (DTN's f) runs on the "
                              f"{' and '.join(roles(name))} domain only")
    launcher_p, p = p, (p.domain(domain) if domain is not None else p)
    device = resolve(p.device)  # a device this machine lacks is refused before any work, in every stage
    check_store(p, Path(root))  # so is an MLflow store that cannot be used (before the stage's lock)
    ctx = ctx or RunContext()
    if distributed.launched() is not None:
        if name not in TRAINING_STAGES:
            raise ParamsError(f"the {name} stage does not train, so it runs on one process: run it without torchrun "
                              f"(`ganops stage {name}`); the training stages are {', '.join(TRAINING_STAGES)}")
        d = p.distributed
        distributed.init(d.backend, device, d.timeout_s, d.sync_batchnorm)
    elif name in TRAINING_STAGES:    # training, and the embeddings' extraction (its ranks share the shards)
        from ganops.core import launch

        if launch.wanted(p):
            launch.check(name, p)
            try:
                launch.run_stage_on_ranks(name, launcher_p, Path(root), domain, ctx.to_environment())
            except (distributed.DistributedError, KeyboardInterrupt) as exc:
                settle_launched(p, Path(root), ctx, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
                raise
            from ganops.stages.on_disk import result_on_disk

            return result_on_disk(name, p, Path(root))
    try:
        return importlib.import_module(f"ganops.stages.{name}").run(p, Path(root), ctx)
    except Exception as exc:   # noqa: BLE001 (re-raised as it is; only its wording changes)
        # the stage speaks of data.* and evaluator.*; on a domain the user set transfer.<domain>.*
        if p.role and not isinstance(exc, OSError) and exc.args and isinstance(exc.args[0], str):
            exc.args = (p.in_user_terms(exc.args[0]), *exc.args[1:])
        raise


def run_transfer(p: Params, root: Path | str = ".", ctx: RunContext | None = None) -> list[StageResult]:
    """The domain-transfer chain of `transfer.family` as one pipeline run: both domains' datasets, what the
    family trains from (DTN's f) and the judges, the translator, its evaluation."""
    ctx = ctx or RunContext()
    with pipeline_run(p, Path(root), ctx) as ctx:
        return [run_stage(stage, p, root, ctx, role) for stage, role in map(split_name, transfer_chain(p.transfer.family))]


def chain(p: Params, until: str | None = None) -> list[str]:
    """The stages `train.family` needs, in order, up to ``until`` (a DCGAN needs no neighborhoods)."""
    from ganops.core.identity import upstream_stages

    full = [*upstream_stages("evaluate", p.train.family), "evaluate"]
    if until is None:
        return full
    if until in full:
        return full[: full.index(until) + 1]
    return list(STAGES[: STAGES.index(until) + 1])  # e.g. --until neighbors for a DCGAN


def run_all(p: Params, root: Path | str = ".", until: str | None = None,
            ctx: RunContext | None = None) -> list[StageResult]:
    """The chain in order, as one pipeline run (one parent MLflow run with the stages nested)."""
    ctx = ctx or RunContext()
    with pipeline_run(p, Path(root), ctx) as ctx:
        return [run_stage(n, p, root, ctx) for n in chain(p, until)]
