"""A user's own images (``data.dataset=image_folder``): ``data.root`` is the folder.

Labels come from subfolders (``root/<class>/…``, as torchvision's ImageFolder does) when every
image sits in one; otherwise the images are unlabelled (-1). Each image is centre-cropped to a
square and resized as it is decoded, so memory is N×resolution², never the originals.

Unreadable files are never dropped silently: without ``data.skip_corrupt`` the stage fails listing
them; with it, their count and names go into the dataset summary and the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ganops.data.raw import DataSourceError, RawImages, resolve_root, root_phrase, single_split_check
from ganops.data.resize import center_crop_square, resize_square
from ganops.params import DataParams

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F", "P;L"}
_LISTED = 20  # files named in an error message; the rest are counted


def _scan(root: Path) -> tuple[list[Path], list[Path]]:
    """Image files (by extension, sorted for a stable order) and the other files that were ignored."""
    images, ignored = [], []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        (images if path.suffix.lower() in EXTENSIONS else ignored).append(path)
    return images, ignored


def decode_image(path: Path, side: int, channels: int) -> np.ndarray:
    """One image file → uint8 C×side×side: the central square, resized (also used for `ganops sample`)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()  # truncated or corrupt data fails here, not later
        mode = "L" if channels == 1 else "RGB"
        arr = np.asarray(im.convert(mode))
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return resize_square(center_crop_square(arr)[None], side)[0]


def _is_grey(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode in _GREY_MODES or (im.mode == "P" and im.palette is not None and im.palette.mode == "L")
    except Exception:
        return True  # unreadable: decided when decoding; does not vote for colour


def load_folder(p: DataParams, project_root: Path) -> RawImages:
    single_split_check("image_folder", p)
    root = resolve_root(p, project_root)
    if not root.is_dir():
        raise DataSourceError(f"image_folder: {root_phrase(p, root)} is not a directory; set data.root to the folder "
                              "that holds your images (optionally one subfolder per class)")
    files, ignored = _scan(root)
    if not files:
        raise DataSourceError(f"image_folder: no image files under {root_phrase(p, root)}; "
                              f"allowed extensions: {', '.join(sorted(EXTENSIONS))}")
    files = files[: p.limit] if p.limit else files
    rel = [f.relative_to(root) for f in files]
    labelled = all(len(r.parts) > 1 for r in rel)
    class_names = sorted({r.parts[0] for r in rel}) if labelled else None
    if not labelled and any(len(r.parts) > 1 for r in rel):
        log.warning("image_folder: some images are in subfolders and some at the top of %s; "
                    "treating all as unlabelled", root)
    channels = p.channels or (1 if all(_is_grey(f) for f in files) else 3)

    images = np.empty((len(files), channels, p.resolution, p.resolution), np.uint8)
    ok = np.zeros(len(files), bool)
    bad: list[tuple[str, str]] = []
    for i, path in enumerate(files):
        try:
            images[i] = decode_image(path, p.resolution, channels)
            ok[i] = True
        except Exception as e:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError...)
            bad.append((str(path), f"{type(e).__name__}: {e}"))
    if bad and not p.skip_corrupt:
        listed = "\n".join(f"  {f} ({why})" for f, why in bad[:_LISTED])
        more = f"\n  … and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
        raise DataSourceError(f"image_folder: {len(bad)} of {len(files)} files under {root} cannot be read:\n"
                              f"{listed}{more}\nFix or remove them, or set data.skip_corrupt=true to skip them "
                              "(they are then listed in the dataset summary).")
    if bad:
        log.warning("image_folder: skipped %d unreadable files: %s", len(bad), ", ".join(f for f, _ in bad[:_LISTED]))
    if not ok.any():
        raise DataSourceError(f"image_folder: none of the {len(files)} image files under {root} could be read")
    index = {name: i for i, name in enumerate(class_names or [])}
    labels = np.array([index[r.parts[0]] if labelled else -1 for r in rel], np.int64)
    keep = np.flatnonzero(ok)
    return RawImages(
        images=images[keep] if len(keep) < len(files) else images,
        labels=labels[keep],
        splits=np.full(len(keep), "train"),
        sources=[str(rel[i]) for i in keep],
        class_names=class_names,
        report={"root": str(root), "skipped": {"count": len(bad), "files": [f for f, _ in bad],
                                               "errors": [why for _, why in bad]},
                "ignored_non_image_files": len(ignored)},
    )
