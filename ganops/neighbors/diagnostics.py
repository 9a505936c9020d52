"""What a neighborhood looks like: summary metrics for meta.json / MLflow, and a PNG panel.

Both read the N×k arrays in row chunks, so memory-mapped artifacts are fine at any N.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops.core.visual import annotated_grid, save_image
from ganops.neighbors.search import NeighborsError

_ROWS = 65536       # rows per chunk when scanning N×k arrays
PANEL_NEIGHBORS = 10
QUERY_FRAME = (31, 119, 180)        # blue: the instance the row is about
OTHER_LABEL_FRAME = (214, 39, 40)   # red: a neighbor whose label differs from the query's


def _purity(indices: np.ndarray, labels: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Fraction of the first k neighbors sharing the instance's label, over instances with label >= 0.

    A neighbor without a label (< 0) counts as not sharing it.
    """
    same = {k: 0 for k in ks}
    count = 0
    for i in range(0, len(indices), _ROWS):
        lab = labels[i:i + _ROWS]
        keep = lab >= 0
        if not keep.any():
            continue
        match = labels[np.asarray(indices[i:i + _ROWS])[keep]] == lab[keep][:, None]
        for k in ks:
            same[k] += int(match[:, :k].sum())
        count += int(keep.sum())
    if count == 0:
        return {}
    out = {f"purity_at_{k}": same[k] / (count * k) for k in ks if k in (1, 10)}
    out["purity"] = same[ks[-1]] / (count * ks[-1])
    out["labelled_instances"] = float(count)
    return out


def diagnostics(indices: np.ndarray, similarities: np.ndarray, labels: np.ndarray | None,
                features: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """Flat numeric metrics: label purity at 1, 10 (where k allows) and k; similarity statistics;
    the k-th neighbor's radius (cosine distance 1 - sim) across instances; with ``features``, the mean
    similarity of random pairs and the neighbors' margin over it (``collapse`` reads it)."""
    if indices.shape != similarities.shape or indices.ndim != 2:
        raise NeighborsError(f"indices {indices.shape} and similarities {similarities.shape} must be the same N×k")
    n, k = indices.shape
    out: dict[str, float] = {"n": float(n), "k": float(k)}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise NeighborsError(f"labels have shape {labels.shape}, expected ({n},) to match indices.npy")
        out.update(_purity(indices, labels.astype(np.int64, copy=False), sorted({min(1, k), min(10, k), k})))

    sims = np.asarray(similarities, dtype=np.float32)
    p5, p50, p95 = np.percentile(sims, [5, 50, 95])
    out.update(similarity_mean=float(sims.mean(dtype=np.float64)), similarity_min=float(sims.min()),
               similarity_max=float(sims.max()), similarity_p5=float(p5), similarity_p50=float(p50),
               similarity_p95=float(p95))
    radius = 1.0 - sims[:, -1].astype(np.float64)
    out.update(radius_k_mean=float(radius.mean()), radius_k_median=float(np.median(radius)),
               radius_k_p90=float(np.percentile(radius, 90)), radius_k_max=float(radius.max()))
    if features is not None and n > 1:
        out["similarity_random_mean"] = random_pair_similarity(features, seed=seed)
        out["similarity_margin"] = out["similarity_mean"] - out["similarity_random_mean"]
    return out


RANDOM_PAIRS = 4096
# Neighbors whose mean similarity is within this of random pairs' are not neighborhoods: the features barely
# tell images apart. Measured on 300 MNIST test images: an encoder trained 10 updates had neighbors at 0.996
# and random pairs at 0.967 (margin 0.03, purity@10 0.36); trained 200 updates, 0.82 against 0.06 (0.76, 0.75).
MIN_MARGIN = 0.1


def random_pair_similarity(features: np.ndarray, n_pairs: int = RANDOM_PAIRS, seed: int = 0) -> float:
    """Mean cosine similarity of seeded random pairs of distinct rows (features are unit-norm); reads only
    the sampled rows, so a memory-mapped N×d is fine at any N."""
    n = len(features)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    i, j = i[i != j], j[i != j]
    order = np.argsort(i)                  # ascending rows: sequential reads of a memory map
    a = np.asarray(features[i[order]], np.float64)
    b = np.asarray(features[j[order]], np.float64)
    return float((a * b).sum(1).mean()) if len(a) else 1.0


def collapse(diag: dict[str, float]) -> str | None:
    """Why these neighborhoods are no better than random pairs, in words; None when they are."""
    margin = diag.get("similarity_margin")
    if margin is None or margin >= MIN_MARGIN:
        return None
    return (f"the neighborhoods are collapsed: neighbors' mean similarity {diag['similarity_mean']:.3f} is within "
            f"{margin:.3f} of random pairs' {diag['similarity_random_mean']:.3f} (at least {MIN_MARGIN} expected), so "
            "IC-GAN would condition on near-random neighbors; train the encoder longer (embed.min_steps, "
            "embed.epochs) or pick another (embed.encoder)")


def save_panel(images_uint8: np.ndarray, indices: np.ndarray, path: Path, rows: int, seed: int, *,
               labels: np.ndarray | None = None, similarities: np.ndarray | None = None) -> Path:
    """RGB PNG: ``rows`` seeded random instances, each followed by up to 10 of its neighbors (most
    similar first). The query column is framed in blue and set apart by a grey band. With ``labels``
    (N, < 0 = none) each image is captioned with its label and a neighbor of another class is framed
    in red; with ``similarities`` (N×k, like ``indices``) each neighbor shows its cosine similarity."""
    n = len(indices)
    if images_uint8.ndim != 4 or images_uint8.dtype != np.uint8:
        raise NeighborsError(f"save_panel wants uint8 N×C×H×W images, got {images_uint8.dtype} {images_uint8.shape}")
    if len(images_uint8) != n:
        raise NeighborsError(f"images.npy has {len(images_uint8)} images but indices.npy has {n} rows")
    if labels is not None and np.shape(labels) != (n,):
        raise NeighborsError(f"labels have shape {np.shape(labels)}, expected ({n},) to match indices.npy")
    if similarities is not None and np.shape(similarities) != np.shape(indices):
        raise NeighborsError(f"similarities {np.shape(similarities)} and indices {np.shape(indices)} "
                             "must be the same N×k")
    picks = np.sort(np.random.default_rng(seed).choice(n, min(rows, n), replace=False))
    m = min(PANEL_NEIGHBORS, indices.shape[1])
    order = np.concatenate([picks[:, None], np.asarray(indices[picks, :m])], axis=1)  # rows × (1 + m)

    lab = np.asarray(labels)[order] if labels is not None else np.full(order.shape, -1)
    sims = np.asarray(similarities[picks, :m], np.float64) if similarities is not None else None
    frames, captions = [], []
    for r, row in enumerate(lab):
        for j, label in enumerate(row):
            words = [str(label)] if label >= 0 else []  # < 0: unlabelled, nothing to show or compare
            if j == 0:
                frames.append(QUERY_FRAME)
            else:
                frames.append(OTHER_LABEL_FRAME if label >= 0 and row[0] >= 0 and label != row[0] else None)
                words += [f"{sims[r, j - 1]:.2f}"] if sims is not None else []
            captions.append("  ".join(words))

    # Gather only the shown images (images may be memory-mapped).
    img = annotated_grid(np.asarray(images_uint8[order.ravel()]), 1 + m, captions=captions,
                         frames=frames, split=1)
    return save_image(img, Path(path))
