"""Dataset sources by name (``data.dataset``): one registry, each entry returns ``RawImages``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ganops.core.params import DATASETS, DataParams
from ganops.data.folder import load_folder
from ganops.data.raw import DataSourceError, RawImages, single_split_check
from ganops.data.splits import load_split_source
from ganops.data.torchvision_sources import DIGIT_NAMES, SPLIT_SOURCES

__all__ = ["DataSourceError", "RawImages", "SOURCES", "load_source"]


Loader = Callable[[DataParams, Path, int], RawImages]  # (params, project root, seed for data.limit)


def load_digits(p: DataParams, project_root: Path, seed: int = 0) -> RawImages:
    """scikit-learn's bundled 1,797 handwritten 8×8 digits (values 0..16): the offline default."""
    from sklearn.datasets import load_digits as sk_digits

    single_split_check("digits", p)
    bunch = sk_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawImages(images=images, labels=bunch.target.astype(np.int64), splits=np.full(len(images), "train"),
                     sources=[f"digits/{i}" for i in range(len(images))], class_names=DIGIT_NAMES,
                     report={"origin": "sklearn.datasets.load_digits"}).subset(p.limit, seed)


def _split_loader(name: str) -> Loader:
    return lambda p, root, seed=0: load_split_source(SPLIT_SOURCES[name], p, root, seed)


SOURCES: dict[str, Loader] = {
    "digits": load_digits,
    **{name: _split_loader(name) for name in SPLIT_SOURCES},
    "image_folder": load_folder,
}
assert set(SOURCES) == set(DATASETS), "params.DATASETS and the source registry must name the same sources"


def stream_source(p: DataParams, project_root: Path, seed: int = 0, workers: int = 0):
    """The dataset ``data.dataset`` names as a stream (``stream`` module) for the dataset stage: an image folder
    is decoded a chunk at a time by ``workers`` processes; the other sources are loaded whole by their readers
    (torchvision's, scikit-learn's) and framed a chunk at a time."""
    from ganops.data.folder import stream_folder
    from ganops.data.stream import from_raw

    if p.dataset == "image_folder":
        return stream_folder(p, Path(project_root), seed, workers)
    return from_raw(load_source(p, project_root, seed), p)


def source_labels(p: DataParams, project_root: Path, seed: int = 0) -> np.ndarray:
    """The labels of the rows the dataset stage would take, one per row, at the least cost: an image folder's
    listing (no file opened), the other sources' own readers."""
    from ganops.data.folder import folder_labels

    if p.dataset == "image_folder":
        return folder_labels(p, Path(project_root), seed)
    return load_source(p, project_root, seed).labels


def load_source(p: DataParams, project_root: Path, seed: int = 0) -> RawImages:
    """The dataset ``data.dataset`` names; ``seed`` picks the ``data.limit`` sample."""
    if p.dataset not in SOURCES:
        raise DataSourceError(f"data.dataset={p.dataset!r} is not a source; allowed: {', '.join(SOURCES)}")
    return SOURCES[p.dataset](p, Path(project_root), seed)
