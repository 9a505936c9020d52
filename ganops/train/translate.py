"""Translating images with a trained domain-transfer model (what the transfer evaluation and
``ganops translate`` call): rebuild its translator from a weights file, then map uint8 images of the
source domain to uint8 images of the target domain in batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops import device as devices
from ganops.families import ALL
from ganops.models import get_family
from ganops.models.errors import TrainError
from ganops.pixels import to_float, to_uint8
from ganops.train.checkpoint import load_weights, network_config, network_state


def build_translator(weights: dict[str, Any] | str | Path, device: torch.device | str = "cpu",
                     use_ema: bool = True, reverse: bool = False) -> nn.Module:
    """The trained source → target translator (target → source with ``reverse``, CycleGAN only), in eval
    mode on ``device``: the EMA of each network where one was kept and ``use_ema``."""
    w = load_weights(Path(weights)) if isinstance(weights, (str, Path)) else weights
    family = w.get("family")
    if family not in ALL or ALL[family].kind != "transfer":
        raise TrainError(f"the model is a {family!r} generator, not a domain-transfer model (cyclegan, dtn); "
                         "use `ganops sample` for generators")
    names = w["configs"]
    configs = {n: network_config(w, n) for n in names}
    states = {n: network_state(w, n, ema=use_ema) for n in names}
    model = get_family(family).translator(configs, states, reverse=reverse)
    return model.to(torch.device(device)).eval().requires_grad_(False)


@torch.inference_mode()
def translate(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 N×C×H×W source images → uint8 N×C'×H×W translations (C' the target's channels)."""
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.array(images[i:i + batch_size])).to(dev))   # a copy: mmaps are read-only
        if dev.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with devices.autocast(dev):
            out.append(to_uint8(model(x)))
    if not out:
        raise TrainError("translate: no images given")
    return np.concatenate(out)


def side_by_side(*columns: np.ndarray) -> np.ndarray:
    """Images of the same rows (source, translation, reconstruction…) interleaved row by row, grey
    repeated to RGB where the columns mix channel counts: a grid of ``len(columns)``-image groups."""
    c = max(col.shape[1] for col in columns)
    same = [np.repeat(col, c, axis=1) if col.shape[1] != c else col for col in columns]
    return np.stack(same, 1).reshape(-1, *same[0].shape[1:])


def translation_grid(model: nn.Module, images: np.ndarray, path: Path, reverse: nn.Module | None = None,
                     per_row: int = 4) -> Path:
    """PNG of source images beside their translations (and, given ``reverse``, their reconstructions),
    ``per_row`` groups to a row."""
    from ganops.visual import save_grid

    fake = translate(model, images)
    cols = (images, fake, translate(reverse, fake)) if reverse is not None else (images, fake)
    return save_grid(side_by_side(*cols), Path(path), nrow=per_row * len(cols))
