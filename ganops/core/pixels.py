"""Images between their stored form (uint8, 0..255) and the networks' (float in [-1, 1])."""

from __future__ import annotations

import numpy as np
import torch


def to_float(x_uint8: torch.Tensor) -> torch.Tensor:
    return x_uint8.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] float → uint8 N×C×H×W numpy."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """N×C×H×W → N×``channels``×H×W: grey repeated to RGB, RGB averaged to grey (ITU-R 601 luma)."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, channels, -1, -1)
    if channels == 1 and c == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")
