"""Images between their stored form (uint8, 0..255) and the networks' (float in [-1, 1])."""

from __future__ import annotations

import numpy as np
import torch


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float → uint8 N×C×H×W numpy."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
