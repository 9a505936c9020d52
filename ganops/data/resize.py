"""Vectorised pixel operations on uint8 N×C×H×W batches: resizing and channel conversion.

Both work in chunks so that the float32 copy torch needs stays small (a few tens of MiB) however
large the dataset is; inside a chunk everything is one batched call, no per-image Python loop.
"""

from __future__ import annotations

import numpy as np

# Budget for the float32 working copy of one chunk.
_CHUNK_BYTES = 64 << 20
# ITU-R 601-2 luma in thousandths, the weights PIL's convert("L") uses, so that an RGB image
# turned grey here matches the same image turned grey by PIL.
_LUMA = (299, 587, 114)


def _chunk_len(per_image_values: int) -> int:
    return max(1, _CHUNK_BYTES // (4 * max(1, per_image_values)))


def resize_square(images: np.ndarray, side: int) -> np.ndarray:
    """Resize to side×side: bilinear with antialias on float, rounded back to uint8.

    Antialias matters when shrinking (CelebA 178 px → 64 px): plain bilinear would alias. A
    non-square input is stretched; sources that want a crop (CelebA) crop before calling this.
    """
    images = np.asarray(images)
    n, c, h, w = images.shape
    if (h, w) == (side, side):
        return images
    import torch
    import torch.nn.functional as F

    out = np.empty((n, c, side, side), np.uint8)
    step = _chunk_len(c * max(h * w, side * side))
    for start in range(0, n, step):
        x = torch.from_numpy(np.asarray(images[start:start + step], dtype=np.float32))
        y = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + step] = y.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert to 1 (luma) or 3 (grey repeated) channels; 0 or the current count keeps them."""
    images = np.asarray(images)
    have = images.shape[1]
    if channels in (0, have):
        return images
    if channels == 3 and have == 1:
        return np.repeat(images, 3, axis=1)
    if channels == 1 and have == 3:
        n, _, h, w = images.shape
        out = np.empty((n, 1, h, w), np.uint8)
        weights = np.asarray(_LUMA, np.uint32).reshape(1, 3, 1, 1)
        step = _chunk_len(3 * h * w)
        for start in range(0, n, step):
            x = images[start:start + step].astype(np.uint32)
            # +500 rounds to nearest, as PIL does.
            out[start:start + step, 0] = ((x * weights).sum(axis=1) + 500) // 1000
        return out
    raise ValueError(f"cannot convert {have} channels to {channels}; allowed: 0 (keep), 1, 3")


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """C×H×W → C×S×S with S = min(H, W), the central square (the face, for CelebA)."""
    _, h, w = image.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return image[:, top:top + s, left:left + s]


def frame(images: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """Images as the dataset holds them: centre square at resolution², converted to ``channels`` (0 keeps)."""
    return np.ascontiguousarray(to_channels(resize_square(images, resolution), channels))
