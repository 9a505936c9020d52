"""What every GAN family shares: what it needs from the pipeline, the checks of those inputs, and
the network configs it builds. A family file (dcgan.py, cgan.py, icgan.py) only says how it
conditions; the training step is the trainer's, shared by all (mimicry style)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganops.families import SPECS
from ganops.models.blocks import DConfig, GConfig
from ganops.models.errors import TrainError, check_resolution
from ganops.params import TrainParams


@dataclass(frozen=True)
class DataInfo:
    n: int
    channels: int
    resolution: int
    n_classes: int = 0
    feat_dim: int = 0


class Family:
    name = ""
    cbn = False                  # conditional batch norm in G

    def uses_labels(self, tp: TrainParams) -> bool:
        return False

    @property
    def needs_neighbors(self) -> bool:
        return SPECS[self.name].needs_neighbors

    def uses_neighbors(self, tp: TrainParams) -> bool:
        return self.needs_neighbors

    def configs(self, tp: TrainParams, info: DataInfo) -> tuple[GConfig, DConfig]:
        n_classes = info.n_classes if self.uses_labels(tp) else 0
        feat_dim = info.feat_dim if self.uses_neighbors(tp) else 0
        common = dict(resolution=info.resolution, channels=info.channels, n_classes=n_classes, feat_dim=feat_dim)
        g = GConfig(filters=tp.g_filters, z_dim=tp.z_dim, cond_dim=tp.h_dim,
                    cbn=self.cbn and (n_classes > 0 or feat_dim > 0), **common)
        d = DConfig(filters=tp.d_filters, spectral_norm=tp.spectral_norm, **common)
        return g, d

    def check(self, tp: TrainParams, images, labels, features, neighbors) -> DataInfo:
        """Validate the inputs this family needs; return what the networks are built from."""
        if getattr(images, "ndim", 0) != 4 or images.dtype != np.uint8:
            raise TrainError(f"training images must be uint8 N×C×H×W (images.npy), got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
        n, c, h, w = images.shape
        res = check_resolution(h, w)
        n_classes = feat_dim = 0
        if self.uses_labels(tp):
            n_classes = _check_labels(tp, labels, n, self.name)
        if self.uses_neighbors(tp):
            feat_dim = _check_neighbors(features, neighbors, n)
        if n < 2:
            raise TrainError(f"the dataset has {n} image(s); training needs at least 2")
        return DataInfo(n=n, channels=c, resolution=res, n_classes=n_classes, feat_dim=feat_dim)


def _check_labels(tp: TrainParams, labels, n: int, family: str) -> int:
    key = "train.class_conditional=true" if family == "icgan" else f"train.family={family}"
    if labels is None or len(labels) == 0 or bool(np.all(np.asarray(labels) < 0)):
        other = "set train.class_conditional=false" if family == "icgan" else "use train.family=dcgan or icgan"
        raise TrainError(f"{key} needs class labels, but the dataset is unlabelled (every label is -1). "
                         f"Use a labelled dataset (data.dataset), or {other}.")
    labels = np.asarray(labels)
    if len(labels) != n:
        raise TrainError(f"{key}: {len(labels)} labels for {n} images; run `ganops stage dataset` again")
    missing = int((labels < 0).sum())
    if missing:
        raise TrainError(f"{key} needs a label for every image, but {missing} of {n} images have none (-1). "
                         f"Use a fully labelled dataset, or a family that needs no labels.")
    return int(labels.max()) + 1


def _check_neighbors(features, neighbors, n: int) -> int:
    if features is None or neighbors is None:
        what = "instance embeddings (features.npy)" if features is None else "k-NN neighborhoods (indices.npy)"
        raise TrainError(
            f"train.family=icgan needs {what}, and none were given. Run `ganops stage embeddings` and then "
            f"`ganops stage neighbors` (or materialize the neighbors asset) first, or set train.family "
            f"to dcgan or cgan.")
    features, neighbors = np.asarray(features), np.asarray(neighbors)
    if features.ndim != 2 or features.shape[0] != n:
        raise TrainError(f"train.family=icgan: features.npy has shape {features.shape} but the dataset has {n} "
                         f"images; the embeddings are stale. Run `ganops stage embeddings` and "
                         f"`ganops stage neighbors` again.")
    if neighbors.ndim != 2 or neighbors.shape[0] != n or neighbors.shape[1] < 1:
        raise TrainError(f"train.family=icgan: indices.npy has shape {neighbors.shape} but the dataset has {n} "
                         f"images; the neighborhoods are stale. Run `ganops stage neighbors` again.")
    if neighbors.min() < 0 or neighbors.max() >= n:
        raise TrainError(f"train.family=icgan: indices.npy holds indices outside 0..{n - 1}; "
                         f"run `ganops stage neighbors` again.")
    if bool((neighbors == np.arange(n)[:, None]).any()):
        raise TrainError("train.family=icgan: indices.npy lists instances among their own neighbors; IC-GAN's "
                         "neighborhoods exclude the instance itself. Run `ganops stage neighbors` again.")
    if not np.isfinite(features).all():
        raise TrainError("train.family=icgan: features.npy holds NaN or inf; run `ganops stage embeddings` again.")
    return int(features.shape[1])
