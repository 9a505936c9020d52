"""The assets: dataset → embeddings → neighbors, and one generator per GAN family, reading what
that family reads; and the domain transfer: each domain's dataset and evaluator, one translator per
family, its evaluation. Each is one call into ganops.stages.

Data versions are the artifacts' content hashes and code versions the hash of the source each stage
depends on (ganops.core.lineage), so Dagster's staleness agrees with DVC's; the `artifacts_on_disk` sensor
reports what the other doors built.
"""

import base64
import logging
import warnings
from pathlib import Path

import dagster as dg

from ganops import stages
from ganops.catalog.families import SPECS, TRANSFER_SPECS
from ganops.core.errors import describe, user_errors
from ganops.core.identity import ON_INSTANCES, ON_INSTANCES_FAMILIES, roles, split_name, upstream_stages
from ganops.core.lineage import code_version
from ganops.core.params import DOMAINS, ParamsError
from ganops.tracking.runs import RunContext
from pipelines.pipes import TrainingLauncher
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking, effective_params

GROUP = "data_prep"
TRAIN_GROUP = "training"
EVAL_GROUP = "evaluation"
TRANSFER_GROUP = "transfer"
# The stage behind each asset, and the asset of each stage.
STAGE_OF = {"dataset": "dataset", "embeddings": "embeddings", "neighbors": "neighbors"}
KEY_OF_STAGE = {"dataset": dg.AssetKey("dataset"), "embeddings": dg.AssetKey("embeddings"),
                "neighbors": dg.AssetKey("neighbors"), "evaluator": dg.AssetKey("evaluator")}


def generator_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["generator", family])


def evaluation_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["evaluation", family])


def on_instances_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["evaluation_on_instances", family])


def champion_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["champion", family])


def translator_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["translator", family])


def transfer_evaluation_key(family: str) -> dg.AssetKey:
    return dg.AssetKey(["transfer_evaluation", family])


def stage_key(stage: str, family: str | None = None) -> dg.AssetKey:
    """The asset a stage's artifact is (the per-family ones need the family; ``dataset@source`` is the
    source domain's dataset)."""
    stage, role = split_name(stage)
    if role:
        return dg.AssetKey([role, stage])
    if stage == "train":
        return generator_key(family or "")
    if stage == "evaluate":
        return evaluation_key(family or "")
    if stage == ON_INSTANCES:
        return on_instances_key(family or "")
    if stage == "transfer":
        return translator_key(family or "")
    if stage == "evaluate_transfer":
        return transfer_evaluation_key(family or "")
    return KEY_OF_STAGE[stage]


def _image_md(path: Path, alt: str) -> dg.MetadataValue:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def metadata(result: stages.StageResult) -> dict[str, object]:
    """What an asset shows of a stage's result, whichever door built it (the sensor reports the same)."""
    meta: dict[str, object] = {
        "path": dg.MetadataValue.path(str(result.path)),
        "content_hash": result.meta.get("content_hash", ""),
    }
    for key, value in result.metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        meta[key] = dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(float(value))
    for name, png in result.images.items():
        meta[name] = _image_md(png, name)
    if result.run_id:
        meta["mlflow_run_id"] = result.run_id
    if result.url:
        meta["mlflow_run"] = dg.MetadataValue.url(result.url)
    if result.logged_model:
        meta["logged_model"] = result.logged_model
    if result.model_version:
        meta.update(registered_model=result.registered_model, model_version=result.model_version)
        if result.stage == "evaluate_transfer":   # the transfer's evaluation moves its champion itself
            meta.update(promoted=bool(result.decision and result.decision["promote"]),
                        decision=(result.decision or {}).get("reason", ""))
    return meta


