"""Distribution metrics between real and generated features, each from the field's library.

FID, KID and precision/recall are torch-fidelity's own (TF-Inception-faithful, feature-array entry
points), so a number here means what it means in the papers that use torch-fidelity. Density and
coverage (Naeem et al. 2020) are not in torch-fidelity: the real samples' k-NN radii come from FAISS and
ball membership from a chunked distance matrix (memory: one chunk, never N×N); a test checks both against
the `prdc` package on the same features. ``prdc`` computes precision and recall in that same pass (the
evaluation's path, for speed); tests check it against torch-fidelity's. Feature arrays are N×d float.
"""

from __future__ import annotations

import numpy as np
import torch


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float64))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    stats = [fid_features_to_statistics(_tensor(x)) for x in (fake, real)]
    return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD² with the cubic polynomial kernel, mean and std over subsets."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(real), len(fake))
    # float32, as torch-fidelity's own extractors hand it features: float64 doubled its time
    out = kid_features_to_metric(_tensor(fake).float(), _tensor(real).float(), kid_subsets=subsets,
                                 kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD])


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls, torch-fidelity's."""
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    out = prc_features_to_metric(_tensor(fake).float(), _tensor(real).float(), prc_neighborhood=k,
                                 prc_batch_size=10000, save_cpu_ram=True, verbose=False)
    return float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL])


def _knn_sq_distances(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Squared L2 distances from each query to its k nearest rows of ``base`` (FAISS exact search)."""
    import faiss

    d, _ = faiss.knn(np.ascontiguousarray(queries, np.float32), np.ascontiguousarray(base, np.float32), k)
    return d


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020). A real sample's ball reaches its k-th nearest other
    real sample; density counts how many real balls each fake falls in (÷ k), coverage the share of real
    balls that hold at least one fake."""
    _, density, coverage = ball_scores(real, fake, k)
    return density, coverage


def ball_scores(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float, float]:
    """(share of fakes inside any real k-NN ball, density, coverage) with the real k-NN balls."""
    radii = _knn_sq_distances(real, real, k + 1)[:, k]          # column 0 is the sample itself
    # fakes within each real ball: compare every fake-real distance with that real's radius, in chunks
    counts = np.zeros(len(fake), np.int64)
    covered = np.zeros(len(real), bool)
    real32, chunk = np.ascontiguousarray(real, np.float32), 4096
    real_sq = (real32 ** 2).sum(1)
    for s in range(0, len(fake), chunk):
        f = np.ascontiguousarray(fake[s:s + chunk], np.float32)
        d = (f ** 2).sum(1)[:, None] + real_sq[None, :] - 2.0 * f @ real32.T
        inside = d < radii[None, :]
        counts[s:s + chunk] = inside.sum(1)
        covered |= inside.any(0)
    return float((counts > 0).mean()), float(counts.sum() / (k * len(fake))), float(covered.mean())


def prdc(real: np.ndarray, fake: np.ndarray, pr_k: int = 3, dc_k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage in one pass over the fake×real distances.

    Written here rather than calling torch-fidelity's precision/recall beside ``density_coverage``: both
    build the same real k-NN balls and the same distance matrix, and torch-fidelity's pass alone took
    a sixth of the whole evaluation (benchmarks/eval_speed.py). The figures are torch-fidelity's
    (inclusive balls, Kynkäänniemi et al. 2019) and prdc's (Naeem et al. 2020): tests compare both.
    """
    real32, fake32 = np.ascontiguousarray(real, np.float32), np.ascontiguousarray(fake, np.float32)
    real_knn = _knn_sq_distances(real32, real32, max(pr_k, dc_k) + 1)     # column 0 is the sample itself
    r_pr, r_dc = real_knn[:, pr_k], real_knn[:, dc_k]
    f_pr = _knn_sq_distances(fake32, fake32, pr_k + 1)[:, pr_k]
    in_real = np.zeros(len(fake), bool)
    counts = np.zeros(len(fake), np.int64)
    covered = np.zeros(len(real), bool)
    recalled = np.zeros(len(real), bool)
    real_sq, chunk = (real32 ** 2).sum(1), 4096
    for s in range(0, len(fake), chunk):     # memory: one chunk of distances, never fake×real at once
        f = fake32[s:s + chunk]
        d = (f ** 2).sum(1)[:, None] + real_sq[None, :] - 2.0 * f @ real32.T
        in_real[s:s + chunk] = (d <= r_pr[None, :]).any(1)
        recalled |= (d <= f_pr[s:s + chunk, None]).any(0)
        inside = d < r_dc[None, :]
        counts[s:s + chunk] = inside.sum(1)
        covered |= inside.any(0)
    return {"precision": float(in_real.mean()), "recall": float(recalled.mean()),
            "density": float(counts.sum() / (dc_k * len(fake))), "coverage": float(covered.mean())}
