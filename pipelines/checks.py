"""Asset checks: thin wrappers over ganops.tracking.checks, pointed at the artifact the parameters name."""


import dagster as dg

from ganops.catalog.families import SPECS
from ganops.core import artifacts as A
from ganops.tracking import checks
from pipelines.assets import dataset, embeddings, evaluation_key, generator_key, neighbors
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking, effective_params


def _result(outcome: checks.Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description, metadata=outcome.metadata)


@dg.asset_check(asset=dataset, description="The dataset holds at least one uint8 image.")
def dataset_not_empty(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice) -> dg.AssetCheckResult:
    p = effective_params(params, mlflow, device)
    return _result(checks.dataset_not_empty(A.dataset_dir(params.root(), p)))


@dg.asset_check(asset=embeddings, description="Every feature row is finite and unit-norm.")
def features_finite_unit_norm(params: GanopsParams, mlflow: MlflowTracking,
                              device: ComputeDevice) -> dg.AssetCheckResult:
    p = effective_params(params, mlflow, device)
    return _result(checks.features_finite_unit_norm(A.embeddings_dir(params.root(), p)))


@dg.asset_check(asset=neighbors, description="Neighbor indices are in range and never the instance itself.")
def neighbors_in_range_not_self(params: GanopsParams, mlflow: MlflowTracking,
                                device: ComputeDevice) -> dg.AssetCheckResult:
    p = effective_params(params, mlflow, device)
    return _result(checks.neighbors_valid(A.neighbors_dir(params.root(), p)))


def generator_check(family: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=generator_key(family), name="generator_healthy",
                    description="G's weights are finite and its samples are not collapsed to one image.")
    def generator_healthy(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice) -> dg.AssetCheckResult:
        p = effective_params(params, mlflow, device, (f"train.family={family}",))
        return _result(checks.generator_healthy(A.generator_dir(params.root(), p)))

    return generator_healthy


def promotion_check(family: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=evaluation_key(family), name="promotion_gate", blocking=True,
                    description="Finite weights, samples not collapsed, a finite FID and one that beats the "
                                "champion's in the same evaluator space: otherwise `champion` does not move.")
    def promotion_gate(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice) -> dg.AssetCheckResult:
        from ganops.stages.evaluate import promotion_gate as gate

        p = effective_params(params, mlflow, device, (f"train.family={family}",))
        outcome = gate(p, params.root())
        return _result(outcome)

    return promotion_gate


ALL = [dataset_not_empty, features_finite_unit_norm, neighbors_in_range_not_self,
       *(generator_check(f) for f in SPECS), *(promotion_check(f) for f in SPECS)]
