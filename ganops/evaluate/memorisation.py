"""Memorisation: is a generated sample a copy of a training image?

Each generated sample's nearest training image in pixel space (FAISS exact L2 search) against the
same distance for held-out real images, which no network saw: a generator that memorises puts its
samples much nearer the training set than unseen real images are. A near-copy is a sample nearer
than the ``quantile`` of the held-out distances (so about ``quantile`` of a non-copying generator's
samples count, by construction, and far more of a copying one's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _flat(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)
    return np.ascontiguousarray(x / 255.0)


def nearest(train_images: np.ndarray, queries: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(L2 distance in [0, 1] pixel units, index) of each query's nearest training image."""
    import faiss

    index = faiss.IndexFlatL2(int(np.prod(train_images.shape[1:])))
    for s in range(0, len(train_images), 65536):            # memory maps are added in chunks
        index.add(_flat(train_images[s:s + 65536]))
    dist, idx = np.empty(len(queries), np.float32), np.empty(len(queries), np.int64)
    for s in range(0, len(queries), batch):
        d, i = index.search(_flat(queries[s:s + batch]), 1)
        dist[s:s + batch], idx[s:s + batch] = np.sqrt(np.maximum(d[:, 0], 0)), i[:, 0]
    return dist, idx


@dataclass
class Memorisation:
    metrics: dict[str, float]
    fake_distance: np.ndarray
    fake_nearest: np.ndarray


def memorisation(train_images: np.ndarray, fake: np.ndarray, held: np.ndarray, quantile: float) -> Memorisation:
    fd, fi = nearest(train_images, fake)
    m = {"nn_distance_pixels_fake_median": float(np.median(fd))}
    if len(held):
        hd, _ = nearest(train_images, held)
        threshold = float(np.quantile(hd, quantile))
        m.update(nn_distance_pixels_holdout_median=float(np.median(hd)),
                 nn_distance_pixels_ratio=float(np.median(fd) / max(np.median(hd), 1e-12)),
                 near_copy_threshold_pixels=threshold, near_copy_fraction_pixels=float((fd < threshold).mean()))
    return Memorisation(m, fd, fi)
