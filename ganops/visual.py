"""PNG grids of uint8 images: the dataset's sample grid and the neighbor panels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ganops.artifacts import atomic_write_bytes


def grid(images: np.ndarray, nrow: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """N×C×H×W uint8 → one H'×W'×C uint8 mosaic, ``nrow`` images per row."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"grid wants uint8 N×C×H×W images, got {images.dtype} {images.shape}")
    n, c, h, w = images.shape
    ncol = max(1, min(nrow, n))
    rows = max(1, -(-n // ncol))
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y:y + h, x:x + w] = images[i].transpose(1, 2, 0)
    return out


def png_bytes(mosaic: np.ndarray, min_side: int = 256) -> bytes:
    """Encode an H×W×C mosaic, upscaled (nearest) so small images stay visible in the UI."""
    img = Image.fromarray(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic)
    scale = max(1, min_side // max(1, min(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: np.ndarray, path: Path, nrow: int = 8) -> Path:
    return atomic_write_bytes(Path(path), png_bytes(grid(images, nrow)))
