"""What the other doors built, shown in Dagster: after `dvc repro` or `ganops stage`, the artifact on
disk has a content hash Dagster has not seen, and this sensor reports it as a (runless)
materialization with the same data version, code version and input versions a Dagster run would
have recorded, so the UI's lineage and staleness describe what is on disk; with the metadata a Dagster run
shows (pictures, the MLflow run, the logged or registered model) and the asset's checks evaluated on it. The
registry's champions and the leaderboard are reported when they change."""


import contextlib
import hashlib
import json
from pathlib import Path

import dagster as dg

from ganops.catalog.families import SPECS, TRANSFER_SPECS
from ganops.core import artifacts as A
from ganops.core.errors import describe, user_errors
from ganops.core.identity import DOMAIN_STAGES, ON_INSTANCES, ON_INSTANCES_FAMILIES, roles
from ganops.stages.on_disk import result_on_disk
from ganops.tracking import checks
from ganops.tracking.store import has_store
from pipelines.assets import (
    KEY_OF_STAGE,
    SHARDS,
    champion_key,
    evaluation_key,
    generator_key,
    leaderboard_metadata,
    metadata,
    on_instances_key,
    stage_key,
)
from pipelines.checks import ON_DISK
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
    """(asset key, stage, its parameters, family, domain) for every artifact asset (the artifact may not exist)."""
    p = effective_params(params, mlflow, device)
    for stage, key in KEY_OF_STAGE.items():
        yield key, stage, p, None, None
    for family in SPECS:
        q = effective_params(params, mlflow, device, (f"train.family={family}",))
        yield generator_key(family), "train", q, family, None
        yield evaluation_key(family), "evaluate", q, family, None
        if family in ON_INSTANCES_FAMILIES:
            yield on_instances_key(family), ON_INSTANCES, q, family, None
    for stage in DOMAIN_STAGES:
        for role in roles(stage):
            yield stage_key(f"{stage}@{role}"), stage, p.domain(role), None, role
    for family in TRANSFER_SPECS:
        q = effective_params(params, mlflow, device, (f"transfer.family={family}",))
        for stage in ("transfer", "evaluate_transfer"):
            yield stage_key(stage, family), stage, q, family, None


