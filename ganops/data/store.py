"""The dataset artifact (DESIGN.md §3): images.npy, manifest.parquet, summary.json and grid.png; a dataset of
more than ``data.shard_rows`` images has the folders images/ and manifest/ of one shard each instead
(``shards`` module), read through the same functions.

``data.holdout`` of the images (seeded, stratified by label) go to holdout_images.npy and
holdout_manifest.parquet instead: no stage trains on them (encoders, GANs and the evaluator read
images.npy), so the evaluation has real images that no network has seen.

``prepare`` brings a loaded source to the common form (square ``data.resolution``, the requested
channel count, a sha1 per image); ``write_dataset`` writes it into a (temporary) directory;
``load_images``/``load_labels`` read it back for the downstream stages. ``load_features`` reads the
embeddings artifact's features, sharded as the images they were extracted from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core.artifacts import ArtifactError, require_files
from ganops.core.params import DataParams
from ganops.data import shards
from ganops.data.raw import RawImages, sample_indices
from ganops.data.resize import frame

log = logging.getLogger(__name__)

IMAGES, MANIFEST, SUMMARY, GRID = "images.npy", "manifest.parquet", "summary.json", "grid.png"
HOLDOUT_IMAGES, HOLDOUT_MANIFEST = "holdout_images.npy", "holdout_manifest.parquet"


@dataclass
class Dataset:
    images: np.ndarray          # uint8 N×C×R×R
    labels: np.ndarray          # int64 N, -1 unknown
    splits: np.ndarray          # str N
    sources: list[str]
    class_names: list[str] | None
    report: dict[str, Any]


def prepare(raw: RawImages, p: DataParams, seed: int) -> Dataset:
    """Resize to resolution², convert channels. Deterministic: no randomness here."""
    return Dataset(frame(raw.images, p.resolution, p.channels), raw.labels, raw.splits, list(raw.sources),
                   raw.class_names, dict(raw.report))


def _counts(values: np.ndarray, names: list[str] | None = None) -> dict[str, int]:
    keys, counts = np.unique(values, return_counts=True)
    out = {}
    for key, count in zip(keys.tolist(), counts.tolist()):
        name = names[key] if names is not None and isinstance(key, int) and 0 <= key < len(names) else str(key)
        out[name] = int(count)
    return out


def _grid_picks(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Up to ``size`` images, as many per class as fit, in class order: a grid that shows the dataset."""
    n = len(labels)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    labels = labels if (labels >= 0).any() else np.zeros(n, np.int64)
    classes = np.unique(labels)
    per = max(1, size // len(classes))
    picks = [np.sort(rng.permutation(np.flatnonzero(labels == c))[:per]) for c in classes]
    chosen = np.concatenate(picks)[:size]
    if len(chosen) < size:  # small classes: fill with other images, still seeded
        rest = np.setdiff1d(np.arange(n), chosen)
        chosen = np.concatenate([chosen, np.sort(rng.permutation(rest)[: size - len(chosen)])])
    return chosen


def holdout_rows(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Ascending rows held out: ``fraction`` of the images, stratified by label, seeded (another stream
    than data.limit's, so the two samples are independent). At least one image stays in training."""
    n = len(labels)
    count = min(int(round(fraction * n)), n - 1)
    if count <= 0:
        return np.zeros(0, np.int64)
    return sample_indices(labels, count, seed + 1)


FEW_IMAGES = 100   # below this a GAN memorises its data and FID/precision/recall say little


def too_small(n: int, n_holdout: int, p: DataParams) -> list[str]:
    """What a dataset this small will cost the user, in words (written to summary.json and the log)."""
    out = []
    if n < FEW_IMAGES:
        out.append(f"only {n} images: a GAN trained on fewer than {FEW_IMAGES} memorises them, and the evaluation's "
                   "figures say little; add images (data.root) or lift data.limit")
    if p.holdout > 0 and n_holdout == 0:
        out.append(f"data.holdout={p.holdout} of {n} images holds none out: the evaluation has no unseen real "
                   "images (held-out FID, IC-GAN's unseen instances, the near-copy test); add images or raise "
                   "data.holdout")
    return out


def load_images(directory: Path) -> shards.ShardedArray:
    """The training images, memory-mapped read-only through the one reader of every shard count."""
    images = shards.ShardedArray.open(Path(directory), "images", "dataset")
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ArtifactError(f"{Path(directory)}: expected uint8 N×C×H×W images, got {images.dtype} {images.shape}; "
                            "run `ganops stage dataset` again")
    return images


def load_manifest(directory: Path, columns: list[str] | None = None):
    return _table(directory, "manifest", columns)


def _table(directory: Path, stem: str, columns: list[str] | None):
    directory = Path(directory)
    if not (directory / f"{stem}.parquet").is_file() and not (directory / stem).is_dir():
        require_files(directory, [f"{stem}.parquet"], "dataset")
    return shards.read_table(directory, stem, columns)


def load_labels(directory: Path) -> np.ndarray:
    return load_manifest(directory, ["label"])["label"].to_numpy(np.int64)


def load_features(directory: Path) -> shards.ShardedArray:
    """The embeddings artifact's features (float32 N×d, one shard per dataset shard: features.npy, or the folder
    features/), memory-mapped read-only as one array."""
    features = shards.ShardedArray.open(Path(directory), "features", "embeddings")
    if features.ndim != 2 or features.dtype != np.float32:
        raise ArtifactError(f"{Path(directory)}: expected float32 N×d features, got {features.dtype} "
                            f"{features.shape}; run `ganops stage embeddings` again")
    return features


def load_holdout(directory: Path) -> tuple[shards.ShardedArray, np.ndarray]:
    """The held-out images (uint8 N×C×H×W, possibly 0 rows) and their labels."""
    directory = Path(directory)
    images = shards.ShardedArray.open(directory, "holdout_images", "dataset")
    return images, _table(directory, "holdout_manifest", ["label"])["label"].to_numpy(np.int64)


def load_summary(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / SUMMARY).read_text())