class _ToDagster(logging.Handler):
    """The library's log records (progress, warnings) into the run's event log."""

    def __init__(self, context: dg.AssetExecutionContext):
        super().__init__(logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        log = self.context.log.warning if record.levelno >= logging.WARNING else self.context.log.info
        log(f"{record.name}: {record.getMessage()}")


def run_stage(context: dg.AssetExecutionContext, stage: str, params: GanopsParams, mlflow: MlflowTracking,
              device: ComputeDevice, overrides: tuple[str, ...] = (), domain: str | None = None) -> stages.StageResult:
    try:
        p = effective_params(params, mlflow, device, overrides)
    except ParamsError as exc:
        raise dg.Failure(description=str(exc)) from None
    ctx = RunContext("dagster", f"dagster-{context.run_id}", (("dagster.run_id", context.run_id),))
    handler, library = _ToDagster(context), logging.getLogger("ganops")
    library.addHandler(handler)
    level = library.level
    library.setLevel(min(level or logging.INFO, logging.INFO))
    try:
        return stages.run_stage(stage, p, params.root(), ctx, domain)
    except user_errors() as exc:  # the library's one-line message, not a traceback through our code
        raise dg.Failure(description=describe(exc)) from None
    finally:
        library.removeHandler(handler)
        library.setLevel(level)


def _materialized(result: stages.StageResult) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=metadata(result), data_version=dg.DataVersion(result.meta["content_hash"]))


def train_stage(context: dg.AssetExecutionContext, stage: str, params: GanopsParams, mlflow: MlflowTracking,
                device: ComputeDevice, launcher: TrainingLauncher, overrides: tuple[str, ...] = (),
                domain: str | None = None) -> dg.MaterializeResult:
    """A stage that trains: in this process, or, where `distributed.*` asks for more than one process, on
    torchrun's ranks through Dagster Pipes (``launcher``), rank 0 reporting the materialization."""
    from ganops.core import launch

    try:
        p = effective_params(params, mlflow, device, overrides)
        if not (launch.wanted(p) and stage in stages.TRAINING_STAGES):
            return _materialized(run_stage(context, stage, params, mlflow, device, overrides, domain))
        launch.check(stage, p)
    except (ParamsError, *user_errors()) as exc:
        raise dg.Failure(description=describe(exc)) from None
    run = RunContext("dagster", f"dagster-{context.run_id}", (("dagster.run_id", context.run_id),))
    return launcher.launch(context, stage, p, params.root(), domain, run)


def _shards(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice,
            write, say) -> dg.MaterializeResult:
    """A partitioned asset's run: ``write(p, root, shard indices)`` for its partition or range of partitions."""
    keys = context.partition_keys
    which = f"partition {keys[0]}" if len(keys) == 1 else f"partitions {keys[0]}…{keys[-1]}"
    try:
        p = effective_params(params, mlflow, device)
        done = write(p, params.root(), [int(k) for k in keys])
    except ValueError as exc:      # a key that is no shard number, or past the data's shards
        raise dg.Failure(description=f"{which}: {exc}") from None
    except (ParamsError, *user_errors()) as exc:
        raise dg.Failure(description=describe(exc)) from None
    context.log.info(f"{which}: {say(done)}")
    return dg.MaterializeResult(metadata={k: dg.MetadataValue.float(float(v)) if isinstance(v, float) else v
                                          for k, v in done.items()})


# Dagster marks `backfill_policy` beta; the shard assets rely on it knowingly (one run per few shards)
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
# The dataset's shards (`data.shard_rows` images each), one partition each: "00000", "00001", … The
# `dataset_shards` sensor registers them from the source's listing (their number follows the data).
SHARDS = dg.DynamicPartitionsDefinition(name="dataset_shards")
SHARDS_PER_RUN = 4     # a backfill of every shard: one run per 4 shards (a million images: 3 runs side by side)


@dg.asset(group_name=GROUP, kinds={"python", "numpy"}, code_version=code_version("dataset"), partitions_def=SHARDS,
          backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=SHARDS_PER_RUN),
          description="One shard of `data.dataset` decoded (its training images and, where it has them, its "
                      "held-out images) into the dataset stage's scratch folder, which the `dataset` asset then "
                      "assembles without decoding again. Spread a large dataset's decoding over runs: backfill "
                      "every partition (registered by the `dataset_shards` sensor).")
