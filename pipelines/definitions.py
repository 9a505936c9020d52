"""The code location `dagster dev` loads (pyproject [tool.dagster])."""


import dagster as dg

from pipelines import assets, checks, schedules, sensors
from pipelines.pipes import TrainingLauncher
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking

# `launcher`: where a multi-process training runs (torchrun beside Dagster, or pods through PipesK8sClient)
RESOURCES = {"params": GanopsParams(), "mlflow": MlflowTracking(), "device": ComputeDevice(),
             "launcher": TrainingLauncher()}

defs = dg.Definitions(
    assets=assets.ALL,
    asset_checks=checks.ALL,
    jobs=[schedules.data_prep_job, schedules.retrain_job, schedules.transfer_job],
    schedules=[schedules.weekly_data_prep, schedules.weekly_retrain],
    sensors=[sensors.artifacts_on_disk, sensors.dataset_shards, schedules.image_folder_changed],
    resources=RESOURCES,
)
