"""The in-memory form of a dataset between loading and writing, and the one error sources raise.

Kept apart from ``sources.py`` so that the individual source modules can import these names
without importing the registry that imports them (no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core.errors import UserError
from ganops.core.params import DataParams


class DataSourceError(UserError, RuntimeError):
    """A dataset cannot be loaded: the message names the key, the value, the path and the fix."""


@dataclass
class RawImages:
    images: np.ndarray            # uint8 N×C×H×W (C = 1 or 3)
    labels: np.ndarray            # int64 N, -1 where unknown
    splits: np.ndarray            # str N: 'train' | 'test' | ...
    sources: list[str]            # where each image came from: a file path, or 'mnist/test/17'
    class_names: list[str] | None
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Catch a broken source here, not three stages later in a shape error.
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 N×C×H×W with C in (1, 3), got {self.images.dtype} "
                             f"{self.images.shape}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype=str)
        if not (len(self.labels) == len(self.splits) == len(self.sources) == n):
            raise ValueError(f"RawImages: {n} images but {len(self.labels)} labels, {len(self.splits)} splits, "
                             f"{len(self.sources)} sources")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, limit: int | None, seed: int) -> RawImages:
        """``limit`` images chosen by :func:`sample_indices` (all when ``limit`` is None or ≥ N)."""
        keep = sample_indices(self.labels, limit, seed)
        if len(keep) == len(self):
            return self
        return replace(self, images=self.images[keep], labels=self.labels[keep], splits=self.splits[keep],
                       sources=[self.sources[i] for i in keep],
                       report={**self.report, "limit": limit_report(self.labels, keep, seed)})


def sample_indices(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Ascending indices of ``limit`` items: a seeded sample, stratified by label (-1 is one stratum).

    Each label keeps its share of ``limit`` (largest remainder, so the total is exactly ``limit``);
    the first ``limit`` items would instead give only the first classes of a class-sorted source.
    Ascending order keeps the kept items in their original order.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if limit is None or limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    take, remainder = np.divmod(counts * limit, n)  # integer shares: no float rounding at exact quotas
    order = rng.permutation(len(counts))  # ties between equal remainders: seeded, not by label order
    order = order[np.argsort(-remainder[order], kind="stable")]
    take[order[: limit - take.sum()]] += 1
    picks = [rng.choice(np.flatnonzero(inverse == k), size=t, replace=False) for k, t in enumerate(take)]
    return np.sort(np.concatenate(picks))


def limit_report(labels: np.ndarray, keep: np.ndarray, seed: int) -> dict[str, Any]:
    """What ``data.limit`` did, for the dataset summary."""
    labelled = bool((np.asarray(labels) >= 0).any())
    return {"kept": len(keep), "of": len(labels), "seed": seed,
            "sampling": "stratified by label" if labelled else "uniform"}


def resolve_root(p: DataParams, project_root: Path) -> Path:
    """``data.root`` as an absolute path; a relative one is relative to the project, not the cwd."""
    root = Path(p.root).expanduser()
    if not root.is_absolute():
        root = Path(project_root) / root
    return root.resolve()


def root_phrase(p: DataParams, root: Path) -> str:
    """How messages name the root: the key, the value as written and where it points."""
    return f"data.root={p.root!r} ({root})" if str(root) != p.root else f"data.root={p.root!r}"


def single_split_check(name: str, p: DataParams, only: str = "train") -> None:
    """Sources with one split accept every data.split value that can mean that split."""
    if p.split not in ("available", "all", only):
        raise DataSourceError(
            f"data.split={p.split!r}: {name} has only the {only!r} split; allowed: 'available', 'all', {only!r}")