def dataset_shards(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                   device: ComputeDevice) -> dg.MaterializeResult:
    from ganops.stages.dataset import write_shards

    return _shards(context, params, mlflow, device, write_shards,
                   lambda d: f"{d['rows']} training and {d['holdout_rows']} held-out images of {d['of']} shards in "
                             f"{d['write_seconds']:.1f} s")


@dg.asset(group_name=GROUP, deps=[dataset_shards], kinds={"python", "numpy"}, code_version=code_version("dataset"),
          description="Images (uint8 N×C×H×W) and manifest of `data.dataset`, with a summary and a sample grid "
                      "(decodes the shards `dataset_shards` has not written).")
def dataset(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
            device: ComputeDevice) -> dg.MaterializeResult:
    return _materialized(run_stage(context, "dataset", params, mlflow, device))


@dg.asset(group_name=GROUP, deps=[dataset], kinds={"pytorch", "numpy"}, code_version=code_version("embeddings"),
          partitions_def=SHARDS, backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=SHARDS_PER_RUN),
          description="The features of one dataset shard from `embed.encoder`, into the embeddings stage's scratch "
                      "folder, which the `embeddings` asset then moves into its artifact as that shard's features, "
                      "without extracting again. A trained encoder is trained once, by the first run; the others "
                      "wait and take it from its checkpoint.")
def embeddings_shards(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                      device: ComputeDevice) -> dg.MaterializeResult:
    from ganops.stages.embeddings import write_pieces

    return _shards(context, params, mlflow, device, write_pieces,
                   lambda d: f"{d['rows']} images' features in {d['extract_seconds']:.1f} s (encoder ready in "
                             f"{d['fit_seconds']:.1f} s)")


@dg.asset(group_name=GROUP, deps=[dataset, embeddings_shards], kinds={"pytorch", "numpy"},
          code_version=code_version("embeddings"),
          description="L2-normalised features of every image from `embed.encoder` (trained here when self-supervised; "
                      "the pieces `embeddings_shards` has not extracted are extracted here).")
def embeddings(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
               device: ComputeDevice, launcher: TrainingLauncher) -> dg.MaterializeResult:
    return train_stage(context, "embeddings", params, mlflow, device, launcher)


@dg.asset(group_name=GROUP, deps=[dataset, embeddings], kinds={"faiss", "numpy"},
          code_version=code_version("neighbors"),
          description="IC-GAN k-NN neighborhoods A_i (cosine, FAISS; the instance excluded) with diagnostics.")
def neighbors(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                  device: ComputeDevice) -> dg.MaterializeResult:
    return _materialized(run_stage(context, "neighbors", params, mlflow, device))


def generator_asset(family: str) -> dg.AssetsDefinition:
    """The trained GAN of one family; it depends on exactly the artifacts that family reads."""
    spec = SPECS[family]

    @dg.asset(key=generator_key(family), group_name=TRAIN_GROUP, kinds={"pytorch", "mlflow"},
              deps=[KEY_OF_STAGE[s] for s in upstream_stages("train", family)],
              code_version=code_version("train"),
              description=f"{family} ({spec.paper}): G, D and G's EMA, logged to MLflow (the evaluation registers "
                          f"it as `ganops-<dataset>-{family}`); metadata holds the final losses and a sample grid.")
    def generator(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                  device: ComputeDevice, launcher: TrainingLauncher) -> dg.MaterializeResult:
        return train_stage(context, "train", params, mlflow, device, launcher, (f"train.family={family}",))

    return generator


GENERATORS = [generator_asset(family) for family in SPECS]


@dg.asset(group_name=EVAL_GROUP, deps=[dataset], kinds={"pytorch", "numpy"}, code_version=code_version("evaluator"),
          description="The network whose feature space scores every generator of the dataset (a classifier when "
                      "labels exist, else SimCLR), trained on the training images, with the real features cached.")
def evaluator(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
              device: ComputeDevice, launcher: TrainingLauncher) -> dg.MaterializeResult:
    return train_stage(context, "evaluator", params, mlflow, device, launcher)


