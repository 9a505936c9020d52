"""PNG grids of uint8 images: the dataset's sample grid and the neighbor panels.

Small images (16- or 32-px digits) are upscaled by an integer nearest-neighbour factor so each cell is
at least CELL_MIN px: a reader sees the pixels the model sees, not a blur, and not a thumbnail.
Everything here is deterministic (no fonts from the system, no timestamps): artifacts are hashed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ganops.core.artifacts import atomic_write_bytes

CELL_MIN = 96      # px on a cell's smaller side: readable without zooming
MAX_SIDE = 4096    # px on a picture's longer side: still opens in a browser and in MLflow

Color = tuple[int, int, int]


def grid(images: np.ndarray, nrow: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """N×C×H×W uint8 → one H'×W'×C uint8 mosaic, ``nrow`` images per row."""
    images = _check(images)
    n, c, h, w = images.shape
    ncol = max(1, min(nrow, n))
    rows = max(1, -(-n // ncol))
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y:y + h, x:x + w] = images[i].transpose(1, 2, 0)
    return out


def scale_for(cell: int, size: Sequence[int], max_side: int = MAX_SIDE) -> int:
    """Integer factor bringing a ``cell``-px image to ≥ CELL_MIN px, capped so a picture of ``size``
    (its unscaled height, width) stays ≤ ``max_side`` px; never below 1 (we never shrink)."""
    want = -(-CELL_MIN // max(1, cell))
    return max(1, min(want, max_side // max(1, *size)))


def png_bytes(mosaic: np.ndarray, scale: int = 1) -> bytes:
    """Encode an H×W×C mosaic, upscaled ``scale`` times (nearest, so pixels stay sharp)."""
    img = Image.fromarray(mosaic[..., 0] if mosaic.shape[-1] == 1 else mosaic)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return _encode(img)


def side_by_side(*columns: np.ndarray) -> np.ndarray:
    """Images of the same rows (source, translation, reconstruction…) interleaved row by row, grey
    repeated to RGB where the columns mix channel counts: a grid of ``len(columns)``-image groups."""
    c = max(col.shape[1] for col in columns)
    same = [np.repeat(col, c, axis=1) if col.shape[1] != c else col for col in columns]
    return np.stack(same, 1).reshape(-1, *same[0].shape[1:])


def save_grid(images: np.ndarray, path: Path, nrow: int = 8) -> Path:
    """PNG grid, ``nrow`` images per row; the pad between cells scales with the images."""
    mosaic = grid(images, nrow)
    return atomic_write_bytes(Path(path), png_bytes(mosaic, scale_for(min(images.shape[2:]), mosaic.shape[:2])))


def annotated_grid(images: np.ndarray, ncol: int, captions: Sequence[str] | None = None,
                   frames: Sequence[Color | None] | None = None, split: int = 0) -> Image.Image:
    """N×C×H×W uint8 → an RGB picture, ``ncol`` images per row, each upscaled to ≥ CELL_MIN px where
    MAX_SIDE allows. Per image (optional): a frame colour (None: no frame) and a caption drawn beneath
    it. ``split`` > 0 puts a grey band after the first ``split`` columns, setting them apart."""
    images = _check(images)
    n, c, h, w = images.shape
    if c not in (1, 3):
        raise ValueError(f"annotated_grid wants 1 or 3 channels, got {c}")
    captions = list(captions) if captions is not None and any(captions) else None
    frames = list(frames) if frames is not None else [None] * n
    ncol = max(1, min(ncol, n))
    nrows = -(-n // ncol)
    font = _font()
    text_w = max((font.getbbox(t)[2] for t in captions), default=1) if captions else 1

    def layout(s: int) -> dict[str, int]:
        cw, ch = w * s, h * s
        b = max(2, cw // 32)                       # frame width, proportional to the cell
        t = max(1, min(3, cw // max(1, text_w)))   # integer text zoom: the bitmap font is 11 px tall
        g = dict(cw=cw, ch=ch, b=b, gap=2 * b, t=t, cap=(11 + 3) * t if captions else 0)
        g["band"] = 3 * g["gap"] if split else 0
        g["slot_w"], g["slot_h"] = cw + 2 * b + g["gap"], ch + 2 * b + g["cap"] + g["gap"]
        g["W"], g["H"] = g["gap"] + ncol * g["slot_w"] + g["band"], g["gap"] + nrows * g["slot_h"]
        return g

    # The largest zoom (up to CELL_MIN) whose whole picture fits MAX_SIDE.
    s = -(-CELL_MIN // min(h, w))
    while s > 1 and max(layout(s)["W"], layout(s)["H"]) > MAX_SIDE:
        s -= 1
    g = layout(s)

    canvas = Image.new("RGB", (g["W"], g["H"]), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if split:
        x = g["gap"] + split * g["slot_w"]
        draw.rectangle((x, 0, x + g["band"] - g["gap"] - 1, g["H"] - 1), fill=(200, 200, 200))
    for i in range(n):
        r, q = divmod(i, ncol)
        x = g["gap"] + q * g["slot_w"] + (g["band"] if split and q >= split else 0)
        y = g["gap"] + r * g["slot_h"]
        if frames[i] is not None:
            draw.rectangle((x, y, x + g["cw"] + 2 * g["b"] - 1, y + g["ch"] + 2 * g["b"] - 1), fill=frames[i])
        tile = Image.fromarray(np.repeat(images[i], 3 // c, axis=0).transpose(1, 2, 0))
        canvas.paste(tile.resize((g["cw"], g["ch"]), Image.NEAREST), (x + g["b"], y + g["b"]))
        if captions and captions[i]:
            text = _text(captions[i], font, g["t"], frames[i] or (40, 40, 40))
            text = text.crop((0, 0, min(text.width, g["cw"] + 2 * g["b"]), text.height))
            canvas.paste(text, (x + (g["cw"] + 2 * g["b"] - text.width) // 2, y + g["ch"] + 2 * g["b"] + g["t"]))
    return canvas


def save_image(img: Image.Image, path: Path) -> Path:
    return atomic_write_bytes(Path(path), _encode(img))


def _check(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"grid wants uint8 N×C×H×W images, got {images.dtype} {images.shape}")
    return images


def _font() -> ImageFont.ImageFont:
    # Pillow's built-in bitmap font: always present, same glyphs everywhere, no anti-aliasing to vary.
    # (Pillow >= 10.1's load_default() returns a FreeType font; load_default_imagefont is the bitmap one.)
    loader = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)
    return loader()


def _text(caption: str, font: ImageFont.ImageFont, zoom: int, color: Color) -> Image.Image:
    """The caption drawn at the font's native size, then zoomed (nearest) so it stays crisp."""
    _, _, tw, _ = font.getbbox(caption)
    img = Image.new("RGB", (max(1, tw), 11), (255, 255, 255))
    ImageDraw.Draw(img).text((0, 0), caption, fill=color, font=font)
    return img.resize((img.width * zoom, img.height * zoom), Image.NEAREST)


def _encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
