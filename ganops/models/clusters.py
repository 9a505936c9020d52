"""Clusters of the training images for a self-conditioned GAN (Liu et al. 2020, "Diverse Image Generation via
Self-Conditioned GANs"): an unconditional generator whose G and D are conditioned on the k-means cluster of
the image, the cluster drawn from the clusters' frequencies at sampling. A connected latent space maps onto
a data set of separate modes (digits, object classes) by drawing images between them (Khayatkhoei et al.
2018); a cluster condition cuts the latent space into pieces, as a cGAN's label does, without labels.

The images are clustered once, before the first step, on their pixels average-pooled to at most
``SIDE``×``SIDE`` (what separates digits and coarse scenes, at a cost that does not grow with the resolution).
FAISS's k-means trains the centroids on a seeded sample of at most 256 points per centroid (its own cap);
the assignment is the nearest centroid, computed here in torch so that D can assign an unlabelled image the
same way (``pooled`` and ``nearest`` are the one place for both).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from ganops.models.errors import TrainError

log = logging.getLogger(__name__)

SIDE = 16                 # pooled side the images are clustered at
NREDO = 5                 # k-means runs from different seeded starts; the one of lowest error is kept
_CHUNK = 8192             # images pooled and assigned at a time (memory-mapped shards are read a chunk at a time)


def pooled(x: torch.Tensor) -> torch.Tensor:
    """Images (uint8 in 0..255, or float in [-1, 1]) → N×(C·s·s) float32 in [0, 1], s = min(side, SIDE)."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else (x.float() + 1.0) / 2.0
    if x.shape[-1] > SIDE:
        x = F.adaptive_avg_pool2d(x, SIDE)
    return x.flatten(1)


def nearest(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of each point's nearest centroid (squared L2)."""
    d = (centroids * centroids).sum(1)[None, :] - 2.0 * points @ centroids.T
    return d.argmin(1)


def count(k: int, n: int, key: str = "train.self_condition") -> int:
    """The clusters ``n`` images get when ``k`` are asked for: at most half the images (a cluster of one image
    is a copy to memorise), said in the log when fewer."""
    if n < 4:
        raise TrainError(f"{key}={k}: {n} training images cannot be clustered (at least 4 are needed); set {key}=0")
    if k > n // 2:
        log.warning("%s=%d: %d training images make at most %d clusters of two; using %d", key, k, n, n // 2, n // 2)
    return min(k, n // 2)


def cluster(images, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(assignment int64 N, centroids float32 k×P) of ``images`` (uint8 N×C×H×W, array-like), 2 ≤ k ≤ N."""
    import faiss

    n = int(images.shape[0])
    cap = 256 * k          # FAISS's max_points_per_centroid: a larger sample only costs time
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, cap), replace=False))
    sample = pooled(torch.from_numpy(np.array(images[rows]))).numpy()
    # min_points_per_centroid 2: a small collection (k up to n/2) is what this is for, not worth FAISS's warning
    km = faiss.Kmeans(sample.shape[1], k, niter=25, nredo=NREDO, seed=seed, verbose=False,
                      min_points_per_centroid=2)
    km.train(sample)
    centroids = torch.from_numpy(np.ascontiguousarray(km.centroids, np.float32))
    assign = np.concatenate([nearest(pooled(torch.from_numpy(np.array(images[s:s + _CHUNK]))), centroids).numpy()
                             for s in range(0, n, _CHUNK)])
    return assign.astype(np.int64), centroids.numpy()


def cluster_of_noise(z: torch.Tensor, cdf: torch.Tensor) -> torch.Tensor:
    """The cluster a noise vector draws: its first coordinate's normal CDF, read against the clusters'
    cumulative frequencies. A function of z alone, so G(z) stays a function of z (the same seed, the same
    samples; an exported G takes z only), and the clusters come out at their training frequencies."""
    u = 0.5 * (1.0 + torch.erf(z[:, 0].float() / 2 ** 0.5))
    return torch.searchsorted(cdf, u.contiguous(), right=True).clamp_(max=len(cdf) - 1)
