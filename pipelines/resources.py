"""Resources: the parameters (params.yaml + run-config overrides), MLflow and the compute device."""


from pathlib import Path

import dagster as dg

from ganops.core import params as P


class GanopsParams(dg.ConfigurableResource):
    """params.yaml as defaults; `overrides` takes the CLI's `key=value` form, checked by the same schema."""

    project_root: str = "."
    params_file: str = "params.yaml"
    overrides: list[str] = []

    def root(self) -> Path:
        return Path(self.project_root).resolve()


class MlflowTracking(dg.ConfigurableResource):
    """Where runs are logged; unset fields keep params.yaml's `tracking.*` (default: SQLite at the project root)."""

    enabled: bool | None = None
    uri: str | None = None
    experiment: str | None = None


class ComputeDevice(dg.ConfigurableResource):
    """auto = CUDA, then MPS, then CPU; unset keeps params.yaml's `device`."""

    device: str | None = None


def effective_params(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice,
                     fixed: tuple[str, ...] = ()) -> P.Params:
    """``params.load``: params.yaml, then the resources' settings, then run-config overrides, then what the
    asset fixes (a generator asset's family); the overrides are the user's, as ``--set`` items are."""
    from_resources = {"device": device.device, "tracking.enabled": mlflow.enabled,
                      "tracking.uri": mlflow.uri, "tracking.experiment": mlflow.experiment}
    path = Path(params.params_file)
    return P.load(path if path.is_absolute() else params.root() / path, [*params.overrides, *fixed], required=True,
                  settings={k: v for k, v in from_resources.items() if v is not None})
