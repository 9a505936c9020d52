"""The MLflow model registry: one registered model per dataset and family (``ganops-<dataset>-<family>``),
a version per evaluated generator, and the ``champion`` alias on the best one. Translators (``kind``
transfer) have theirs per domain pair and family (``ganops-<source>-to-<target>-<family>``), ranked by
transfer accuracy.

A training run logs its generator (``tracking.runs.log_generator``); the evaluation registers it as a new
version whose tags hold its metrics, the feature space they were measured in and the sample count.
``decide`` compares a version with the champion on the primary metric (FID in the evaluator's space),
only when both were measured in the same space with the same sample count; ``promote`` moves the
alias and records the decision and both figures on the version and on the evaluation's run.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ganops.core.errors import UserError
from ganops.core.params import Params
from ganops.tracking.runs import GENERATOR_TAG, registered_model_name
from ganops.tracking.store import check_store, tracking_uri

log = logging.getLogger(__name__)

ALIAS = "champion"
PRIMARY = "fid_evaluator"                 # generators: lower is better
# What ranks each kind of model, and whether higher is better.
RANKING = {"generator": (PRIMARY, False), "transfer": ("transfer_accuracy", True)}
SPACE_TAG = "ganops.evaluator_hash"       # the evaluator artifact that defines the feature space
SAMPLES_TAG = "ganops.n_samples"
RUN_TAG = "ganops.evaluation_run"


class RegistryError(UserError, RuntimeError):
    """The registry cannot serve a request: the message names the model, the version or alias, and the fix."""


@dataclass
class Decision:
    model: str
    version: str
    promote: bool
    reason: str
    challenger: float | None = None
    champion: float | None = None
    champion_version: str | None = None
    metric: str = PRIMARY           # what challenger and champion are

    def as_tags(self) -> dict[str, str]:
        short = "fid" if self.metric == PRIMARY else self.metric
        return {"ganops.decision": "promoted" if self.promote else "not promoted",
                "ganops.decision_reason": self.reason,
                f"ganops.champion_{short}_at_decision": "" if self.champion is None else f"{self.champion:.6g}",
                "ganops.champion_version_at_decision": self.champion_version or ""}


def mlflow_client(p: Params, root: Path):
    import mlflow
    from mlflow.tracking import MlflowClient

    check_store(p, root)
    mlflow.set_tracking_uri(tracking_uri(p, root))
    return MlflowClient()


def _find_logged_model(client: Any, generator_hash: str):
    with contextlib.suppress(Exception):
        exps = [e.experiment_id for e in client.search_experiments()]
        found = client.search_logged_models(exps, filter_string=f"tags.`{GENERATOR_TAG}` = '{generator_hash}'",
                                            max_results=1)
        return found[0] if found else None
    return None


def logged_model(p: Params, root: Path, generator_hash: str):
    """The MLflow logged model of the generator (or translator) artifact with this content hash, or None."""
    return _find_logged_model(mlflow_client(p, root), generator_hash)


def _version_of(client: Any, name: str, generator_hash: str):
    """The version already registered for this generator (re-evaluating must not add a twin version)."""
    with contextlib.suppress(Exception):
        for mv in client.search_model_versions(f"name = '{name}'"):
            if mv.tags.get(GENERATOR_TAG) == generator_hash:
                return mv
    return None


def version_of(p: Params, root: Path, generator_hash: str, kind: str = "generator") -> str | None:
    mv = _version_of(mlflow_client(p, root), registered_model_name(p, kind), generator_hash)
    return None if mv is None else str(mv.version)


def _tag_values(metrics: dict[str, Any], prefix: str = "metric.") -> dict[str, str]:
    return {f"{prefix}{k}": f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def register(p: Params, root: Path, run: Any, generator_dir: Path, generator_hash: str, evaluator_hash: str,
             metrics: dict[str, Any], kind: str = "generator", n_samples: int | None = None) -> str | None:
    """Register the generator (``kind`` transfer: the translator) as a version of its model (logging it
    first when its training run did not, e.g. tracking was off then) with the evaluation's figures as tags;
    returns the version."""
    if not run.enabled:
        return None
    from ganops.models import load_model
    from ganops.tracking.runs import log_generator

    client = mlflow_client(p, root)
    name = registered_model_name(p, kind)
    samples = p.evaluate.n_samples if n_samples is None else n_samples
    tags = {GENERATOR_TAG: generator_hash, SPACE_TAG: evaluator_hash, SAMPLES_TAG: str(samples),
            RUN_TAG: run.run_id or "", **_tag_values(metrics)}
    mv = _version_of(client, name, generator_hash)
    if mv is None:
        logged = _find_logged_model(client, generator_hash)
        model_id = logged.model_id if logged else log_generator(run, load_model(generator_dir / "model.pt", kind=kind),
                                                                generator_dir / "model.pt", generator_hash,
                                                                "translator" if kind == "transfer" else "generator")
        what = (f"{p.transfer.family} translators from {p.transfer.source.dataset} to {p.transfer.target.dataset}"
                if kind == "transfer" else f"{p.train.family} generators of the {p.data.dataset} dataset")
        with contextlib.suppress(Exception):   # the name may exist already: create_registered_model is not idempotent
            client.create_registered_model(name, description=f"{what}; `{ALIAS}` is the best by {RANKING[kind][0]}.")
        # the client, not mlflow.register_model: that one tries to create the name again and prints that it exists
        mv = client.create_model_version(name, f"models:/{model_id}", tags=tags, model_id=model_id)
    else:
        for key, value in tags.items():
            client.set_model_version_tag(name, mv.version, key, value)
    return str(mv.version)


def annotate(p: Params, root: Path, version: str, figures: dict[str, Any], prefix: str,
             kind: str = "generator") -> None:
    """Another evaluation's figures (an IC-GAN on another dataset's instances) as tags ``<prefix><figure>`` of a
    registered version, beside the ``metric.*`` its own evaluation registered it with (the champion is decided
    on those alone)."""
    client = mlflow_client(p, root)
    for key, value in _tag_values(figures, prefix).items():
        client.set_model_version_tag(registered_model_name(p, kind), version, key, value)


def champion(p: Params, root: Path, kind: str = "generator") -> Any | None:
    client = mlflow_client(p, root)
    with contextlib.suppress(Exception):
        return client.get_model_version_by_alias(registered_model_name(p, kind), ALIAS)
    return None


def score(mv: Any, metric: str = PRIMARY) -> float | None:
    """The version's figure of ``metric`` (its tag), or None."""
    with contextlib.suppress(KeyError, ValueError, TypeError):
        return float(mv.tags[f"metric.{metric}"])
    return None


