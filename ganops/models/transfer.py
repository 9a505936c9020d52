"""What the domain-transfer families (CycleGAN, DTN) share: two unpaired domains, drawn independently
each step (``TransferBatch``), their checks, the linear learning-rate decay, and a progress grid of
fixed source images beside their translations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ganops.core import device as devices
from ganops.core.params import TransferParams
from ganops.core.pixels import to_uint8
from ganops.models.base import Context, DataInfo, Family, TrainData, check_images
from ganops.models.batches import BatchSampler
from ganops.models.errors import TrainError
from ganops.models.transfer_model import TranslatorModel


@dataclass(frozen=True)
class TransferInfo(DataInfo):
    target_n: int = 0
    target_channels: int = 0


@dataclass
class TransferBatch:
    source: torch.Tensor          # float in [-1, 1]
    target: torch.Tensor


class TransferFamily(Family):
    side_multiple: ClassVar[int] = 4
    divergence_hint: ClassVar[str] = "Lower transfer.lr."
    model = TranslatorModel

    @classmethod
    def check(cls, tp: TransferParams, data: TrainData) -> TransferInfo:
        if data.target_images is None:
            raise TrainError(f"transfer.family={cls.name} needs target-domain images: build both datasets "
                             "(transfer.source, transfer.target) with the dataset stage first")
        n, c, h, w = check_images(data.images, "source images (transfer.source)")
        nt, ct, ht, wt = check_images(data.target_images, "target images (transfer.target)")
        if (h, w) != (ht, wt) or h != w:
            raise TrainError(f"transfer: source images are {h}×{w} and target images {ht}×{wt}; set "
                             "transfer.source.resolution and transfer.target.resolution to one square side")
        if h % cls.side_multiple:
            raise TrainError(f"transfer.family={cls.name}: the side {h} must be a multiple of {cls.side_multiple}; "
                             "set transfer.source.resolution and transfer.target.resolution")
        if min(n, nt) < 2:
            raise TrainError(f"transfer: the source has {n} and the target {nt} image(s); each needs at least 2")
        return TransferInfo(n=n, channels=c, resolution=h, target_n=nt, target_channels=ct)

    def __init__(self, ctx: Context, data: TrainData, info: TransferInfo):
        super().__init__(ctx, data, info)
        self.tp: TransferParams = ctx.p.transfer
        self.batch = self.tp.batch_size
        # each domain drawn uniformly, as the generator families draw their images (held whole when they fit)
        domain = lambda images: BatchSampler(images, None, None, None, use_labels=False, use_features=False,  # noqa: E731
                                             device=ctx.device, rng=ctx.rngs["data"], share=ctx.share)
        self.source, self.target = domain(data.images), domain(data.target_images)
        # what each domain's discriminator sees of its real and translated images (none: the images themselves)
        self.aug_source = ctx.augment(self.tp.augment, info.channels, self.batch)
        self.aug_target = ctx.augment(self.tp.augment, info.target_channels, self.batch)
        rng = torch.Generator().manual_seed(ctx.p.seed + 3)      # the grid's own: training RNG untouched
        k = min(self.tp.grid_size, info.n)
        self._grid_source = self.source.images_at(torch.randperm(info.n, generator=rng)[:k].sort().values)

    def next_batch(self) -> TransferBatch:
        B = self.tp.batch_size
        return TransferBatch(self.source.real(B)[0], self.target.real(B)[0])

    def linear_decay(self, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """CycleGAN's schedule by steps: the full rate for ``decay_start`` of them, then linear to 0."""
        steps = self.tp.steps
        keep = int(round(steps * self.tp.decay_start))
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 - max(0, t - keep) / float(steps - keep + 1))

    def adam(self, *nets: nn.Module) -> torch.optim.Adam:
        params = [q for n in nets for q in n.parameters() if q.requires_grad]
        return torch.optim.Adam(params, lr=self.tp.lr, betas=(self.tp.beta1, self.tp.beta2))

    def preview_columns(self, nets: Mapping[str, nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
        """The progress grid's columns after the source: its translation (and, for CycleGAN, the
        reconstruction), as float tensors."""
        raise NotImplementedError

    @classmethod
    def translator(cls, configs: Mapping[str, dict], states: Mapping[str, dict], reverse: bool = False) -> nn.Module:
        """The trained model as one module from source images to target images (both in [-1, 1]); with
        ``reverse`` (asked only of a family its spec declares ``reversible``), target to source."""
        raise NotImplementedError

    def grid(self, nets: Mapping[str, nn.Module]) -> tuple[np.ndarray, int]:
        x = self._grid_source
        with devices.autocast(self.ctx.device):
            cols = self.preview_columns(nets, x)
        c = max(t.shape[1] for t in (x, *cols))
        rows = torch.stack([_channels(t.float(), c) for t in (x, *cols)], 1)      # N × columns × C × H × W
        return to_uint8(rows.flatten(0, 1)), rows.shape[1]


def _channels(x: torch.Tensor, c: int) -> torch.Tensor:
    return x if x.shape[1] == c else x.expand(-1, c, -1, -1)
