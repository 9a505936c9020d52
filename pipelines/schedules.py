"""Jobs, schedules and the retraining sensor.

- `retrain` materializes the whole chain: data → generators → evaluations → the champion decision (each
  `champion/<family>` asset sits behind its blocking `promotion_gate` check, so a challenger that loses,
  or a collapsed one, leaves the champion in place).
- `weekly_retrain` runs it every Monday; `image_folder_changed` runs it when an `image_folder` dataset's
  directory gains, loses or changes files. A cron and a content cursor fit these two triggers better than
  declarative automation: neither is "an upstream asset changed", both are events outside Dagster.
"""

import json

import dagster as dg

from ganops.data.folder import folder_state
from ganops.data.raw import resolve_root
from pipelines.assets import GROUP, TRANSFER_GROUP, dataset_shards, embeddings_shards
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking, effective_params

# The jobs build whole artifacts; the partitioned `dataset_shards` and `embeddings_shards` are backfilled on their
# own (a job's assets share one partitioning), and `dataset` and `embeddings` do whatever shards they did not.
WHOLE = dg.AssetSelection.all() - dg.AssetSelection.assets(dataset_shards, embeddings_shards)

data_prep_job = dg.define_asset_job("data_prep", selection=dg.AssetSelection.groups(GROUP) & WHOLE,
                                    description="dataset → embeddings → neighbors")

weekly_data_prep = dg.ScheduleDefinition(
    name="weekly_data_prep", job=data_prep_job, cron_schedule="0 3 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuild the data chain every Monday 03:00 (turn on in the UI).")

retrain_job = dg.define_asset_job(
    "retrain", selection=WHOLE - dg.AssetSelection.groups(TRANSFER_GROUP),
    description="dataset → embeddings → neighbors → every family's generator → evaluation → champion decision")

transfer_job = dg.define_asset_job(
    "transfer", selection=dg.AssetSelection.groups(TRANSFER_GROUP),
    description="source and target datasets → their evaluators → every translator → its evaluation and champion")

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain", job=retrain_job, cron_schedule="0 4 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every Monday 04:00: rebuild the data, retrain and evaluate every family, and move each `champion` "
                "only to a challenger that beats it (turn on in the UI; train.warm_start starts from the champion).")


@dg.sensor(name="image_folder_changed", job=retrain_job, minimum_interval_seconds=300,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Retrains when the image_folder dataset's directory (data.root) gains, loses or changes "
                       "images; the cursor is a hash of the images' bytes, so touching a file is no change.")
def image_folder_changed(context: dg.SensorEvaluationContext, params: GanopsParams, mlflow: MlflowTracking,
                         device: ComputeDevice):
    p = effective_params(params, mlflow, device)
    if p.data.dataset != "image_folder":
        return dg.SkipReason(f"data.dataset is {p.data.dataset}: no image folder to watch")
    root = resolve_root(p.data, params.root())
    if not root.is_dir():
        return dg.SkipReason(f"data.root {root} is not a directory")
    state = folder_state(root)
    before = json.loads(context.cursor) if context.cursor else None
    context.update_cursor(json.dumps(state))
    if before is None:
        return dg.SkipReason(f"watching {root} ({state['files']} images); a change starts the retrain job")
    if before.get("content") == state["content"]:
        return dg.SkipReason(f"{root}: same {state['files']} images")
    return dg.RunRequest(run_key=state["content"], tags={"ganops.trigger": "image_folder_changed",
                                                          "ganops.images": state["files"]})
