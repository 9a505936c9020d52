"""Training batches of the generator families (and of each domain of the transfer families), vectorised
and driven by one seeded random stream (a ``torch.Generator``).

One rule covers the three families. A draw picks instances i uniformly (with replacement); the
image and label come from j, the conditioning feature from i:

- without neighborhoods (dcgan, cgan): j = i, so a real pair is (x_i, y_i) and a fake-side label
  follows the dataset's label distribution;
- with neighborhoods (IC-GAN, Casanova et al. 2021): j is a uniformly random member of A_i (the
  instance itself excluded, as in ``indices.npy``), so the real side is x_j conditioned on h_i (and
  y_j when class-conditional), and the fake side uses h_i (and the sampled neighbor's label y_j).

Images stay uint8 until a batch is drawn, then become float in [-1, 1] on the device. The only
randomness is the rng passed in, whose state the trainer checkpoints (exact resume). On several ranks
each draws the global batch's indices from the same stream and keeps its share (``share``), so the
ranks together draw what one process would, and only the share's images are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganops.core.pixels import to_float
from ganops.models.errors import TrainError

_IN_MEMORY_BYTES = 4 << 30      # datasets up to this size are held as one tensor
_ON_DEVICE_BYTES = 1 << 30      # …and moved whole to a CUDA device up to this size


@dataclass
class Draw:
    cond_index: torch.Tensor          # i: whose feature h conditions the batch
    image_index: torch.Tensor         # j: whose image (real side) and label are used


class BatchSampler:
    """Draws training batches: images (real side) and the conditions of both sides."""

    def __init__(self, images, labels: np.ndarray | None, features: np.ndarray | None,
                 neighbors: np.ndarray | None, *, use_labels: bool, use_features: bool,
                 device: torch.device, rng: torch.Generator, share=None, class_swap: float = 0.0):
        self.device = device
        self.rng = rng
        self.share = share or (lambda n: slice(0, n))     # n (the global batch) -> this rank's rows
        self.n = int(images.shape[0])
        self._np_images = None
        if isinstance(images, torch.Tensor):
            self.images = images
        elif images.nbytes <= _IN_MEMORY_BYTES:
            self.images = torch.from_numpy(np.array(images, order="C"))  # one copy: memmaps are read-only
        else:                                   # huge memmap: index rows per batch
            self.images, self._np_images = None, images
        if self.images is not None and device.type == "cuda" and self.images.nbytes <= _ON_DEVICE_BYTES:
            self.images = self.images.to(device)
        self.labels = torch.as_tensor(np.array(labels), dtype=torch.long, device=device) if use_labels else None
        self.features = (torch.as_tensor(np.array(features, dtype=np.float32), device=device)
                         if use_features else None)
        self.neighbors = torch.as_tensor(np.array(neighbors), dtype=torch.long) if neighbors is not None else None
        self.class_swap = float(class_swap) if self.neighbors is not None and self.labels is not None else 0.0
        if self.class_swap:
            self.classes, counts = self.labels.cpu().unique(return_counts=True)
            if (counts <= self.neighbors.shape[1]).any():
                small = int(self.classes[counts <= self.neighbors.shape[1]][0])
                raise TrainError(f"train.class_swap={class_swap}: class {small} has "
                                 f"{int(counts[self.classes == small][0])} images; drawing the neighbors.k="
                                 f"{self.neighbors.shape[1]} nearest of every class needs at least "
                                 f"{self.neighbors.shape[1] + 1} each: lower neighbors.k or set train.class_swap=0")

    def draw(self, n: int) -> Draw:
        """This rank's share of a global draw of ``n``."""
        mine = self.share(n)
        i = torch.randint(0, self.n, (n,), generator=self.rng)
        if self.neighbors is None:
            return Draw(i[mine], i[mine])
        col = torch.randint(0, self.neighbors.shape[1], (n,), generator=self.rng)
        i, col = i[mine], col[mine]
        j = self.neighbors[i, col]
        if self.class_swap:      # every rank draws the whole batch's streams; it searches for its own swapped rows
            swap = (torch.rand(n, generator=self.rng) < self.class_swap)[mine]
            to = self.classes[torch.randint(0, len(self.classes), (n,), generator=self.rng)][mine]
            if swap.any():
                j[swap] = self._nearest_of_class(i[swap], to[swap], col[swap])
        return Draw(i, j)

    def _nearest_of_class(self, i: torch.Tensor, to: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        """The ``col``-th nearest image of class ``to`` to each instance i (by its feature), never i itself.
        Computed per draw against every feature: O(batch × N) time, no N×classes×k table to keep."""
        f = self.features
        sims = f[i.to(f.device)] @ f.T
        other = self.labels[None, :] != to.to(f.device)[:, None]
        sims = sims.masked_fill(other, -torch.inf)
        sims[torch.arange(len(i), device=f.device), i.to(f.device)] = -torch.inf
        top = sims.topk(self.neighbors.shape[1], dim=1).indices.cpu()
        return top[torch.arange(len(i)), col]

    def conditions(self, d: Draw) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        y = self.labels[d.image_index.to(self.device)] if self.labels is not None else None
        h = self.features[d.cond_index.to(self.device)] if self.features is not None else None
        return y, h

    def images_at(self, index: torch.Tensor) -> torch.Tensor:
        if self.images is None:
            x = torch.from_numpy(np.array(self._np_images[index.numpy()]))
        else:
            x = self.images[index.to(self.images.device)]
        if x.device != self.device:
            x = x.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else x.to(self.device)
        return to_float(x)

    def real(self, n: int):
        """(x in [-1, 1], y, h) for the real side of a D step: this rank's share of a global batch of ``n``."""
        d = self.draw(n)
        return (self.images_at(d.image_index), *self.conditions(d))

    def fake_conditions(self, n: int):
        """(y, h) for the fake side."""
        return self.conditions(self.draw(n))
