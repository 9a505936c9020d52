"""IC-GAN per instance: samples conditioned on h_i against the real neighborhood A_i they should
resemble, for training instances and for held-out ones no network saw (IC-GAN's transfer claim).

For each instance: ``per_instance`` samples; their evaluator features against those of the real
set {x_i} ∪ A_i with k-NN balls inside that set (Naeem et al.'s precision-as-membership, density,
coverage). Held-out instances' neighborhoods are their k nearest training instances in the
pipeline's embedding space (FAISS, cosine), as IC-GAN conditions on unseen images. The pooled FID of
all samples against all neighborhoods is reported beside the per-instance means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganops.evaluate import metrics as M


@dataclass
class InstanceScores:
    metrics: dict[str, float]
    fakes: np.ndarray          # M×s×C×H×W, for the panel
    neighbors: np.ndarray      # M×k rows of the training images


def held_out_neighbors(train_features: np.ndarray, held_features: np.ndarray, k: int) -> np.ndarray:
    """k nearest training instances of each held-out instance (cosine; features are L2-normalised)."""
    import faiss

    _, idx = faiss.knn(np.ascontiguousarray(held_features, np.float32),
                       np.ascontiguousarray(train_features, np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)
    return idx


def score(model, h: np.ndarray, instance_images: np.ndarray, neighbor_rows: np.ndarray, train_images: np.ndarray,
          per_instance: int, seed: int, features_of, labels_for=None, k_ball: int = 3) -> InstanceScores:
    """``model``: an instance-conditional ``GeneratorModel``; ``h``: M×d conditions; ``instance_images``: the M conditioning images; ``neighbor_rows``: M×k."""
    m, k = neighbor_rows.shape
    y = None if labels_for is None else np.repeat(labels_for, per_instance)
    fakes = model.generate(m * per_instance, seed=seed, labels=y, features=np.repeat(h, per_instance, axis=0))
    fake_f = features_of(fakes).reshape(m, per_instance, -1)
    real_imgs = np.concatenate([instance_images[:, None], np.asarray(train_images[neighbor_rows.ravel()]).reshape(
        m, k, *instance_images.shape[1:])], axis=1)
    real_f = features_of(real_imgs.reshape(-1, *instance_images.shape[1:])).reshape(m, k + 1, -1)
    prec, dens, cov = [], [], []
    for i in range(m):
        p, d, c = M.ball_scores(real_f[i], fake_f[i], min(k_ball, k))
        prec.append(p), dens.append(d), cov.append(c)
    out = {"precision_evaluator": float(np.mean(prec)), "density_evaluator": float(np.mean(dens)),
           "coverage_evaluator": float(np.mean(cov)),
           "fid_evaluator": M.fid(real_f.reshape(-1, real_f.shape[-1]), fake_f.reshape(-1, fake_f.shape[-1]))}
    return InstanceScores(out, fakes.reshape(m, per_instance, *fakes.shape[1:]), neighbor_rows)
