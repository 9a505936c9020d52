"""Stage `evaluate`: score the generator of `train.family` in the evaluator's feature space (and
Inception's when its weights are present), write the report and the pictures, then register the
generator as a version of its MLflow model and decide whether it becomes the champion.

The artifact holds only what the inputs determine (metrics, report.json, pictures); the registry
decision depends on what else was registered before, so it lives in the registry and the MLflow run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
from ganops.evaluate import evaluator as E
from ganops.evaluate import inception
from ganops.evaluate.leaderboard import leaderboard
from ganops.evaluate.report import Inputs, evaluate
from ganops.stages import common as C
from ganops.tracking import registry
from ganops.tracking.runs import RunContext, stage_run


def _inputs(p: Params, root: Path, device) -> Inputs:
    from ganops.embed.api import embed_as_dataset
    from ganops.models import load_model
    from ganops.neighbors import search as nb

    src, gdir, edir = A.dataset_dir(root, p), A.generator_dir(root, p), A.evaluator_dir(root, p)
    held, held_labels = store.load_holdout(src)
    history = json.loads((gdir / "history.json").read_text()) if (gdir / "history.json").exists() else []
    x = Inputs(model=load_model(gdir / "model.pt", device, kind="generator"), images=store.load_images(src), labels=store.load_labels(src),
               held_images=held, held_labels=held_labels,
               real_features=A.load_npy(edir / "features.npy", "evaluator", mmap=False),
               held_features=A.load_npy(edir / "holdout_features.npy", "evaluator", mmap=False),
               evaluator=E.Evaluator.load(edir / "evaluator.pt", device), history=history)
    if x.model.conditions.instance:
        x.h = store.load_features(A.embeddings_dir(root, p))
        x.neighbors, _ = nb.load_neighbors(A.neighbors_dir(root, p))
        x.embed_held = lambda images: embed_as_dataset(images, p, root)
    if p.evaluate.inception == "auto":
        x.inception_weights = inception.find_weights()
        x.inception_note = "" if x.inception_weights else inception.missing_message()
    else:
        x.inception_note = "evaluate.inception=off"
    return x


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    ups = C.upstream(root, p, "evaluate")
    out = A.evaluation_dir(root, p)
    device = resolve(p.device)
    with C.guarded(p, root, "evaluate", ups), stage_run(p, root, "evaluate", ctx) as run:
        t0 = time.perf_counter()
        x = _inputs(p, root, device)
        run.dataset(A.dataset_dir(root, p), p.data.dataset, ups["dataset"], context="evaluation")
        with A.atomic_dir(out) as tmp:
            report = evaluate(x, p, tmp, device)
            A.atomic_write_json(tmp / "report.json", {"metrics": report.metrics, **report.details})
            C.write_meta(tmp, p, "evaluate", ups, report.metrics,
                         extra={"feature_space": report.details["feature_space"], "evaluator_kind": x.evaluator.kind})
        run.metrics({"evaluate_seconds": time.perf_counter() - t0})
        result = C.finish("evaluate", p, root, out, run, report.metrics, ("report.json",))
        board = leaderboard(root, p)
        run.table(board, "leaderboard.json")
        result.registered_model = registry.registered_model_name(p) if run.enabled else None
        result.model_version = registry.register(p, root, run, A.generator_dir(root, p), ups["train"],
                                                 ups["evaluator"], report.metrics)
        if result.model_version:
            result.decision = registry.decision_dict(_decide(p, root, result.model_version, p.evaluate.promote))
    return result


def decision(p: Params, root: Path, version: str) -> registry.Decision:
    """The promotion gate, then the registry's comparison with the champion (re-scored in this evaluator's
    space when it was scored in another)."""
    from ganops.tracking import checks

    gate = checks.promotion_gate(A.evaluation_dir(root, p), p.evaluate.min_diversity)
    return registry.decide(p, root, version, gate.passed, gate.description, rescore=_rescorer(p, root))


def _decide(p: Params, root: Path, version: str, apply: bool) -> registry.Decision:
    return registry.record(p, root, decision(p, root, version), apply=apply)


def _rescorer(p: Params, root: Path):
    """FID of other weights in this evaluation's space: same evaluator, real features, sample count, seed."""
    def fid_of(weights: dict) -> float:
        from ganops.evaluate import metrics as M
        from ganops.models import load_model

        device = resolve(p.device)
        x = _inputs(p, root, device)
        e = p.evaluate
        model = load_model(weights, device, kind="generator")
        y, h, _ = model.data_conditions(e.n_samples, e.seed, x.h, x.labels)
        fake = model.generate(e.n_samples, seed=e.seed, labels=y, features=h, batch_size=e.batch_size)
        return M.fid(x.real_features, x.evaluator.features(fake, e.batch_size))

    return fid_of


def _evaluated_version(p: Params, root: Path) -> str | None:
    """The registered version of the generator whose evaluation is on disk (None: not registered)."""
    out = A.evaluation_dir(root, p)
    if not (out / A.META).exists():
        raise A.ArtifactError(f"{out} does not exist: run `ganops stage evaluate` first")
    return registry.version_of(p, root, A.read_meta(out, produced_by="evaluate")["upstream"]["train"])


def promote(p: Params, root: Path) -> registry.Decision:
    """The champion/challenger decision for the evaluated generator of ``p``, applied (Dagster's
    `champion` asset, after the blocking promotion gate passed)."""
    version = _evaluated_version(p, root)
    if version is None:
        raise registry.RegistryError(f"the generator evaluated in {A.evaluation_dir(root, p)} is not registered "
                                     "(tracking.enabled is false?): run `ganops stage evaluate` with tracking on")
    return _decide(p, root, version, True)


def promotion_gate(p: Params, root: Path):
    """What Dagster's blocking check asks, decided nowhere else: the health gate and, when the generator is
    registered, whether it beats the champion. Returns a ``ganops.tracking.checks.Outcome``."""
    from ganops.tracking import checks

    out = A.evaluation_dir(root, p)
    outcome = checks.promotion_gate(out, p.evaluate.min_diversity)
    if not (outcome.passed and p.tracking.enabled and (out / A.META).exists()):
        return outcome
    version = _evaluated_version(p, root)
    if version is None:
        return outcome
    d = decision(p, root, version)
    return checks.Outcome(d.promote, d.reason, {**outcome.metadata, "challenger_fid": d.challenger,
                                                "champion_fid": d.champion, "version": version})