def evaluation_asset(family: str) -> dg.AssetsDefinition:
    """The evaluation of one family's generator; it registers the generator as a model version. Promotion
    waits for the blocking `promotion_gate` check, in the `champion/<family>` asset below it."""
    spec = SPECS[family]

    @dg.asset(key=evaluation_key(family), group_name=EVAL_GROUP, kinds={"pytorch", "mlflow"},
              deps=[*(stage_key(s, family) for s in upstream_stages("evaluate", family))],
              code_version=code_version("evaluate"),
              description=f"{family} ({spec.paper}) scored in the evaluator's space: FID, KID, precision/recall, "
                          "density/coverage, memorisation, path length, probes; pictures; a registry version.")
    def evaluation(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                   device: ComputeDevice) -> dg.MaterializeResult:
        return _materialized(run_stage(context, "evaluate", params, mlflow, device,
                                       (f"train.family={family}", "evaluate.promote=false")))

    return evaluation


def champion_asset(family: str) -> dg.AssetsDefinition:
    @dg.asset(key=champion_key(family), group_name=EVAL_GROUP, kinds={"mlflow"}, deps=[evaluation_key(family)],
              description=f"The `champion` alias of `ganops-<dataset>-{family}`: moved to the evaluated version "
                          "when it passes the promotion gate and beats the champion's FID in the same space.")
    def champion(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                 device: ComputeDevice) -> dg.MaterializeResult:
        from ganops.stages.evaluate import promote

        try:
            p = effective_params(params, mlflow, device, (f"train.family={family}",))
            decision = promote(p, params.root())
        except (ParamsError, *user_errors()) as exc:
            raise dg.Failure(description=describe(exc)) from None
        context.log.info(f"{decision.model} v{decision.version}: {decision.reason}")
        return dg.MaterializeResult(metadata={
            "registered_model": decision.model, "evaluated_version": decision.version,
            "promoted": decision.promote, "reason": decision.reason,
            "champion_version": decision.version if decision.promote else (decision.champion_version or ""),
            "challenger_fid": decision.challenger, "champion_fid": decision.champion})

    return champion


def on_instances_asset(family: str) -> dg.AssetsDefinition:
    """The IC-GAN conditioned on the instances of `on_instances.dataset`, scored against that dataset. After the
    evaluation (which registers the generator), so the figures also land on the registered version."""
    @dg.asset(key=on_instances_key(family), group_name=EVAL_GROUP, kinds={"pytorch", "mlflow"},
              deps=[*(stage_key(s, family) for s in upstream_stages(ON_INSTANCES, family)), evaluation_key(family)],
              code_version=code_version(ON_INSTANCES),
              description=f"{family} conditioned on another dataset's instances (`on_instances.*`, IC-GAN's transfer): "
                          "FID/KID and precision/recall/density/coverage against that dataset beside the model's own "
                          "draw, label agreement where the classes are shared, instance | samples picture.")
    def evaluation_on_instances(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                                device: ComputeDevice) -> dg.MaterializeResult:
        return _materialized(run_stage(context, ON_INSTANCES, params, mlflow, device, (f"train.family={family}",)))

    return evaluation_on_instances


EVALUATIONS = [evaluation_asset(family) for family in SPECS]
CHAMPIONS = [champion_asset(family) for family in SPECS]
ON_INSTANCES_EVALUATIONS = [on_instances_asset(family) for family in ON_INSTANCES_FAMILIES]


@dg.asset(group_name=EVAL_GROUP, deps=[*(evaluation_key(f) for f in SPECS), *map(on_instances_key, ON_INSTANCES_FAMILIES)],
          kinds={"python"},
          description="Every family evaluated on the dataset in one table, best FID (evaluator space) first.")
def leaderboard(params: GanopsParams, mlflow: MlflowTracking, device: ComputeDevice) -> dg.MaterializeResult:
    from ganops.evaluate.leaderboard import leaderboard as board

    return dg.MaterializeResult(metadata=leaderboard_metadata(board(params.root(),
                                                                    effective_params(params, mlflow, device))))


def leaderboard_metadata(rows: list[dict]) -> dict[str, object]:
    from ganops.evaluate.leaderboard import markdown

    return {"leaderboard": dg.MetadataValue.md(markdown(rows)), "families": len(rows),
            "best": rows[0]["family"] if rows else ""}


