"""What the other doors built, shown in Dagster: after `dvc repro` or `ganops stage`, the artifact on
disk has a content hash Dagster has not seen, and this sensor reports it as a (runless)
materialization with the same data version, code version and input versions a Dagster run would
have recorded, so the UI's lineage and staleness describe what is on disk."""


import json
from pathlib import Path

import dagster as dg

from ganops.catalog.families import SPECS, TRANSFER_SPECS
from ganops.core import artifacts as A
from ganops.core.identity import DOMAIN_STAGES, roles
from pipelines.assets import KEY_OF_STAGE, evaluation_key, generator_key, stage_key
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking, effective_params

# Dagster has no public constructor for a reported materialization's versions: they travel as these tags
# of the event (what its report_asset_materialization endpoint writes for `data_version`, what
# `AssetMaterialization.data_version` and the staleness reader read). Named here, not imported from
# dagster._core; tests/pipelines check the UI's staleness of what the sensor reports.
DATA_VERSION_TAG = "dagster/data_version"
DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"
CODE_VERSION_TAG = "dagster/code_version"
INPUT_DATA_VERSION_TAG_PREFIX = "dagster/input_data_version"
INPUT_EVENT_POINTER_TAG_PREFIX = "dagster/input_event_pointer"
NULL_EVENT_POINTER = "NULL"            # the upstream's materialization is not recorded yet


def _on_disk(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice):
    """(asset key, artifact directory, family, domain) for every asset (the artifact may not exist)."""
    root = params.root()
    p = effective_params(params, mlflow, device)
    for stage, key in KEY_OF_STAGE.items():
        yield key, A.stage_dir(root, p, stage), None, None
    for family in SPECS:
        q = effective_params(params, mlflow, device, (f"train.family={family}",))
        yield generator_key(family), A.generator_dir(root, q), family, None
        yield evaluation_key(family), A.evaluation_dir(root, q), family, None
    for stage in DOMAIN_STAGES:
        for role in roles(stage):
            yield stage_key(f"{stage}@{role}"), A.stage_dir(root, p.domain(role), stage), None, role
    for family in TRANSFER_SPECS:
        q = effective_params(params, mlflow, device, (f"transfer.family={family}",))
        for stage in ("transfer", "evaluate_transfer"):
            yield stage_key(stage, family), A.stage_dir(root, q, stage), family, None


def _recorded(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[str | None, str | None]:
    """Data and code version of the asset's latest materialization in Dagster."""
    event = instance.get_latest_materialization_event(key)
    tags = (event.asset_materialization.tags or {}) if event and event.asset_materialization else {}
    return tags.get(DATA_VERSION_TAG), tags.get(CODE_VERSION_TAG)


def _event_pointer(instance: dg.DagsterInstance, key: dg.AssetKey) -> str:
    """Storage id of the upstream's latest materialization (unknown yet when reported in this same batch)."""
    record = instance.get_latest_data_version_record(key)
    return str(record.storage_id) if record else NULL_EVENT_POINTER


def reported_events(instance: dg.DagsterInstance, params: GanopsParams, mlflow: MlflowTracking,
                    device: ComputeDevice) -> list[dg.AssetMaterialization]:
    events = []
    for key, directory, family, role in _on_disk(params, mlflow, device):
        meta_file = Path(directory) / A.META
        if not meta_file.exists():
            continue
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            continue   # being replaced right now; the next tick sees the finished one
        # same bytes rebuilt by newer code is news too: Dagster would otherwise call it stale
        if _recorded(instance, key) == (meta["content_hash"], meta.get("code_version", "")):
            continue
        tags = {DATA_VERSION_TAG: meta["content_hash"], DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
                CODE_VERSION_TAG: meta.get("code_version", "")}
        for stage, up_hash in meta.get("upstream", {}).items():   # a domain's artifacts name their domain's
            up = stage_key(f"{stage}@{role}" if role and "@" not in stage else stage, family)
            tags[f"{INPUT_DATA_VERSION_TAG_PREFIX}/{up.to_user_string()}"] = up_hash
            tags[f"{INPUT_EVENT_POINTER_TAG_PREFIX}/{up.to_user_string()}"] = _event_pointer(instance, up)
        metadata = {"path": dg.MetadataValue.path(str(directory)), "content_hash": meta["content_hash"],
                    "reported_from": "disk (built by dvc repro or the ganops CLI)",
                    **{k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))}}
        events.append(dg.AssetMaterialization(asset_key=key, metadata=metadata, tags=tags))
    return events


@dg.sensor(name="artifacts_on_disk", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Reports artifacts built outside Dagster (dvc repro, ganops CLI) as materializations.")
def artifacts_on_disk(context: dg.SensorEvaluationContext, params: GanopsParams, mlflow: MlflowTracking,
                      device: ComputeDevice) -> dg.SensorResult:
    events = reported_events(context.instance, params, mlflow, device)
    return dg.SensorResult(asset_events=events, skip_reason=None if events else "every artifact on disk is known")
