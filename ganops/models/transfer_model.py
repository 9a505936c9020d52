"""What a trained domain-transfer model (CycleGAN, DTN) can do: translate source-domain images to the
target domain, and back where its family learns that direction (its spec's ``reversible``), with
the frame (side, channels) each direction reads, and its preview grid.

``TransferFamily.model`` is this class: the transfer stages, the evaluation and ``ganops translate`` ask
it instead of looking for a family's network names in the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops.core import device as devices
from ganops.core.pixels import to_float, to_uint8
from ganops.models.errors import TrainError
from ganops.models.trained import Port, TrainedModel


class TranslatorModel(TrainedModel):
    def __init__(self, weights: dict[str, Any], device: torch.device | str = "cpu", use_ema: bool = True):
        super().__init__(weights, device, use_ema)
        from ganops.models import get_family

        self.family_class = get_family(self.family)
        self._translators: dict[bool, nn.Module] = {}

    @property
    def reversible(self) -> bool:
        """Whether it also translates target → source (CycleGAN's G_ba)."""
        from ganops.catalog.families import TRANSFER_SPECS

        return TRANSFER_SPECS[self.family].reversible

    def frame(self, reverse: bool = False) -> tuple[int, int]:
        """(side, channels) of the images the model reads: the source's (the target's with ``reverse``), from
        the data facts the trainer recorded."""
        ident = self.weights.get("identity", {})
        return int(ident["data resolution"]), int(ident["data target_channels" if reverse else "data channels"])

    def translator(self, reverse: bool = False) -> nn.Module:
        """The source → target network (target → source with ``reverse``) on images in [-1, 1], in eval
        mode on the model's device: the EMA of each network where one was kept."""
        if reverse and not self.reversible:
            raise TrainError(f"{self.describe()} translates one way only (source → target); it has no reverse "
                             "generator")
        if reverse not in self._translators:
            names = self.network_names
            net = self.family_class.translator({n: self.config(n) for n in names}, {n: self.state(n) for n in names},
                                               reverse=reverse)
            self._translators[reverse] = net.to(self.device).eval().requires_grad_(False)
        return self._translators[reverse]

    def served(self) -> tuple[nn.Module, list[Port], Port]:
        """The source → target network on images in [-1, 1] (the CPU copy, whatever device this model is on)."""
        names = self.network_names
        net = self.family_class.translator({n: self.config(n) for n in names}, {n: self.state(n) for n in names})
        side, channels = self.frame()
        out_channels = int(self.weights.get("identity", {}).get("data target_channels", channels))
        return (net.eval(), [Port("images", "float32", (-1, channels, side, side))],
                Port("translations", "float32", (-1, out_channels, side, side)))

    @torch.inference_mode()
    def translate(self, images: np.ndarray, reverse: bool = False, batch_size: int = 256) -> np.ndarray:
        """uint8 N×C×H×W source images → uint8 N×C'×H×W translations (C' the target's channels)."""
        net, dev = self.translator(reverse), self.device
        out = []
        for i in range(0, len(images), batch_size):
            x = to_float(torch.from_numpy(np.array(images[i:i + batch_size])).to(dev))   # a copy: mmaps are read-only
            if dev.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with devices.autocast(dev):
                out.append(to_uint8(net(x)))
        if not out:
            raise TrainError("translate: no images given")
        return np.concatenate(out)

    def preview_grid(self, path: Path, images: np.ndarray, per_row: int = 4) -> Path:
        """samples.png of the translator artifact: source images beside their translations (and, for a
        reversible model, their reconstructions), ``per_row`` groups to a row."""
        from ganops.core.visual import save_grid, side_by_side

        fake = self.translate(images)
        cols = (images, fake, self.translate(fake, reverse=True)) if self.reversible else (images, fake)
        return save_grid(side_by_side(*cols), Path(path), nrow=per_row * len(cols))
