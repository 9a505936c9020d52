"""The generator's preview grid (samples.png in the generator artifact): one condition per row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ganops.params import Params
from ganops.train.checkpoint import network_config

PER_ROW = 8


def _conditions(weights: dict[str, Any], n_rows: int, features, labels, seed: int):
    """Seeded instances (IC-GAN) or consecutive labels (cGAN), one per row."""
    g = network_config(weights, "G")
    picks = None
    h = y = None
    if g.get("feat_dim"):
        picks = np.sort(np.random.default_rng(seed).choice(len(features), min(n_rows, len(features)), replace=False))
        h = np.asarray(features[picks], np.float32)
        if g.get("n_classes"):
            y = np.asarray(labels)[picks]
    elif g.get("n_classes"):
        y = np.arange(n_rows) % g["n_classes"]
    return picks, h, y


def preview_grid(weights: dict[str, Any], images: np.ndarray, features, labels, p: Params, path: Path) -> Path:
    """The generator's sample grid: one condition per row; for IC-GAN the row starts with the real instance."""
    from ganops.train import generate
    from ganops.visual import save_grid

    n_rows = max(1, p.train.n_samples // PER_ROW)
    picks, h, y = _conditions(weights, n_rows, features, labels, p.seed)
    n_rows = len(h) if h is not None else n_rows
    rep = lambda a: None if a is None else np.repeat(a, PER_ROW, axis=0)  # noqa: E731
    fake = generate(weights, n_rows * PER_ROW, seed=p.seed, labels=rep(y), features=rep(h))
    if picks is None:
        return save_grid(fake, Path(path), nrow=PER_ROW)
    real = np.asarray(images[picks])
    rows = np.concatenate([real[:, None], fake.reshape(n_rows, PER_ROW, *fake.shape[1:])], axis=1)
    return save_grid(rows.reshape(-1, *fake.shape[1:]), Path(path), nrow=PER_ROW + 1)
