"""Training on several processes from Dagster, through Dagster Pipes: a training asset whose `distributed.*`
asks for more than one process launches torchrun as a Pipes subprocess on this machine
(``dg.PipesSubprocessClient``) or as pods on Kubernetes (``dagster_k8s.PipesK8sClient``), with the same
asset code. The ranks run ``python -m pipelines.pipes_stage``: rank 0 alone opens the Pipes session, so
the run's log lines, progress and one materialization (with the asset's metadata and data version) reach
the UI as from an in-process asset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import yaml

from ganops.core.distributed import CONTEXT_ENV
from ganops.core.launch import torchrun_args
from ganops.core.params import Params
from ganops.tracking.runs import RunContext

PARAMS_ENV = "GANOPS_PARAMS"        # the effective parameters, as YAML, for every rank (on any machine)


class TrainingLauncher(dg.ConfigurableResource):
    """Where a multi-process training runs: ``subprocess`` (torchrun beside Dagster) or ``k8s`` (a pod of the
    image, started by PipesK8sClient; one pod per node, ``distributed.nnodes`` of them meeting at
    ``distributed.rdzv_endpoint``)."""

    kind: Literal["subprocess", "k8s"] = "subprocess"
    image: str = ""                       # k8s: an image holding ganops and the project (README "Scaling out")
    namespace: str = "default"
    gpus_per_pod: int = 0                 # k8s: nvidia.com/gpu requested by the pod
    python: str = "python"                # k8s: the interpreter in the image

    def command(self, stage: str, p: Params, root: Path, domain: str | None) -> list[str]:
        stage_args = [stage, "--root", str(root) if self.kind == "subprocess" else ".",
                      *(["--domain", domain] if domain else []), *(a for s in p.overrides for a in ("--set", s))]
        python = sys.executable if self.kind == "subprocess" else self.python
        return [python, "-m", "torch.distributed.run",
                *torchrun_args(p, stage_args, module="pipelines.pipes_stage")]

    def pod_spec(self) -> dict[str, Any]:
        limits = {"nvidia.com/gpu": str(self.gpus_per_pod)} if self.gpus_per_pod else {}
        return {"containers": [{"resources": {"limits": limits}}]} if limits else {}

    def launch(self, context: dg.AssetExecutionContext, stage: str, p: Params, root: Path, domain: str | None,
               run: RunContext) -> dg.MaterializeResult:
        env = {PARAMS_ENV: yaml.safe_dump(p.model_dump(), sort_keys=False), CONTEXT_ENV: run.to_environment()}
        command = self.command(stage, p, root, domain)
        context.log.info(f"{stage}: {p.distributed.nproc_per_node} process(es) per node on {p.distributed.nnodes} "
                         f"node(s) through Dagster Pipes ({self.kind}): {' '.join(command[:8])} …")
        if self.kind == "subprocess":
            invocation = dg.PipesSubprocessClient(cwd=str(root)).run(context=context, command=command, env=env)
        else:
            from dagster_k8s import PipesK8sClient

            if not self.image:
                raise dg.Failure(description="launcher.kind=k8s needs launcher.image: an image with ganops and "
                                             "the project (README, Scaling out)")
            invocation = PipesK8sClient().run(context=context, image=self.image, command=command, env=env,
                                              namespace=self.namespace, base_pod_spec=self.pod_spec())
        return invocation.get_materialize_result()
