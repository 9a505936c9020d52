"""The code location `dagster dev` loads (pyproject [tool.dagster])."""


import dagster as dg

from pipelines import assets, checks, schedules, sensors
from pipelines.pipes import TrainingLauncher
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking

# `launcher`: where a multi-process training runs (torchrun beside Dagster, or pods through PipesK8sClient)
RESOURCES = {"params": GanopsParams(), "mlflow": MlflowTracking(), "device": ComputeDevice(),
             "launcher": TrainingLauncher()}

# Steps run one after the other in the run's process. Dagster's default starts a process per step (36 for the
# whole chain, each importing torch and MLflow: ~8 s apiece on 2 cores) and runs as many at once as there are
# cores, but every stage already takes the whole machine (torch's threads, torchrun's ranks through Pipes), so
# two trainings side by side only slow each other. The parallel work is elsewhere: shard partitions as runs of
# their own (the run launcher), ranks under torchrun. A run may still ask for `execution: config: multiprocess:`.
_STEPS = dg.Selector({"in_process": dg.Field(dg.Permissive(), is_required=False),
                      "multiprocess": dg.Field(dg.Permissive(), is_required=False)})
EXECUTOR = dg.multi_or_in_process_executor.configured(
    lambda config: config, name="ganops_executor",
    config_schema=dg.Field(_STEPS, default_value={"in_process": {}}, is_required=False))

defs = dg.Definitions(
    assets=assets.ALL,
    asset_checks=checks.ALL,
    jobs=[schedules.data_prep_job, schedules.retrain_job, schedules.transfer_job],
    schedules=[schedules.weekly_data_prep, schedules.weekly_retrain],
    sensors=[sensors.artifacts_on_disk, sensors.dataset_shards, schedules.image_folder_changed],
    resources=RESOURCES,
    executor=EXECUTOR,
)
