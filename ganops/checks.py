"""Data-quality checks of finished artifacts, shared by Dagster's asset checks and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WEAK_JUDGE = 0.8   # a target evaluator below this on its own held-out images makes transfer accuracy noise


@dataclass
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def dataset_not_empty(directory: Path) -> Outcome:
    path = Path(directory) / "images.npy"
    if not path.exists():
        return Outcome(False, f"{path} is missing")
    images = np.load(path, mmap_mode="r")
    n = int(images.shape[0]) if images.ndim == 4 else 0
    ok = n > 0 and images.dtype == np.uint8
    return Outcome(ok, f"{n} images, {images.dtype}, shape {tuple(images.shape)}",
                   {"n_images": n, "shape": str(tuple(images.shape))})


def features_finite_unit_norm(directory: Path, tol: float = 1e-3, chunk: int = 65536) -> Outcome:
    path = Path(directory) / "features.npy"
    if not path.exists():
        return Outcome(False, f"{path} is missing")
    feats = np.load(path, mmap_mode="r")
    bad_finite = 0
    worst = 0.0
    for start in range(0, feats.shape[0], chunk):  # chunked: features may not fit twice in memory
        block = np.asarray(feats[start:start + chunk], dtype=np.float32)
        finite = np.isfinite(block).all(axis=1)
        bad_finite += int((~finite).sum())
        if finite.any():
            norms = np.linalg.norm(block[finite], axis=1)
            worst = max(worst, float(np.abs(norms - 1).max()))
    ok = bad_finite == 0 and worst <= tol and feats.shape[0] > 0
    return Outcome(ok, f"{bad_finite} non-finite rows; max |‖x‖−1| = {worst:.2e} (tolerance {tol})",
                   {"non_finite_rows": bad_finite, "max_norm_error": worst, "n": int(feats.shape[0])})


def neighbors_valid(directory: Path) -> Outcome:
    path = Path(directory) / "indices.npy"
    if not path.exists():
        return Outcome(False, f"{path} is missing")
    idx = np.load(path, mmap_mode="r")
    n = idx.shape[0]
    out_of_range = int(((idx < 0) | (idx >= n)).sum())
    self_hits = int((idx == np.arange(n)[:, None]).sum())
    ok = out_of_range == 0 and self_hits == 0
    return Outcome(ok, f"{out_of_range} indices out of [0, {n}), {self_hits} instances listed as their own neighbor",
                   {"out_of_range": out_of_range, "self_neighbors": self_hits, "n": int(n), "k": int(idx.shape[1])})


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
    the champion is the registry's decision (ganops.registry.decide)."""
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