def decide(p: Params, root: Path, version: str, healthy: bool = True, health: str = "",
           rescore: Callable[[dict[str, Any]], float | None] | None = None, kind: str = "generator") -> Decision:
    """Whether ``version`` should become the champion: it must be healthy and beat the champion's FID
    (translators: transfer accuracy) in the same evaluator space with the same sample count. A champion
    scored in another space (the evaluator was rebuilt, or evaluate.n_samples changed) is scored again in
    this one with ``rescore`` (its registered weights → the figure); without a comparable one the champion
    stays."""
    client = mlflow_client(p, root)
    name = registered_model_name(p, kind)
    metric, higher = RANKING[kind]
    mv = client.get_model_version(name, version)
    fid = score(mv, metric)
    current = champion(p, root, kind)
    held = None if current is None else str(current.version)
    other = None if current is None else score(current, metric)

    def verdict(promote: bool, reason: str, challenger=fid, champ=other, version_held=held) -> Decision:
        return Decision(name, version, promote, reason, challenger, champ, version_held, metric)

    if not healthy:
        keeps = (" (it holds `champion` from an earlier evaluation and keeps it: no other version has shown it "
                 "can do better; move the alias by hand to retire it)") if held == str(version) else ""
        return verdict(False, f"failed the health check: {health}{keeps}")
    if fid is None or not math.isfinite(fid):
        return verdict(False, f"{metric} is missing or not finite ({fid})")
    if current is None:
        return verdict(True, "no champion yet", champ=None, version_held=None)
    if held == str(version):
        return verdict(True, "already the champion", champ=fid)
    same_space = (current.tags.get(SPACE_TAG) == mv.tags.get(SPACE_TAG)
                  and current.tags.get(SAMPLES_TAG) == mv.tags.get(SAMPLES_TAG))
    note = ""
    if other is None or not same_space:
        other = None
        if rescore is not None:
            with contextlib.suppress(RegistryError, ValueError, RuntimeError, KeyError):
                other = rescore(load_weights(p, root, held, kind)[0])
        if other is None or not math.isfinite(other):
            return verdict(False, f"champion v{held} was scored in another evaluator space or sample count and "
                           "cannot be scored in this one; it stays champion (move the alias by hand if the new "
                           "figure should win)", champ=None)
        note = " (champion re-scored in this evaluator space)"
    if (fid > other) if higher else (fid < other):
        return verdict(True, f"{metric} {fid:.4g} beats the champion's {other:.4g}{note}", champ=other)
    return verdict(False, f"{metric} {fid:.4g} does not beat the champion's {other:.4g}{note}", champ=other)


