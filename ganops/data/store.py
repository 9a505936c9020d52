"""The dataset artifact (DESIGN.md §3): images.npy, manifest.parquet, summary.json and grid.png.

``data.holdout`` of the images (seeded, stratified by label) go to holdout_images.npy and
holdout_manifest.parquet instead: no stage trains on them (encoders, GANs and the evaluator read
images.npy), so the evaluation has real images that no network has seen.

``prepare`` brings a loaded source to the common form (square ``data.resolution``, the requested
channel count, a sha1 per image); ``write_dataset`` writes it into a (temporary) directory;
``load_images``/``load_labels`` read it back for the downstream stages.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core.artifacts import ArtifactError, atomic_save_npy, atomic_write_json, load_npy, require_files
from ganops.core.params import DataParams
from ganops.core.visual import save_grid
from ganops.data.raw import RawImages, sample_indices
from ganops.data.resize import resize_square, to_channels

log = logging.getLogger(__name__)

IMAGES, MANIFEST, SUMMARY, GRID = "images.npy", "manifest.parquet", "summary.json", "grid.png"
HOLDOUT_IMAGES, HOLDOUT_MANIFEST = "holdout_images.npy", "holdout_manifest.parquet"


@dataclass
class Dataset:
    images: np.ndarray          # uint8 N×C×R×R
    labels: np.ndarray          # int64 N, -1 unknown
    splits: np.ndarray          # str N
    sources: list[str]
    sha1: list[str]
    class_names: list[str] | None
    report: dict[str, Any]


def frame(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """Images as the dataset holds them: centre square at resolution², converted to ``channels`` (0 keeps)."""
    return np.ascontiguousarray(to_channels(resize_square(images, resolution), channels))


def prepare(raw: RawImages, p: DataParams, seed: int) -> Dataset:
    """Resize to resolution², convert channels, hash each image. Deterministic: no randomness here."""
    images = frame(raw.images, p.resolution, p.channels)
    sha1 = [hashlib.sha1(img.tobytes()).hexdigest() for img in images]
    return Dataset(images, raw.labels, raw.splits, list(raw.sources), sha1, raw.class_names, dict(raw.report))


def _counts(values: np.ndarray, names: list[str] | None = None) -> dict[str, int]:
    keys, counts = np.unique(values, return_counts=True)
    out = {}
    for key, count in zip(keys.tolist(), counts.tolist()):
        name = names[key] if names is not None and isinstance(key, int) and 0 <= key < len(names) else str(key)
        out[name] = int(count)
    return out


def _grid_picks(ds: Dataset, size: int, seed: int = 0) -> np.ndarray:
    """Up to ``size`` images, as many per class as fit, in class order: a grid that shows the dataset."""
    n = len(ds.images)
    if n <= size:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    labels = ds.labels if (ds.labels >= 0).any() else np.zeros(n, np.int64)
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


def _take(ds: Dataset, rows: np.ndarray) -> Dataset:
    return Dataset(ds.images[rows], ds.labels[rows], ds.splits[rows], [ds.sources[i] for i in rows],
                   [ds.sha1[i] for i in rows], ds.class_names, ds.report)


def _manifest(ds: Dataset, rows: np.ndarray):
    import pandas as pd

    return pd.DataFrame({"index": np.arange(len(ds.images), dtype=np.int64), "label": ds.labels,
                         "split": ds.splits.astype(str), "sha1": ds.sha1, "source": ds.sources,
                         "original_index": rows.astype(np.int64)})


def write_dataset(out: Path, ds: Dataset, p: DataParams, seed: int = 0) -> dict[str, Any]:
    out = Path(out)
    held = holdout_rows(ds.labels, p.holdout, seed)
    kept = np.setdiff1d(np.arange(len(ds.images)), held)
    holdout, ds = _take(ds, held), _take(ds, kept)
    atomic_save_npy(out / IMAGES, ds.images)
    _manifest(ds, kept).to_parquet(out / MANIFEST, index=False)
    atomic_save_npy(out / HOLDOUT_IMAGES, holdout.images)
    _manifest(holdout, held).to_parquet(out / HOLDOUT_MANIFEST, index=False)
    order = _grid_picks(ds, p.grid_size)
    save_grid(ds.images[order], out / GRID, nrow=int(np.ceil(np.sqrt(len(order)))))

    labelled = ds.labels >= 0
    skipped = ds.report.get("skipped", {}).get("count", 0)
    duplicates = len(ds.sha1) - len(set(ds.sha1))
    metrics = {"n_images": len(ds.images) + len(holdout.images), "n_train": len(ds.images),
               "n_holdout": len(holdout.images), "n_labelled": int(labelled.sum()),
               "n_classes": int(len(np.unique(ds.labels[labelled]))), "resolution": int(ds.images.shape[-1]),
               "channels": int(ds.images.shape[1]), "n_skipped": int(skipped), "n_duplicates": int(duplicates),
               **{f"n_{s}": c for s, c in _counts(ds.splits).items()}}
    summary = {
        "metrics": metrics,
        "shape": list(ds.images.shape),
        "class_names": ds.class_names,
        "per_class": _counts(ds.labels[labelled], ds.class_names),
        "holdout_per_class": _counts(holdout.labels[holdout.labels >= 0], ds.class_names),
        "per_split": _counts(ds.splits),
        "per_split_class": {s: _counts(ds.labels[(ds.splits == s) & labelled], ds.class_names)
                            for s in np.unique(ds.splits).tolist()},
        "pixel_mean": float(ds.images.mean(dtype=np.float64) / 255.0) if len(ds.images) else 0.0,
        "source_report": ds.report,
    }
    warnings = too_small(metrics["n_images"], metrics["n_holdout"], p)
    if warnings:   # only then: a healthy dataset's summary keeps its bytes
        summary["warnings"] = warnings
    for warning in warnings:
        log.warning("%s", warning)
    atomic_write_json(out / SUMMARY, summary)
    return summary


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


def load_images(directory: Path) -> np.ndarray:
    """images.npy memory-mapped read-only: the embedding stage reads it in batches."""
    images = load_npy(Path(directory) / IMAGES, "dataset")
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ArtifactError(f"{Path(directory) / IMAGES}: expected uint8 N×C×H×W, got {images.dtype} {images.shape}; "
                            "run `ganops stage dataset` again")
    return images


def load_manifest(directory: Path):
    import pandas as pd

    require_files(Path(directory), [MANIFEST], "dataset")
    return pd.read_parquet(Path(directory) / MANIFEST)


def load_labels(directory: Path) -> np.ndarray:
    return load_manifest(directory)["label"].to_numpy(np.int64)


def load_holdout(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """The held-out images (uint8 N×C×H×W, possibly 0 rows) and their labels."""
    import pandas as pd

    directory = Path(directory)
    require_files(directory, [HOLDOUT_IMAGES, HOLDOUT_MANIFEST], "dataset")
    images = load_npy(directory / HOLDOUT_IMAGES, "dataset")
    return images, pd.read_parquet(directory / HOLDOUT_MANIFEST)["label"].to_numpy(np.int64)


def load_summary(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / SUMMARY).read_text())
