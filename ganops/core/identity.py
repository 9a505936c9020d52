"""What defines each artifact: the parameters its stage uses, and the artifacts it is built from.

An artifact's identity is the parameters its stage actually reads (DESIGN.md §3): a DCGAN
generator does not depend on `neighbors.k`, an IC-GAN one does. The same table gives the upstream
check of every stage, the DVC stages' `params` (a test compares them with dvc.yaml), the lock that
stops two identical runs racing, and the key of resumable checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ganops.catalog.families import SPECS, TRANSFER_SPECS
from ganops.core.params import DOMAINS, EvaluateParams, Params, TrainParams, TransferParams

STAGES = ("dataset", "embeddings", "neighbors", "train", "evaluator", "evaluate")
# Domain transfer: the dataset and evaluator stages run once per domain (``Params.domain``; an upstream
# named ``stage@role``), then the translator is trained and evaluated.
TRANSFER_STAGES = ("transfer", "evaluate_transfer")
DOMAIN_STAGES = ("dataset", "evaluator", "classifier")
# The domains each domain stage runs on: DTN's f (the classifier) is trained on the source alone.
_ROLES = {"classifier": ("source",)}
# An IC-GAN conditioned on another dataset's instances (on_instances.*), scored against that dataset; the
# families it applies to are those conditioned on instances.
ON_INSTANCES = "evaluate_on_instances"
ON_INSTANCES_FAMILIES = tuple(name for name, spec in SPECS.items() if spec.needs_neighbors)
# Stages whose artifact is one family's (train.* or transfer.* identity carries the family's name).
FAMILY_STAGES = ("train", "evaluate", ON_INSTANCES, *TRANSFER_STAGES)
# Every stage `ganops stage` runs, and those the trainer runs (on several processes where distributed.* asks).
# Named here, without torch, so that the command line parses and refuses bad input in a fraction of a second.
ALL_STAGES = (*STAGES, ON_INSTANCES, "classifier", *TRANSFER_STAGES)
TRAINING_STAGES = ("embeddings", "evaluator", "train", "classifier", "transfer")

# Sections each data stage reads as a whole.
_SECTIONS = {
    "dataset": ("seed", "data"),
    "embeddings": ("seed", "data", "embed"),
    "neighbors": ("seed", "data", "embed", "neighbors"),
    "evaluator": ("seed", "data", "evaluator"),
}
# Evaluate keys that decide what happens in the registry, never what the evaluation measures.
EVALUATE_RUN_ONLY = frozenset({"promote", "min_diversity"})

# Train (and transfer) keys that change how a run is scheduled or logged to MLflow, never the trained artifact.
TRAIN_RUN_ONLY = frozenset({"checkpoint_every", "sample_every"})
# Train keys a resumed run may change: they shape what is logged and previewed, not the weights (the
# trainer's checkpoint identity leaves them out). `steps` is not one of them: a killed 3,000-step run
# and a 60-step run are different runs, and neither may block the other's checkpoint or lock.
TRAIN_RESUMABLE = frozenset({"log_every", "grid_size"})
# Train keys that never change the weights at a given step: left out of the trainer's checkpoint identity.
TRAIN_SCHEDULE = TRAIN_RUN_ONLY | TRAIN_RESUMABLE | {"steps"}
# What the transfer evaluation reads of `evaluate`: it scores every held-out source image, so no sample count.
TRANSFER_EVALUATE_KEYS = ("seed", "batch_size", "kid_subsets", "kid_subset_size")
# What the evaluation on another dataset's instances reads of `evaluate`: its sample count is on_instances'.
ON_INSTANCES_EVALUATE_KEYS = (*TRANSFER_EVALUATE_KEYS, "pr_k", "dc_k")


def roles(stage: str) -> tuple[str, ...]:
    """The domains a domain stage runs on."""
    return _ROLES.get(stage, DOMAINS) if stage in DOMAIN_STAGES else ()


def uses_neighbors(family: str) -> bool:
    return family in SPECS and SPECS[family].needs_neighbors


def family_of(p: Params, stage: str) -> str:
    """The family a stage works for: `transfer.family` for the transfer stages, else `train.family`."""
    return p.transfer.family if stage in TRANSFER_STAGES else p.train.family


def split_name(name: str) -> tuple[str, str | None]:
    """``evaluator@source`` → (``evaluator``, ``source``); a plain stage name has no role."""
    stage, _, role = name.partition("@")
    return stage, role or None


def upstream_stages(stage: str, family: str | None = None) -> tuple[str, ...]:
    """The artifacts a stage reads, in chain order (``stage@role`` for a transfer domain's)."""
    if stage == "transfer":
        f = ("classifier@source",) if TRANSFER_SPECS[family or "dtn"].needs_source_classifier else ()
        return ("dataset@source", "dataset@target", *f)
    if stage == "evaluate_transfer":   # the source's judge reads translations back, where a family makes them
        back = ("evaluator@source",) if TRANSFER_SPECS[family or "dtn"].reversible else ()
        return ("dataset@source", "dataset@target", *back, "evaluator@target", "transfer")
    if stage == "classifier":
        return ("dataset",)
    if stage == "train":
        return ("dataset", "embeddings", "neighbors") if uses_neighbors(family or "") else ("dataset",)
    if stage == "evaluator":
        return ("dataset",)
    if stage in ("evaluate", ON_INSTANCES):
        return (*upstream_stages("train", family), "train", "evaluator")
    return STAGES[: STAGES.index(stage)]


def transfer_chain(family: str) -> tuple[str, ...]:
    """Every stage a translator's evaluation needs, in order (``stage@role`` for a domain's), and itself."""
    names = [*upstream_stages("transfer", family), *upstream_stages("evaluate_transfer", family),
             "evaluate_transfer"]
    return tuple(dict.fromkeys(names))   # the translator's inputs first, then its judges


def train_keys(family: str) -> list[str]:
    """`train.*` keys that shape a family's artifact (DCGAN has no condition, so no `h_dim`)."""
    unused = SPECS[family].unused_keys
    return [k for k in TrainParams.model_fields if k != "family" and k not in TRAIN_RUN_ONLY and k not in unused]


def transfer_keys(family: str) -> list[str]:
    """`transfer.*` keys that shape a translator (a DTN has no cycle loss, a CycleGAN no L_CONST)."""
    unused = TRANSFER_SPECS[family].unused_keys
    return [k for k in TransferParams.model_fields if k != "family" and k not in TRAIN_RUN_ONLY and k not in unused]


def keys(stage: str, family: str | None = None) -> list[str]:
    """Dotted parameter keys (whole sections where the stage reads all of one) of a stage's identity."""
    if stage == "transfer":       # the domains' keys are transfer.source/target and transfer.<role>_evaluator
        return ["seed", *(f"transfer.{k}" for k in transfer_keys(family or "dtn"))]
    if stage == "evaluate_transfer":   # the translator's identity, its judges', and how it is scored
        evaluators = [f"transfer.{split_name(n)[1]}_evaluator" for n in upstream_stages(stage, family)
                      if n.startswith("evaluator@")]
        return [*keys("transfer", family), *evaluators, *(f"evaluate.{k}" for k in TRANSFER_EVALUATE_KEYS)]
    if stage == "classifier":   # DTN's f on the source domain (data is transfer.source there)
        return ["seed", "data", "transfer.source_classifier"]
    if stage == "evaluate":   # the generator's identity, the evaluator's, and how it is scored
        evaluate = [f"evaluate.{k}" for k in EvaluateParams.model_fields if k not in EVALUATE_RUN_ONLY]
        return [*keys("train", family), "evaluator", *evaluate]
    if stage == ON_INSTANCES:   # the generator's identity, the evaluator's, the other dataset, how it is scored
        return [*keys("train", family), "evaluator", "on_instances", *(f"evaluate.{k}" for k in ON_INSTANCES_EVALUATE_KEYS)]
    if stage != "train":
        return list(_SECTIONS[stage])
    sections = ["seed", "data", *(("embed", "neighbors") if uses_neighbors(family or "") else ())]
    return [*sections, *(f"train.{k}" for k in train_keys(family or ""))]


def identity(p: Params, stage: str) -> dict[str, Any]:
    """The identity of the artifact ``stage`` makes from ``p`` (nested like params.yaml)."""
    dump = p.model_dump()
    out: dict[str, Any] = {}
    family = family_of(p, stage)
    for key in keys(stage, family):
        section, _, name = key.partition(".")
        if name:
            named = section in ("train", "transfer") and stage in FAMILY_STAGES
            out.setdefault(section, {"family": family} if named else {})[name] = dump[section][name]
        else:
            out[section] = dump[section]
    return out


def digest(obj: Any, length: int = 16) -> str:
    """A short stable hash of a JSON-able value (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def run_key(p: Params, stage: str, upstream: dict[str, str]) -> str:
    """What one run of a stage is: its identity without the keys a resumed run may change, and the
    content hashes of its inputs. Two runs with the same key share a checkpoint and a lock."""
    ident = identity(p, stage)
    for section in ("train", "transfer"):
        if section in ident:
            ident[section] = {k: v for k, v in ident[section].items() if k not in TRAIN_RESUMABLE}
    return digest({"stage": stage, "identity": ident, "upstream": upstream})
