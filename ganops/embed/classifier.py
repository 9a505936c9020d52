"""A supervised encoder: the small CNN trained to predict the labels (class-conditional IC-GAN).

Features are the penultimate layer (the CNN's ``dim`` output, before the class logits). Images
without a label (-1) are embedded but not trained on. Training uses mild augmentations so the
features generalise beyond memorised pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ganops.core.params import Params
from ganops.embed.augment import Policy
from ganops.embed.base import EncoderError, MetricLog
from ganops.embed.nets import SmallCNN
from ganops.embed.training import EncoderFamily, fit
from ganops.models.base import DataInfo, TrainData

POLICY = Policy(crop_area=(0.6, 1.0), rotate_deg=10.0, shear=0.1, elastic=0.02, blur_p=0.1, erase_p=0.1)
# For a classifier that must read another domain's drawings (DTN's f, the transfer's judge): digits of any
# size in the frame (zoomed out to ~3× the area around them) and stronger stroke warps. A classifier of the
# 8×8 `digits` reads MNIST at 0.38 with POLICY, 0.82 with this one (30 epochs).
CROSS_DOMAIN = Policy(crop_area=(0.5, 3.0), rotate_deg=15.0, shear=0.1, elastic=0.05, blur_p=0.1, erase_p=0.1,
                      stroke_p=0.5)


def check_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The labelled rows and each one's class index (0..C-1); an EncoderError when fewer than 2 classes."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.flatnonzero(labels >= 0)
    if rows.size == 0:
        raise EncoderError("embed.encoder=classifier needs class labels, but every image's label is -1 "
                           "(unknown). Use embed.encoder=simclr (self-supervised), or a labelled dataset "
                           "(data.dataset=mnist, digits, …; image_folder takes labels from sub-folders).")
    classes = np.unique(labels[rows])
    if classes.size < 2:
        raise EncoderError(f"embed.encoder=classifier needs at least 2 classes, but every labelled image has "
                           f"label {int(classes[0])}. Use embed.encoder=simclr instead.")
    mapped = np.full(len(labels), -1, dtype=np.int64)
    mapped[rows] = np.searchsorted(classes, labels[rows])
    return rows, mapped


class Classifier(EncoderFamily):
    name = "classifier"
    policy: ClassVar[Policy] = POLICY

    @classmethod
    def rows(cls, data: TrainData) -> np.ndarray:
        return check_labels(data.labels)[0]

    @classmethod
    def check(cls, e, data: TrainData) -> DataInfo:
        if data.labels is None:
            raise EncoderError("embed.encoder=classifier needs labels; none were given")
        rows = cls.rows(data)
        if len(rows) < 2:
            raise EncoderError(f"embed.encoder=classifier needs at least 2 labelled images, got {len(rows)}")
        return super().check(e, data)

    def build(self, info: DataInfo) -> None:
        _, mapped = check_labels(self.data.labels)
        self.n_classes = int(mapped.max()) + 1
        self.targets = torch.from_numpy(mapped)
        self.encoder = SmallCNN(info.channels, self.e.dim, resolution=info.resolution)
        self.networks = {"encoder": self.encoder, "logits": nn.Sequential(nn.ReLU(), nn.Linear(self.e.dim, self.n_classes))}

    def loss(self, idx: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        x = self.in_format(self.views(x))
        return F.cross_entropy(self.networks["logits"](self.encoder(x)).float(), self.targets[idx].to(x.device))


class CrossDomainClassifier(Classifier):
    """The classifier with CROSS_DOMAIN views (``evaluator.augment: cross_domain``)."""
    policy: ClassVar[Policy] = CROSS_DOMAIN


def train(images: np.ndarray, labels: np.ndarray, p: Params, device: torch.device, checkpoint: Path | None = None,
          log: MetricLog | None = None, on_epoch: Callable[[int, nn.Module], None] | None = None,
          family: type[Classifier] = Classifier) -> tuple[SmallCNN, dict[str, Any], nn.Module]:
    """The trained CNN (features), its metrics, and the class-logit head on top of the features."""
    fam, metrics = fit(family, TrainData(images, labels), p, device, checkpoint, log, on_epoch)
    metrics["classes"] = fam.n_classes
    return fam.encoder, metrics, fam.networks["logits"]
