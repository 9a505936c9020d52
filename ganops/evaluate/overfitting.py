"""D's overfitting signal, as ADA reads it (Karras et al. 2020, §3): D's outputs on the training images
against held-out images nobody trained on, and against generated ones.

- ``d_rt_train``: r_t = E[sign(D(x_train))], the heuristic ADA steers its augmentation probability with
  (near 1: D is sure of every training image).
- ``d_rt_holdout``: the same on held-out real images. A D that memorised the training set calls them fake:
  its held-out signal collapses toward −1 while r_t on training images stays high.
- ``d_rv``: ADA's validation heuristic (E[D_train] − E[D_holdout]) / (E[D_train] − E[D_generated]): 0 when D
  tells held-out images from training ones no better than chance, 1 when they look as fake to it as samples.

D is read in eval mode (its batch norms' running statistics), the same for the three sets.
"""

from __future__ import annotations

import numpy as np
import torch

from ganops.core.pixels import to_float


@torch.no_grad()
def d_outputs(D, images: np.ndarray, labels: np.ndarray | None = None, features: np.ndarray | None = None,
              batch_size: int = 500) -> np.ndarray:
    """D's logit for each image (uint8, or already in [-1, 1] as float) with its condition."""
    dev = next(D.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        chunk = torch.from_numpy(np.array(images[s:s + batch_size])).to(dev)
        x = to_float(chunk) if chunk.dtype == torch.uint8 else chunk.float()
        y = None if labels is None else torch.from_numpy(np.array(labels[s:s + batch_size], np.int64)).to(dev)
        h = None if features is None else torch.from_numpy(np.array(features[s:s + batch_size], np.float32)).to(dev)
        out.append(D(x, y, h).float().reshape(len(x), -1).mean(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def signal(train: np.ndarray, held: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    """The figures of the module's docstring from D's outputs on the three sets."""
    m = {"d_rt_train": float(np.sign(train).mean()), "d_rt_holdout": float(np.sign(held).mean()),
         "d_mean_train": float(train.mean()), "d_mean_holdout": float(held.mean()),
         "d_mean_generated": float(generated.mean())}
    spread = m["d_mean_train"] - m["d_mean_generated"]
    if abs(spread) > 1e-12:
        m["d_rv"] = (m["d_mean_train"] - m["d_mean_holdout"]) / spread
    return m
