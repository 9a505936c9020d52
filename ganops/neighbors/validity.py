"""What valid instance features and neighborhoods are: the one rule that the k-NN step (its input), the
training of an IC-GAN (its inputs) and the Dagster asset checks (the artifacts) apply, each wording the
verdict for its reader.

- features.npy: N×d, finite, L2-normalised rows (inner product must mean cosine);
- indices.npy: N×k integers in [0, N), no row listing its own instance (IC-GAN excludes self).

Both scans read row chunks, so a memory-mapped artifact is never materialised whatever N is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

NORM_TOLERANCE = 1e-3
_CHUNK = 65536          # rows per chunk of an index array
# values per chunk of a feature array: the norms are summed in float64, which doubles a float32 block, so
# 4M values (32 MiB as float64) whatever d is (65,536 rows of 512-d features made 268 MiB, more than k-NN's tile)
_FEATURE_VALUES = 1 << 22


@dataclass(frozen=True)
class FeatureFindings:
    n: int
    non_finite_rows: np.ndarray       # rows holding NaN or inf
    off_norm_rows: np.ndarray         # finite rows whose |‖x‖ − 1| exceeds the tolerance
    max_norm_error: float             # over the finite rows

    @property
    def valid(self) -> bool:
        return self.n > 0 and not len(self.non_finite_rows) and not len(self.off_norm_rows)


@dataclass(frozen=True)
class NeighborFindings:
    n: int
    k: int
    out_of_range_rows: np.ndarray     # rows holding an index outside [0, n)
    self_rows: np.ndarray             # rows listing their own instance

    @property
    def valid(self) -> bool:
        return not len(self.out_of_range_rows) and not len(self.self_rows)


def chunks(n: int, size: int = _CHUNK) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def inspect_features(features: np.ndarray, tol: float = NORM_TOLERANCE) -> FeatureFindings:
    """The rows of an N×d array that break the rule (the caller checks it is 2-D)."""
    n = int(features.shape[0])
    bad, off, worst = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 0.0
    d = int(features.shape[1]) if features.ndim == 2 else 1
    for s in chunks(n, max(1, _FEATURE_VALUES // max(1, d))):
        block = np.asarray(features[s], dtype=np.float32)
        finite = np.isfinite(block).all(axis=1)
        bad.append(np.flatnonzero(~finite) + s.start)
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        err = np.abs(norms - 1.0)
        off.append(np.flatnonzero(finite & (err > tol)) + s.start)
        if finite.any():
            worst = max(worst, float(err[finite].max()))
    return FeatureFindings(n, np.concatenate(bad), np.concatenate(off), worst)


def inspect_neighbors(indices: np.ndarray, n: int) -> NeighborFindings:
    """The rows of an N×k index array that break the rule for a dataset of ``n`` instances."""
    rows = int(indices.shape[0])
    out, selfs = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for s in chunks(rows):
        block = np.asarray(indices[s])
        out.append(np.flatnonzero(((block < 0) | (block >= n)).any(axis=1)) + s.start)
        selfs.append(np.flatnonzero((block == np.arange(s.start, s.stop)[:, None]).any(axis=1)) + s.start)
    return NeighborFindings(n, int(indices.shape[1]) if indices.ndim == 2 else 0, np.concatenate(out),
                            np.concatenate(selfs))


def first(rows: np.ndarray, few: int = 5) -> str:
    """The first few row numbers, for a message."""
    return ", ".join(str(int(r)) for r in rows[:few]) + (", …" if len(rows) > few else "")
