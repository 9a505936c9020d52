"""Stage `evaluate_on_instances`: the IC-GAN of `train.family` conditioned on the instances of another dataset
(`on_instances.*`: a source name or a folder), scored as the IC-GAN paper scores its transfer: FID, KID,
precision/recall and density/coverage of the samples against that dataset's images in the evaluator's space,
beside the same model drawing from its own training instances (p(x)), and, where the two datasets share class
names, how often a sample keeps its instance's class (the evaluator's judgement).

The artifact is the report, its metrics and the instance | samples picture; the figures also go on the
generator's registered version (tags ``on_instances.<dataset>.<figure>``) when the evaluation registered it.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np

from ganops.core import artifacts as A
from ganops.core.device import resolve
from ganops.core.identity import ON_INSTANCES, ON_INSTANCES_FAMILIES
from ganops.core.params import Params, ParamsError
from ganops.evaluate import evaluator as E
from ganops.evaluate import on_instances
from ganops.evaluate.pictures import instances_grid
from ganops.stages import common as C
from ganops.tracking import registry
from ganops.tracking.runs import RunContext, stage_run

# sample_instances speaks of `ganops sample`'s flags and of data.* keys; this stage's user set on_instances.*
_FLAGS = (("pass --skip-corrupt", "set on_instances.skip_corrupt=true"), ("--instances-root", "on_instances.root"),
          ("--instances ", "on_instances.dataset="), ("data.download", "on_instances.download"),
          ("data.skip_corrupt", "on_instances.skip_corrupt"),
          ("pass --label to give them one", ("this evaluation gives each instance its own class, so use instances "
                                             "whose classes are named as the training's (a folder's sub-folders 0/ "
                                             "… 9/ for digits), or sample them with `ganops sample --instances … "
                                             "--label y`")))
SOURCES_SHOWN = 64     # report.json lists where the first instances came from, not all of a million


def _in_stage_terms(text: str, folder: bool) -> str:
    for flag, key in _FLAGS:
        text = text.replace(flag, key)
    # a folder is on_instances.dataset itself; a named source's files live under on_instances.root
    return text.replace("data.root", "on_instances.dataset" if folder else "on_instances.root")


def dataset_name(p: Params) -> str:
    """The other dataset as tags and the leaderboard name it: a source's name, a folder's last part."""
    spec = p.on_instances.dataset
    return re.sub(r"[^\w.-]", "_", spec if "/" not in spec else Path(spec).name or "folder")


def check_family(p: Params) -> None:
    if p.train.family not in ON_INSTANCES_FAMILIES:
        raise ParamsError(f"evaluate_on_instances conditions an IC-GAN on another dataset's instances; "
                          f"train.family={p.train.family} conditions on no instance: set train.family=icgan")


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    from ganops.commands.sample import SampleError, sample, sample_instances
    from ganops.core.errors import UserError

    check_family(p)
    ups = C.upstream(root, p, ON_INSTANCES)
    out = A.on_instances_dir(root, p)
    device = resolve(p.device)
    q, e = p.on_instances, p.evaluate
    with C.guarded(p, root, ON_INSTANCES, ups), stage_run(p, root, ON_INSTANCES, ctx) as run:
        t0 = time.perf_counter()
        try:
            got = sample_instances(p, root, q.dataset, per_instance=q.per_instance, seed=e.seed, data_root=q.root,
                                   limit=q.limit, skip_corrupt=q.skip_corrupt, download=q.download)
        except UserError as exc:
            raise SampleError(_in_stage_terms(str(exc), Path(q.dataset).expanduser().is_dir())) from None
        least = max(e.pr_k, e.dc_k) + 1      # the k-NN balls of precision/recall and density/coverage, and FID
        if len(got.instances) < least:
            raise SampleError(f"on_instances.dataset={q.dataset}: {len(got.instances)} instance(s); the figures need at "
                              f"least {least} (FID's covariance, the k-NN balls of evaluate.pr_k={e.pr_k} and "
                              f"evaluate.dc_k={e.dc_k}): point it at more images or raise on_instances.limit")
        own = sample(p, root, len(got.samples), e.seed)      # the same model on its own training instances
        ev = E.Evaluator.load(A.evaluator_dir(root, p) / "evaluator.pt", device)
        common = {"batch_size": e.batch_size, "kid_subsets": e.kid_subsets, "kid_subset_size": e.kid_subset_size,
                  "seed": e.seed, "pr_k": e.pr_k, "dc_k": e.dc_k}
        metrics = {**on_instances.named(on_instances.score(ev, got.instances, got.samples, instance_labels=got.labels,
                                                           per_instance=q.per_instance, **common)),
                   **on_instances.named(on_instances.score(ev, got.instances, own, **common), "own_"),
                   "n_instances": len(got.instances), "n_samples": len(got.samples)}
        digest = hashlib.sha256(np.ascontiguousarray(got.instances).data).hexdigest()[:16]
        details = {"dataset": q.dataset, "instances_hash": digest, "feature_space": {
            "fid_evaluator": f"{ev.kind} evaluator trained on {p.data.dataset} (the generator's training data)"},
            "rows": {"": f"samples conditioned on {q.dataset}'s instances, against its images",
                     "own_": f"the same model's draw from its own {p.data.dataset} instances, against {q.dataset}"},
            f"sources_first_{SOURCES_SHOWN}": got.sources[:SOURCES_SHOWN]}
        if q.dataset == p.data.dataset:
            details["note"] = (f"the instances are the training dataset {p.data.dataset} itself (its images the "
                               "generator was trained on, not another dataset's)")
        with A.atomic_dir(out) as tmp:
            instances_grid(tmp / "instances.png", got.instances, got.samples, q.per_instance)
            A.atomic_write_json(tmp / "report.json", {"metrics": metrics, **details})
            C.write_meta(tmp, p, ON_INSTANCES, ups, metrics,
                         extra={"instances_hash": digest, "feature_space": details["feature_space"]})
        run.metrics({"evaluate_seconds": time.perf_counter() - t0})
        result = C.finish(ON_INSTANCES, p, root, out, run, metrics, ("report.json",))
        if run.enabled:
            version = registry.version_of(p, root, ups["train"])
            if version:
                registry.annotate(p, root, version, metrics, f"on_instances.{dataset_name(p)}.")
                result.registered_model, result.model_version = registry.registered_model_name(p), version
    return result