def record(p: Params, root: Path, decision: Decision, apply: bool) -> Decision:
    """Write the decision on the version and on its evaluation run; move the alias when ``apply``."""
    client = mlflow_client(p, root)
    mv = client.get_model_version(decision.model, decision.version)
    moved = decision.promote and apply
    tags = decision.as_tags()
    if decision.promote and not apply:
        tags["ganops.decision"] = "would promote (evaluate.promote=false)"
    for key, value in tags.items():
        client.set_model_version_tag(decision.model, decision.version, key, value)
    if moved:
        client.set_registered_model_alias(decision.model, ALIAS, decision.version)
        log.info("registry: %s v%s is the %s (%s)", decision.model, decision.version, ALIAS, decision.reason)
    else:
        log.info("registry: %s v%s: %s", decision.model, decision.version, decision.reason)
    run_id = mv.tags.get(RUN_TAG)
    if run_id:
        with contextlib.suppress(Exception):
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            if decision.champion is not None:
                short = "fid" if decision.metric == PRIMARY else decision.metric
                client.log_metric(run_id, f"champion_{short}_at_decision", decision.champion)
            client.log_metric(run_id, "promoted", float(moved))
    return decision


def decision_dict(decision: Decision) -> dict[str, Any]:
    return asdict(decision)


def resolve(p: Params, root: Path, ref: str, kind: str = "generator") -> Any:
    """``champion`` (the alias) or a version number → the model version, with a clear error."""
    client = mlflow_client(p, root)
    name = registered_model_name(p, kind)
    versions, aliases = [], {}
    with contextlib.suppress(Exception):   # MLflow raises its own exception types for a missing model
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        aliases = client.get_registered_model(name).aliases
    have = (f"versions: {', '.join(map(str, versions))}" if versions else "no versions yet") + "".join(
        f"; {a} is v{v}" for a, v in sorted(aliases.items()))
    if not ref.isdigit() and ref != ALIAS:
        raise RegistryError(f"--model {ref}: not an alias or a version of {name}; give `{ALIAS}` (the alias) or a "
                            f"version number ({have})")
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except Exception as exc:   # MLflow raises its own exception types for a missing model/alias/version
        hint = ("run `ganops stage evaluate_transfer` to register and rank translators" if kind == "transfer"
                else "run `ganops stage evaluate` to register and rank generators")
        if versions and not ref.isdigit():
            last = client.get_model_version(name, str(versions[-1])).tags.get("ganops.decision_reason", "")
            hint = (f"no version was promoted yet (v{versions[-1]}: {last or 'not decided'}); train longer, or "
                    "lower evaluate.min_diversity if the gate is too strict for short runs")
        raise RegistryError(f"--model {ref}: {name} has no {'version' if ref.isdigit() else 'alias'} {ref} "
                            f"({have}); {hint}") from exc


def load_weights(p: Params, root: Path, ref: str, kind: str = "generator") -> tuple[dict[str, Any], Any]:
    """The weights of a registered version (``models:/ganops-<dataset>-<family>@champion`` or a version),
    read from its model.pt with ``weights_only=True``: nothing from the registry is unpickled."""
    import mlflow

    from ganops.models.weights import load_weights as load_file

    mv = resolve(p, root, ref, kind)
    uri = f"models:/{registered_model_name(p, kind)}/{mv.version}"
    try:
        local = Path(mlflow.artifacts.download_artifacts(f"{uri}"))
    except Exception as exc:
        raise RegistryError(f"--model {ref}: cannot download {uri} ({exc})") from exc
    files = sorted(local.rglob("model.pt"))
    if not files:
        raise RegistryError(f"--model {ref}: {uri} holds no model.pt (registered by another tool?); "
                            "register generators with `ganops stage evaluate`")
    return load_file(files[0]), mv
