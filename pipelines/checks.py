"""Asset checks: thin wrappers over ganops.tracking.checks, pointed at the artifact the parameters name.

``ON_DISK`` lists the checks the `artifacts_on_disk` sensor also evaluates on what `dvc repro` or the CLI built,
so an asset shows the same check results whichever door built it.
"""

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from ganops.catalog.families import SPECS
from ganops.core import artifacts as A
from ganops.core.params import Params
from ganops.tracking import checks
from pipelines.assets import dataset, embeddings, evaluation_key, generator_key, neighbors
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking, effective_params

Check = Callable[[Params, Path], checks.Outcome]

# stage → (check name, description, the check on the artifact of these parameters)
ON_DISK: dict[str, list[tuple[str, str, Check]]] = {
    "dataset": [("dataset_not_empty", "The dataset holds at least one uint8 image.",
                 lambda p, root: checks.dataset_not_empty(A.dataset_dir(root, p)))],
    "embeddings": [("features_finite_unit_norm", "Every feature row is finite and unit-norm.",
                    lambda p, root: checks.features_finite_unit_norm(A.embeddings_dir(root, p)))],
    "neighbors": [("neighbors_in_range_not_self", "Neighbor indices are in range and never the instance itself.",
                   lambda p, root: checks.neighbors_valid(A.neighbors_dir(root, p))),
                  ("neighbors_not_collapsed", "Neighbors are closer than random pairs: the encoder tells images apart.",
                   lambda p, root: checks.neighbors_distinct(A.neighbors_dir(root, p)))],
    "train": [("generator_healthy", "G's weights are finite and its samples are not collapsed to one image.",
               lambda p, root: checks.generator_healthy(A.generator_dir(root, p)))],
    # the evaluation's health; the champion decision was made by the door that evaluated it
    "evaluate": [("promotion_gate", ("Finite weights, samples not collapsed, a finite FID and one that beats the "
                                     "champion's in the same evaluator space: otherwise `champion` does not move."),
                  lambda p, root: checks.promotion_gate(A.evaluation_dir(root, p), p.evaluate.min_diversity))],
}


def _result(outcome: checks.Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description, metadata=outcome.metadata)


def _check(asset, stage: str, name: str, fixed: tuple[str, ...] = ()) -> dg.AssetChecksDefinition:
    description, run = next((d, fn) for n, d, fn in ON_DISK[stage] if n == name)

    @dg.asset_check(asset=asset, name=name, description=description)
    def check(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice) -> dg.AssetCheckResult:
        return _result(run(effective_params(params, mlflow, device, fixed), params.root()))

    return check


def promotion_check(family: str) -> dg.AssetChecksDefinition:
    description = ON_DISK["evaluate"][0][1]

    @dg.asset_check(asset=evaluation_key(family), name="promotion_gate", blocking=True, description=description)
    def promotion_gate(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice) -> dg.AssetCheckResult:
        from ganops.stages.evaluate import promotion_gate as gate

        p = effective_params(params, mlflow, device, (f"train.family={family}",))
        return _result(gate(p, params.root()))

    return promotion_gate


ALL = [_check(dataset, "dataset", "dataset_not_empty"), _check(embeddings, "embeddings", "features_finite_unit_norm"),
       *(_check(neighbors, "neighbors", name) for name, _, _ in ON_DISK["neighbors"]),
       *(_check(generator_key(f), "train", "generator_healthy", (f"train.family={f}",)) for f in SPECS),
       *(promotion_check(f) for f in SPECS)]
