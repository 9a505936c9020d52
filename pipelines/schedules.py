"""Jobs and schedules: the data-preparation chain, and the whole chain through training ("retrain")."""


import dagster as dg

from pipelines.assets import GROUP

data_prep_job = dg.define_asset_job("data_prep", selection=dg.AssetSelection.groups(GROUP),
                                    description="dataset → embeddings → neighborhoods")

weekly_data_prep = dg.ScheduleDefinition(
    name="weekly_data_prep", job=data_prep_job, cron_schedule="0 3 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuild the data chain every Monday 03:00 (turn on in the UI).")

retrain_job = dg.define_asset_job("retrain", selection=dg.AssetSelection.all(),
                                  description="dataset → embeddings → neighborhoods → every family's generator")

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain", job=retrain_job, cron_schedule="0 4 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuild the data and retrain every generator every Monday 04:00 (turn on in the UI).")