def domain_assets(role: str) -> list[dg.AssetsDefinition]:
    """One side of the domain transfer: its dataset and its evaluator, on `transfer.<role>`'s data keys."""
    @dg.asset(key=stage_key(f"dataset@{role}"), group_name=TRANSFER_GROUP, kinds={"python", "numpy"},
              code_version=code_version("dataset"),
              description=f"The {role} domain's images (`transfer.{role}`), built by the dataset stage.")
    def domain_dataset(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                       device: ComputeDevice) -> dg.MaterializeResult:
        return _materialized(run_stage(context, "dataset", params, mlflow, device, domain=role))

    @dg.asset(key=stage_key(f"evaluator@{role}"), group_name=TRANSFER_GROUP, kinds={"pytorch", "numpy"},
              deps=[stage_key(f"dataset@{role}")], code_version=code_version("evaluator"),
              description=f"The {role} domain's evaluator, the judge of translations into it"
                          + (" (CycleGAN's B → A)." if role == "source" else " (transfer accuracy, FID/KID)."))
    def domain_evaluator(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                         device: ComputeDevice, launcher: TrainingLauncher) -> dg.MaterializeResult:
        return train_stage(context, "evaluator", params, mlflow, device, launcher, domain=role)

    if role not in roles("classifier"):
        return [domain_dataset, domain_evaluator]

    @dg.asset(key=stage_key(f"classifier@{role}"), group_name=TRANSFER_GROUP, kinds={"pytorch"},
              deps=[stage_key(f"dataset@{role}")], code_version=code_version("classifier"),
              description="DTN's f: a classifier of the source's labels (`transfer.source_classifier`), frozen "
                          "while the DTN trains.")
    def domain_classifier(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                          device: ComputeDevice, launcher: TrainingLauncher) -> dg.MaterializeResult:
        return train_stage(context, "classifier", params, mlflow, device, launcher, domain=role)

    return [domain_dataset, domain_evaluator, domain_classifier]


def translator_asset(family: str) -> dg.AssetsDefinition:
    spec = TRANSFER_SPECS[family]

    @dg.asset(key=translator_key(family), group_name=TRANSFER_GROUP, kinds={"pytorch", "mlflow"},
              deps=[stage_key(s) for s in upstream_stages("transfer", family)], code_version=code_version("transfer"),
              description=f"{family} ({spec.paper}): the source → target translator, trained on the two unpaired "
                          "domains on the shared trainer; metadata holds the final losses and source | translation "
                          "pairs.")
    def translator(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                   device: ComputeDevice, launcher: TrainingLauncher) -> dg.MaterializeResult:
        return train_stage(context, "transfer", params, mlflow, device, launcher, (f"transfer.family={family}",))

    return translator


def transfer_evaluation_asset(family: str) -> dg.AssetsDefinition:
    @dg.asset(key=transfer_evaluation_key(family), group_name=TRANSFER_GROUP, kinds={"pytorch", "mlflow"},
              deps=[stage_key(s, family) for s in upstream_stages("evaluate_transfer", family)],
              code_version=code_version("evaluate_transfer"),
              description=f"The {family} translator scored on held-out source images: transfer accuracy beside the "
                          "resize baseline, FID/KID against the target, pictures; registered as "
                          f"`ganops-<source>-to-<target>-{family}`, `champion` moved on a higher transfer accuracy.")
    def transfer_evaluation(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                            device: ComputeDevice) -> dg.MaterializeResult:
        return _materialized(run_stage(context, "evaluate_transfer", params, mlflow, device,
                                       (f"transfer.family={family}",)))

    return transfer_evaluation


TRANSFER = [*(a for role in DOMAINS for a in domain_assets(role)), *map(translator_asset, TRANSFER_SPECS),
            *map(transfer_evaluation_asset, TRANSFER_SPECS)]
ALL = [dataset_shards, dataset, embeddings_shards, embeddings, neighbors, *GENERATORS, evaluator, *EVALUATIONS, *CHAMPIONS, *ON_INSTANCES_EVALUATIONS,
       leaderboard, *TRANSFER]
