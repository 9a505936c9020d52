"""Conditional families: does a sample show the class it was asked for?

The evaluator classifier judges samples generated per requested label: accuracy per label and
overall. For the class-conditional IC-GAN both ways of asking (Casanova et al. 2021, class swap):
own-class (instances of class y, label y: p(x | y) as the model defines it) and swapped (label y on
instances of other classes), which shows whether the label or the instance steers the sample.
"""

from __future__ import annotations

import numpy as np


def _instances(rng: np.ndarray, labels: np.ndarray, y: int, n: int, own: bool) -> np.ndarray:
    pool = np.flatnonzero(labels == y) if own else np.flatnonzero((labels != y) & (labels >= 0))
    return rng.choice(pool, n, replace=True) if pool.size else pool


def per_label_accuracy(model, classes: list[int], per_label: int, seed: int, predict, features=None,
                       labels=None, own: bool = True) -> tuple[dict[str, float], dict[str, float]]:
    """(summary, {label: accuracy}) of a class-conditional ``model`` (a ``GeneratorModel``);
    ``predict(uint8 images) -> labels`` is the evaluator."""
    rng = np.random.default_rng(seed)
    per: dict[str, float] = {}
    for y in range(model.conditions.n_classes):
        h = None
        if model.conditions.instance:
            picks = _instances(rng, np.asarray(labels), y, per_label, own)
            if picks.size == 0:
                continue
            h = np.asarray(features[np.sort(picks)], np.float32)
        images = model.generate(per_label, seed=seed + y, labels=np.full(per_label, y), features=h)
        per[str(y)] = float((predict(images) == y).mean())
    values = list(per.values())
    summary = {"accuracy": float(np.mean(values)) if values else float("nan"),
               "accuracy_min": float(np.min(values)) if values else float("nan")}
    return summary, per


def instance_label_agreement(predicted: np.ndarray, instance_labels: np.ndarray) -> float:
    """IC-GAN: share of samples the evaluator puts in the class of the instance they were conditioned on."""
    known = instance_labels >= 0
    return float((predicted[known] == instance_labels[known]).mean()) if known.any() else float("nan")