def _recorded(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[str | None, str | None]:
    """Data and code version of the asset's latest materialization in Dagster."""
    event = instance.get_latest_materialization_event(key)
    tags = (event.asset_materialization.tags or {}) if event and event.asset_materialization else {}
    return tags.get(DATA_VERSION_TAG), tags.get(CODE_VERSION_TAG)


def _event_pointer(instance: dg.DagsterInstance, key: dg.AssetKey) -> str:
    """Storage id of the upstream's latest materialization (unknown yet when reported in this same batch)."""
    record = instance.get_latest_data_version_record(key)
    return str(record.storage_id) if record else NULL_EVENT_POINTER


def _checks(key: dg.AssetKey, stage: str, p, root: Path) -> list[dg.AssetCheckEvaluation]:
    """The asset's checks on the artifact just reported, as a Dagster run would have evaluated them."""
    out = []
    for name, _, check in ON_DISK.get(stage, []) if p.role is None else []:
        try:
            outcome = check(p, root)
        except Exception as exc:   # noqa: BLE001 (a corrupt artifact fails its check; the tick goes on)
            outcome = checks.Outcome(False, describe(exc) if isinstance(exc, user_errors()) else
                                     f"{type(exc).__name__}: {exc}")
        out.append(dg.AssetCheckEvaluation(asset_key=key, check_name=name, passed=outcome.passed,
                                           description=outcome.description, metadata=outcome.metadata))
    return out


def _versioned(key: dg.AssetKey, data_version: str, metadata: dict) -> dg.AssetMaterialization:
    return dg.AssetMaterialization(asset_key=key, metadata=metadata,
                                   tags={DATA_VERSION_TAG: data_version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"})


def _registry_events(instance: dg.DagsterInstance, params: GanopsParams, mlflow: MlflowTracking,
                     device: ComputeDevice) -> list[dg.AssetMaterialization]:
    """The champion of each family and the leaderboard, when the registry or the evaluations changed: the
    alias a `ganops stage evaluate` or `dvc repro` moved shows in Dagster as the champion asset it is."""
    from ganops.evaluate.leaderboard import leaderboard
    from ganops.tracking import registry

    events = []
    root = params.root()
    for family in SPECS:
        q = effective_params(params, mlflow, device, (f"train.family={family}",))
        if not has_store(q, root):
            break
        try:
            mv = registry.champion(q, root)
        except Exception:   # noqa: BLE001 (a store that cannot answer now: the next tick asks again)
            mv = None
        if mv is None or _recorded(instance, champion_key(family))[0] == f"v{mv.version}":
            continue
        events.append(_versioned(champion_key(family), f"v{mv.version}", {
            "registered_model": mv.name, "champion_version": str(mv.version),
            "reason": mv.tags.get("ganops.decision_reason", ""),
            "champion_fid": registry.score(mv),
            "reported_from": "the MLflow registry (moved by dvc repro or the CLI)"}))
    rows = leaderboard(root, effective_params(params, mlflow, device))
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:20]
    if rows and _recorded(instance, dg.AssetKey("leaderboard"))[0] != digest:
        events.append(_versioned(dg.AssetKey("leaderboard"), digest, leaderboard_metadata(rows)))
    return events


def reported_events(instance: dg.DagsterInstance, params: GanopsParams, mlflow: MlflowTracking,
                    device: ComputeDevice) -> list[dg.AssetMaterialization | dg.AssetCheckEvaluation]:
    """Materializations of what is on disk and Dagster has not seen, with the metadata a Dagster run shows and
    their checks evaluated; then the registry's champions and the leaderboard."""
    events: list[dg.AssetMaterialization | dg.AssetCheckEvaluation] = []
    root = params.root()
    for key, stage, q, family, role in _on_disk(params, mlflow, device):
        meta_file = A.stage_dir(root, q, stage) / A.META
        if not meta_file.exists():
            continue
        try:
            meta = json.loads(meta_file.read_text())
        except ValueError:
            continue   # being replaced right now; the next tick sees the finished one
        # same bytes rebuilt by newer code is news too: Dagster would otherwise call it stale
        if _recorded(instance, key) == (meta["content_hash"], meta.get("code_version", "")):
            continue
        result = result_on_disk(stage, q, root, meta)
        tags = {DATA_VERSION_TAG: meta["content_hash"], DATA_VERSION_IS_USER_PROVIDED_TAG: "true",
                CODE_VERSION_TAG: meta.get("code_version", "")}
        for up_stage, up_hash in meta.get("upstream", {}).items():   # a domain's artifacts name their domain's
            up = stage_key(f"{up_stage}@{role}" if role and "@" not in up_stage else up_stage, family)
            tags[f"{INPUT_DATA_VERSION_TAG_PREFIX}/{up.to_user_string()}"] = up_hash
            tags[f"{INPUT_EVENT_POINTER_TAG_PREFIX}/{up.to_user_string()}"] = _event_pointer(instance, up)
        if stage == ON_INSTANCES:   # its asset also follows the evaluation (the registry's version), as a run records
            evaluated = A.evaluation_dir(root, q) / A.META
            with contextlib.suppress(OSError, ValueError, KeyError):
                up = evaluation_key(family)
                tags[f"{INPUT_DATA_VERSION_TAG_PREFIX}/{up.to_user_string()}"] = json.loads(
                    evaluated.read_text())["content_hash"]
                tags[f"{INPUT_EVENT_POINTER_TAG_PREFIX}/{up.to_user_string()}"] = _event_pointer(instance, up)
        shown = {**metadata(result), "reported_from": "disk (built by dvc repro or the ganops CLI)"}
        events.append(dg.AssetMaterialization(asset_key=key, metadata=shown, tags=tags))
        events.extend(_checks(key, stage, q, root))
    return [*events, *_registry_events(instance, params, mlflow, device)]


@dg.sensor(name="artifacts_on_disk", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Reports artifacts built outside Dagster (dvc repro, ganops CLI) as materializations.")
def artifacts_on_disk(context: dg.SensorEvaluationContext, params: GanopsParams, mlflow: MlflowTracking,
                      device: ComputeDevice) -> dg.SensorResult:
    events = reported_events(context.instance, params, mlflow, device)
    return dg.SensorResult(asset_events=events, skip_reason=None if events else "every artifact on disk is known")


@dg.sensor(name="dataset_shards", minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Registers one `dataset_shards` partition per shard of `data.dataset` (00000, 00001, …) from the "
                       "source's listing, and drops those the data or `data.shard_rows` no longer makes.")
def dataset_shards(context: dg.SensorEvaluationContext, params: GanopsParams, mlflow: MlflowTracking,
                   device: ComputeDevice):
    from ganops.data.shards import shard_name
    from ganops.stages.dataset import shard_total

    try:
        p = effective_params(params, mlflow, device)
    except user_errors() as exc:
        return dg.SkipReason(describe(exc))
    try:
        total = shard_total(p, params.root())
    except user_errors() as exc:
        return dg.SkipReason(f"cannot list data.dataset={p.data.dataset}: {describe(exc)}")
    want = [shard_name(i, "") for i in range(total)]
    have = context.instance.get_dynamic_partitions(SHARDS.name)
    add, drop = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if not add and not drop:
        return dg.SkipReason(f"{p.data.dataset}: its {total} shards are registered")
    requests = ([SHARDS.build_add_request(add)] if add else []) + ([SHARDS.build_delete_request(drop)] if drop else [])
    context.log.info(f"{p.data.dataset}: {total} shards of {p.data.shard_rows} images (+{len(add)}, -{len(drop)})")
    return dg.SensorResult(dynamic_partitions_requests=requests)
