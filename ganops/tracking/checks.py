"""Data-quality checks of finished artifacts, shared by Dagster's asset checks and the tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core.artifacts import ArtifactError
from ganops.neighbors.validity import NORM_TOLERANCE, inspect_features, inspect_neighbors

WEAK_JUDGE = 0.8   # a target evaluator below this on its own held-out images makes transfer accuracy noise


@dataclass
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def dataset_not_empty(directory: Path) -> Outcome:
    from ganops.data import store

    try:
        images = store.load_images(directory)
    except ArtifactError as exc:
        return Outcome(False, str(exc))
    n = len(images)
    return Outcome(n > 0, f"{n} images, {images.dtype}, shape {tuple(images.shape)}",
                   {"n_images": n, "shape": str(tuple(images.shape))})


def features_finite_unit_norm(directory: Path, tol: float = NORM_TOLERANCE) -> Outcome:
    from ganops.data import store

    try:
        features = store.load_features(directory)
    except ArtifactError as exc:
        return Outcome(False, str(exc))
    found = inspect_features(features, tol)
    bad, worst = len(found.non_finite_rows), found.max_norm_error
    return Outcome(found.valid, f"{bad} non-finite rows; max |‖x‖−1| = {worst:.2e} (tolerance {tol})",
                   {"non_finite_rows": bad, "max_norm_error": worst, "n": found.n})


def neighbors_valid(directory: Path) -> Outcome:
    path = Path(directory) / "indices.npy"
    if not path.exists():
        return Outcome(False, f"{path} is missing")
    idx = np.load(path, mmap_mode="r")
    found = inspect_neighbors(idx, int(idx.shape[0]))
    out, selfs = len(found.out_of_range_rows), len(found.self_rows)
    return Outcome(found.valid, f"{out} rows with indices out of [0, {found.n}), {selfs} instances listed as their "
                                f"own neighbor", {"out_of_range_rows": out, "self_neighbor_rows": selfs, "n": found.n,
                                                  "k": found.k})


def neighbors_distinct(directory: Path) -> Outcome:
    """Neighbors are closer than random pairs by a margin (a collapsed encoder makes every pair look alike)."""
    from ganops.neighbors.diagnostics import MIN_MARGIN, collapse

    path = Path(directory) / "diagnostics.json"
    if not path.exists():
        return Outcome(False, f"{path} is missing")
    diag = json.loads(path.read_text())
    if "similarity_margin" not in diag:
        return Outcome(False, f"{path} has no random-pair similarity (built by an older ganops): run `ganops stage "
                              "neighbors` again")
    why = collapse(diag)
    keys = ("similarity_mean", "similarity_random_mean", "similarity_margin", "purity_at_10")
    return Outcome(why is None, why or f"neighbors' mean similarity {diag['similarity_mean']:.3f} against random "
                                       f"pairs' {diag['similarity_random_mean']:.3f} (margin ≥ {MIN_MARGIN})",
                   {k: float(diag[k]) for k in keys if k in diag})


def generator_healthy(directory: Path, n: int = 64, min_std: float = 2.0) -> Outcome:
    """G's weights are finite and its samples vary (a collapsed G draws one image whatever z is).

    Conditions are synthetic but valid: labels 0..C-1 in turn, random unit vectors for IC-GAN's h;
    the check asks whether G is usable, not whether it matches any instance.
    """

    from ganops.models import load_model

    path = Path(directory) / "model.pt"
    if not path.exists():
        return Outcome(False, f"{path} is missing")
    model = load_model(path, kind="generator")
    non_finite = model.non_finite_weights()
    c = model.conditions
    labels = np.arange(n) % c.n_classes if c.label else None
    h = None
    if c.instance:
        h = np.random.default_rng(0).standard_normal((n, c.feat_dim)).astype(np.float32)
        h /= np.linalg.norm(h, axis=1, keepdims=True)
    samples = model.generate(n, seed=0, labels=labels, features=h).astype(np.float32)
    spread = float(samples.std(axis=0).mean())  # per-pixel spread across samples, in grey levels
    ok = non_finite == 0 and spread >= min_std
    return Outcome(ok, f"{non_finite} non-finite weights; samples vary by {spread:.1f} grey levels per pixel "
                       f"(at least {min_std} wanted)",
                   {"non_finite_weights": non_finite, "sample_spread": spread,
                    "steps": int(model.weights.get("steps", 0))})


def promotion_gate(evaluation: Path, min_diversity: float = 0.2) -> Outcome:
    """What a generator must show before it may become the champion: finite weights and samples that are
    not collapsed (their spread in the evaluator's space at least ``min_diversity`` of the real images')
    and a finite FID (a translator: its translations' spread, and a finite transfer accuracy from a judge
    that reads the target's own held-out images right, where the target has a classifier). Whether it beats
    the champion is the registry's decision (ganops.tracking.registry.decide)."""
    import json
    import math

    path = Path(evaluation) / "report.json"
    if not path.exists():
        return Outcome(False, f"{path} is missing: run `ganops stage evaluate`")
    m = json.loads(path.read_text())["metrics"]
    problems = []
    if m.get("non_finite_weights", 1) > 0:
        problems.append(f"{int(m.get('non_finite_weights', 0))} non-finite weights")
    diversity = m.get("diversity_ratio_evaluator", 0)
    if not diversity >= min_diversity:
        problems.append(f"samples collapsed (diversity {diversity:.3f} of the real images', "
                        f"at least {min_diversity} wanted)")
    primary = "transfer_accuracy" if "fid_target" in m else "fid_evaluator"
    judge = m.get("target_holdout_accuracy")
    if isinstance(judge, (int, float)) and judge < WEAK_JUDGE:   # its ranking of translators would be noise
        problems.append(f"the judge reads only {judge:.0%} of the target's held-out images right (at least "
                        f"{WEAK_JUDGE:.0%} wanted: train transfer.target_evaluator longer)")
    fid = m.get(primary)
    if not isinstance(fid, (int, float)) or not math.isfinite(fid):
        problems.append(f"{primary} is {fid}")
        fid = float("nan")
    return Outcome(not problems, "; ".join(problems) or
                   f"finite weights, diversity {diversity:.3f}, {primary} {fid:.4g}",
                   {"diversity_ratio_evaluator": diversity, primary: fid,
                    "non_finite_weights": m.get("non_finite_weights")})
