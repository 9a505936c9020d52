"""Stage `evaluate_transfer`: score the translator of `transfer.family` on the held-out source images
(transfer accuracy by the target's evaluator, beside the resize baseline; FID/KID against the target;
CycleGAN's cycle error and label preservation both ways), write the report and pictures, then register
the translator and decide whether it becomes the champion (on transfer accuracy)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ganops.catalog.families import TRANSFER_SPECS
from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.params import Params
from ganops.data import store
from ganops.evaluate import evaluator as E
from ganops.evaluate.transfer import TransferInputs, evaluate_transfer, transfer_accuracy
from ganops.models import load_model
from ganops.stages import common as C
from ganops.tracking import registry
from ganops.tracking.runs import RunContext, stage_run

KIND = "transfer"


def _inputs(p: Params, root: Path, device) -> TransferInputs:

    ps, pt = p.domain("source"), p.domain("target")
    tdir = A.translator_dir(root, p)
    source, source_labels = store.load_holdout(A.dataset_dir(root, ps))
    target, target_labels = store.load_holdout(A.dataset_dir(root, pt))
    if not len(source):
        raise A.ArtifactError(f"{A.dataset_dir(root, ps)} holds no held-out images to translate: set "
                              "transfer.source.holdout above 0 and rebuild the source dataset")
    history = json.loads((tdir / "history.json").read_text()) if (tdir / "history.json").exists() else []
    edir_t = A.evaluator_dir(root, pt)
    return TransferInputs(model=load_model(tdir / "model.pt", device, kind="transfer"), source=source, source_labels=source_labels,
                          target=target, target_labels=target_labels,
                          target_features=A.load_npy(edir_t / "features.npy", "evaluator", mmap=False),
                          target_evaluator=E.Evaluator.load(edir_t / "evaluator.pt", device),
                          source_evaluator=(E.Evaluator.load(A.evaluator_dir(root, ps) / "evaluator.pt", device)
                                            if TRANSFER_SPECS[p.transfer.family].reversible else None),
                          history=history)


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    ups = C.upstream(root, p, "evaluate_transfer")
    out = A.transfer_evaluation_dir(root, p)
    device = resolve(p.device)
    with C.guarded(p, root, "evaluate_transfer", ups), stage_run(p, root, "evaluate_transfer", ctx) as run:
        t0 = time.perf_counter()
        x = _inputs(p, root, device)
        with A.atomic_dir(out) as tmp:
            report = evaluate_transfer(x, p, tmp)
            A.atomic_write_json(tmp / "report.json", {"metrics": report.metrics, **report.details})
            C.write_meta(tmp, p, "evaluate_transfer", ups, report.metrics,
                         extra={"feature_space": report.details["feature_space"]})
        run.metrics({"evaluate_seconds": time.perf_counter() - t0})
        result = C.finish("evaluate_transfer", p, root, out, run, report.metrics, ("report.json",))
        result.registered_model = registry.registered_model_name(p, KIND) if run.enabled else None
        result.model_version = registry.register(p, root, run, A.translator_dir(root, p), ups["transfer"],
                                                 ups["evaluator@target"], report.metrics, kind=KIND,
                                                 n_samples=len(x.source))
        if result.model_version:
            decision = registry.record(p, root, _decision(p, root, result.model_version), apply=p.evaluate.promote)
            result.decision = registry.decision_dict(decision)
    return result


def _decision(p: Params, root: Path, version: str) -> registry.Decision:
    from ganops.tracking import checks

    gate = checks.promotion_gate(A.transfer_evaluation_dir(root, p), p.evaluate.min_diversity)

    def rescore(weights: dict) -> float:
        device = resolve(p.device)
        return transfer_accuracy(load_model(weights, device), _inputs(p, root, device), p)

    return registry.decide(p, root, version, gate.passed, gate.description, rescore=rescore, kind=KIND)
