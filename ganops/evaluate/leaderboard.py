"""The leaderboard: every family evaluated on a dataset, in one table (for the evaluation's MLflow
run, the Dagster asset's metadata and `ganops leaderboard`), best FID in the evaluator space first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ganops.catalog.families import SPECS
from ganops.core import artifacts as A
from ganops.core.params import Params

COLUMNS = ("fid_evaluator", "kid_evaluator_mean", "precision_evaluator", "recall_evaluator", "density_evaluator",
           "coverage_evaluator", "label_accuracy", "label_accuracy_min", "label_accuracy_swapped", "instance_label_agreement",
           "heldout_instance_precision_evaluator", "near_copy_fraction_pixels", "ppl_evaluator",
           "probe_discriminator", "probe_pixels", "d_rt_train", "d_rt_holdout", "d_rv", "fid_inception",
           "on_instances", "fid_on_instances", "own_fid_on_instances", "label_agreement_on_instances")
# An IC-GAN's evaluation on another dataset's instances (stage evaluate_on_instances) → its leaderboard columns.
ON_INSTANCES_COLUMNS = {"fid_evaluator": "fid_on_instances", "own_fid_evaluator": "own_fid_on_instances",
                        "label_agreement": "label_agreement_on_instances"}


def leaderboard(root: Path, p: Params) -> list[dict[str, Any]]:
    """One row per family whose evaluation exists for these parameters (IC-GAN: this encoder and k)."""
    rows = []
    for family in SPECS:
        directory = A.evaluation_dir(root, p, family)
        if not (directory / A.META).exists():
            continue
        meta = A.read_meta(directory)
        metrics = meta.get("metrics", {})
        variant = family
        if meta.get("params", {}).get("train", {}).get("class_conditional"):    # in the identity of those it shapes
            variant = f"{family} (class-conditional)"
        rows.append({"family": variant, "steps": meta.get("params", {}).get("train", {}).get("steps"),
                     **_registry_columns(root, p, family, meta["upstream"].get("train")),
                     **{c: metrics.get(c) for c in COLUMNS if c in metrics},
                     **_on_instances(root, p, family, meta["upstream"].get("train"))})
    return sorted(rows, key=lambda r: (r.get("fid_evaluator") is None, r.get("fid_evaluator") or 0.0))


def _on_instances(root: Path, p: Params, family: str, generator_hash: str | None) -> dict[str, Any]:
    """The row's generator scored on another dataset's instances, when that evaluation is of this generator."""
    directory = A.on_instances_dir(root, p, family)
    if not (directory / A.META).exists():
        return {}
    meta = A.read_meta(directory)
    if meta.get("upstream", {}).get("train") != generator_hash:
        return {}
    figures = meta.get("metrics", {})
    return {"on_instances": meta.get("params", {}).get("on_instances", {}).get("dataset"),
            **{col: figures[key] for key, col in ON_INSTANCES_COLUMNS.items() if key in figures}}


def _registry_columns(root: Path, p: Params, family: str, generator_hash: str | None) -> dict[str, Any]:
    """Which registered version the row's generator is, and whether it is the champion."""
    if not p.tracking.enabled or not generator_hash:
        return {}
    import contextlib

    from ganops.tracking import registry

    q = p.model_copy(update={"train": p.train.model_copy(update={"family": family})})
    with contextlib.suppress(Exception):   # an unreachable tracking server must not hide the table
        version = registry.version_of(q, root, generator_hash)
        held = registry.champion(q, root)
        return {"version": version or "–", "champion": "yes" if held and str(held.version) == version else ""}
    return {}


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown (Dagster's metadata, the terminal)."""
    if not rows:
        return "no evaluation yet: run `ganops stage evaluate` (per family) or `dvc repro`"
    cols = ["family", "steps", *(c for c in ("version", "champion") if any(c in r for r in rows)),
            *(c for c in COLUMNS if any(c in r for r in rows))]
    fmt = lambda v: "–" if v is None or (isinstance(v, float) and math.isnan(v)) else (  # noqa: E731
        f"{v:.4g}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
