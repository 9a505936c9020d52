"""A user's own images (``data.dataset=image_folder``): ``data.root`` is the folder.

Labels come from subfolders (``root/<class>/…``, as torchvision's ImageFolder does) when every
image sits in one; otherwise the images are unlabelled (-1). Each image is centre-cropped to a
square and resized as it is decoded, so memory is N×resolution², never the originals.

Unreadable files are never dropped silently: without ``data.skip_corrupt`` the stage fails listing
them; with it, their count and names go into the dataset summary and the log.

Every mode is brought to 8-bit grey or colour faithfully (16-bit scaled, not clipped; transparency
composited over white); with ``data.channels=0`` the majority of the files decides grey or colour,
and the files converted are counted per mode in the dataset summary. ``data.limit`` picks the
files (``raw.sample_indices``) before any is decoded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.core.params import DataParams
from ganops.data.raw import (
    DataSourceError,
    RawImages,
    limit_report,
    resolve_root,
    root_phrase,
    sample_indices,
    single_split_check,
)
from ganops.data.resize import center_crop_square, resize_square, to_channels
from ganops.data.stream import Decoded, Stream, tally

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
_GREY_MODES = {"1", "L", "LA", "La", "F"}  # and every integer mode ("I", "I;16", "I;16B", ...)
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_WHITE = (255, 255, 255, 255)
_LISTED = 20   # unreadable files named in an error message; the rest are counted
_NAMED = 1000  # non-image files named in the report; a folder of annotations must not bloat summary.json


def _scan(root: Path) -> tuple[list[Path], list[Path]]:
    """Image files (by extension, sorted for a stable order) and the other files that were ignored."""
    images, ignored = [], []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        (images if path.suffix.lower() in EXTENSIONS else ignored).append(path)
    return images, ignored


class Names(Sequence[str]):
    """Relative paths in little memory: UTF-8 bytes in one fixed-width numpy array, about the length of the
    longest path per file (a million Python strings cost ~0.1 kB each, their Path objects ~1 kB). '/' is
    stored as NUL, which no name holds and every character sorts after: a byte sort is then Path's order, by
    component (cat/ before cat-2/ although '-' sorts before '/'). Indexing with an int gives the str, with a
    slice or an index array another ``Names``."""

    def __init__(self, raw: np.ndarray):
        self.raw = raw

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i):
        if isinstance(i, (int, np.integer)):
            return self.raw[i].replace(b"\0", b"/").decode("utf-8", "surrogateescape")
        return Names(self.raw[i])

    def __eq__(self, other) -> bool:
        return list(self) == list(other)


def _encoded(rels: list[str]) -> np.ndarray:
    return np.array([r.encode("utf-8", "surrogateescape").replace(b"/", b"\0") for r in rels], dtype=np.bytes_)


def _scan_names(root: Path) -> tuple[Names, list[str]]:
    """As ``_scan``, as posix paths relative to ``root`` (``Names``, not Path objects: a million of those cost a
    gigabyte), in the same order (by path components, as Paths sort). Memory: the array, and one folder's
    names as Python strings at a time."""
    chunks, ignored = [], []
    for folder, subfolders, names in os.walk(root):     # symlinked folders are not entered, as rglob does not
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        where = os.path.relpath(folder, root)
        images = []
        for name in names:
            rel = name if where == "." else f"{where}/{name}".replace(os.sep, "/")
            if name.startswith(".") or not os.path.isfile(os.path.join(folder, name)):
                continue
            (images if os.path.splitext(name)[1].lower() in EXTENSIONS else ignored).append(rel)
        if images:
            chunks.append(_encoded(images))
    rel = Names(np.sort(np.concatenate(chunks)) if chunks else np.zeros(0, "S1"))
    return rel, sorted(ignored, key=lambda rel: rel.split("/"))


def _scale_to_8bit(im):
    """Integer and float modes → 8-bit "L" by scaling: PIL's convert("L") clips at 255, which turns
    16-bit data into black and white."""
    from PIL import Image

    arr = np.nan_to_num(np.asarray(im), nan=0.0)
    if im.mode == "F":
        # Float images hold 0..1 intensities (the numpy/scikit-image convention); outside is clipped.
        out = np.rint(np.clip(arr, 0.0, 1.0) * 255.0)
    else:
        # Integer modes ("I" is how PIL may open 16-bit files) hold 0..65535; /257 maps 65535 → 255
        # and 257·v → v exactly, and is within 1 of v >> 8.
        out = (np.clip(arr.astype(np.int64), 0, 65535) * 255 + 32767) // 65535
    return Image.fromarray(out.astype(np.uint8), "L")


def _to_8bit(im):
    """Any PIL mode → "L" or "RGB" holding the same grey levels or colours."""
    from PIL import Image

    if im.mode == "F" or im.mode.startswith("I"):
        return _scale_to_8bit(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        # Transparent pixels go over white, the background viewers show; the colour stored under
        # alpha 0 is arbitrary (often black) and would otherwise appear.
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", im.size, _WHITE), rgba).convert("RGB")
    return im if im.mode in ("L", "RGB") else im.convert("L" if im.mode == "1" else "RGB")


def _is_grey(mode: str, rgb: np.ndarray) -> bool:
    """Grey by mode; a palette image is grey when its colours are (its mode cannot tell)."""
    if mode in ("P", "PA"):
        return rgb.ndim == 2 or bool((rgb == rgb[..., :1]).all())
    return mode in _GREY_MODES or mode.startswith("I")


def _decode(path: Path, side: int) -> tuple[np.ndarray, str]:
    """One file → (uint8 C×side×side with C = 1 for a grey file and 3 for a colour one, the file's mode)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()  # truncated or corrupt data fails here, not later
        mode = im.mode
        arr = np.asarray(_to_8bit(im))
    if arr.ndim == 3:
        arr = arr[..., :1] if _is_grey(mode, arr) else arr
        arr = arr.transpose(2, 0, 1)
    else:
        arr = arr[None]
    return resize_square(center_crop_square(arr)[None], side)[0], mode


def decode_image(path: Path, side: int, channels: int) -> np.ndarray:
    """One image file → uint8 C×side×side: the central square, resized (also used for `ganops sample`).

    The same steps as the dataset stage (channels converted after resizing), so an instance given
    to `ganops sample` is prepared exactly as the dataset's images were.
    """
    return to_channels(_decode(path, side)[0][None], channels)[0]


def _labels(rel: Names, root: Path) -> tuple[np.ndarray, list[str] | None]:
    """Labels from the first subfolder when every image sits in one, else all -1 (``rel``: paths relative to
    ``root``)."""
    # (numpy's string functions take NUL for an empty needle: a loop over the bytes, each gone once read)
    nested = np.fromiter((b"\0" in r for r in rel.raw), bool, count=len(rel))
    if not nested.all():
        if nested.any():
            log.warning("image_folder: some images are in subfolders and some at the top of %s; "
                        "treating all as unlabelled", root)
        return np.full(len(rel), -1, np.int64), None
    first = np.fromiter((r.split(b"\0", 1)[0] for r in rel.raw), rel.raw.dtype, count=len(rel))
    first, index = np.unique(first, return_inverse=True)        # sorted, as the names are
    return index.astype(np.int64), [f.decode("utf-8", "surrogateescape") for f in first]



def _decode_all(files: list[Path], side: int) -> tuple[list[tuple[np.ndarray, str] | None], list[tuple[str, str]]]:
    decoded, bad = [], []
    for path in files:
        try:
            decoded.append(_decode(path, side))
        except Exception as e:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError...)
            decoded.append(None)
            bad.append((str(path), f"{type(e).__name__}: {e}"))
    return decoded, bad


def _check_unreadable(bad: list[tuple[str, str]], n: int, root: Path, p: DataParams) -> None:
    if bad and not p.skip_corrupt:
        listed = "\n".join(f"  {f} ({why})" for f, why in bad[:_LISTED])
        more = f"\n  … and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
        raise DataSourceError(f"image_folder: {len(bad)} of {n} files under {root} cannot be read:\n"
                              f"{listed}{more}\nFix or remove them, or set data.skip_corrupt=true to skip them "
                              "(they are then listed in the dataset summary).")
    if bad:
        log.warning("image_folder: skipped %d unreadable files: %s", len(bad), ", ".join(f for f, _ in bad[:_LISTED]))
    if len(bad) == n:
        raise DataSourceError(f"image_folder: none of the {n} image files under {root} could be read")


def _channel_report(counts: dict[str, dict[str, int]], p: DataParams, channels: int | None = None) -> dict:
    """The channels chosen (data.channels, else the majority's; a tie keeps colour) and what was converted, from
    {file mode: {"grey": files, "colour": files}} (grey or colour as decoded, before any conversion)."""
    votes = {"grey": sum(c.get("grey", 0) for c in counts.values()),
             "colour": sum(c.get("colour", 0) for c in counts.values())}
    channels = channels or p.channels or (1 if votes["grey"] > votes["colour"] else 3)
    target = "L" if channels == 1 else "RGB"
    conversions = {f"{mode}->{target}": sum(c.values()) for mode, c in sorted(counts.items()) if mode != target}
    across = votes["colour" if channels == 1 else "grey"]
    return {"channels": channels, "channels_from": "data.channels" if p.channels else "majority",
            "channels_by_majority": votes, "converted_across_grey_colour": across,
            "conversions": dict(sorted(conversions.items()))}


def _log_conversion(report: dict, p: DataParams) -> None:
    across, channels, votes = report["converted_across_grey_colour"], report["channels"], report["channels_by_majority"]
    if not across:
        return
    what = "colour files to grey" if channels == 1 else "grey files to colour"
    if p.channels:
        log.info("image_folder: converted %d %s (data.channels=%d)", across, what, channels)
    else:
        n = votes["grey"] + votes["colour"]
        log.warning("image_folder: converted %d %s, as most files (%d of %d) are %s; set data.channels=%d "
                    "to choose", across, what, n - across, n, "grey" if channels == 1 else "colour",
                    3 if channels == 1 else 1)


def _mode_counts(decoded: list[tuple[np.ndarray, str]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for arr, mode in decoded:
        tally(counts, mode, "grey" if arr.shape[0] == 1 else "colour")
    return counts


def _convert(decoded: list[tuple[np.ndarray, str]], p: DataParams) -> tuple[np.ndarray, dict]:
    """Stack the images with one channel count (data.channels, else the majority's; a tie keeps colour)."""
    report = _channel_report(_mode_counts(decoded), p)
    channels = report["channels"]
    images = np.empty((len(decoded), channels, p.resolution, p.resolution), np.uint8)
    for i, (arr, _) in enumerate(decoded):
        images[i] = to_channels(arr[None], channels)[0]
    _log_conversion(report, p)
    return images, report


@dataclass
class _Listing:
    root: Path
    rel: Names                   # the image files kept (data.limit), sorted, relative to root
    labels: np.ndarray
    class_names: list[str] | None
    report: dict

    @property
    def files(self) -> list[str]:
        return [os.path.join(self.root, r) for r in self.rel]

    def path(self, i: int) -> str:
        return os.path.join(self.root, self.rel[i])


def _list(p: DataParams, project_root: Path, seed: int) -> _Listing:
    """The files data.limit keeps (never decoded here), their labels, and what was ignored."""
    single_split_check("image_folder", p)
    root = resolve_root(p, project_root)
    if not root.is_dir():
        raise DataSourceError(f"image_folder: {root_phrase(p, root)} is not a directory; set data.root to the folder "
                              "that holds your images (optionally one subfolder per class)")
    rel, names = _scan_names(root)
    if not rel:
        raise DataSourceError(f"image_folder: no image files under {root_phrase(p, root)}; "
                              f"allowed extensions: {', '.join(sorted(EXTENSIONS))}")
    labels, class_names = _labels(rel, root)  # from all files: a sample must not change the class indices
    keep = sample_indices(labels, p.limit, seed)  # before decoding: dropped files are never read
    report = {"root": str(root), "ignored_non_image_files": {"count": len(names), "files": names[:_NAMED]}}
    if len(keep) < len(rel):
        report["limit"] = limit_report(labels, keep, seed)
        rel = rel[keep]
    return _Listing(root, rel, labels[keep], class_names, report)


def _skipped(bad: list[tuple[str, str]]) -> dict:
    return {"count": len(bad), "files": [f for f, _ in bad], "errors": [why for _, why in bad]}


def load_folder(p: DataParams, project_root: Path, seed: int = 0) -> RawImages:
    """The whole folder decoded in memory (``ganops sample --instances``; the dataset stage streams it)."""
    ls = _list(p, project_root, seed)
    decoded, bad = _decode_all(ls.files, p.resolution)
    _check_unreadable(bad, len(ls.rel), ls.root, p)
    ok = [i for i, d in enumerate(decoded) if d is not None]
    images, channel_report = _convert([d for d in decoded if d is not None], p)
    report = {**ls.report, **channel_report, "skipped": _skipped(bad)}
    return RawImages(images=images, labels=ls.labels[ok], splits=np.full(len(ok), "train"),
                     sources=list(ls.rel[np.asarray(ok, np.int64)]), class_names=ls.class_names,
                     report=report)


class _Files:
    """Map-style dataset of a DataLoader: row → (row, framed image or None, (mode, grey|colour), why)."""

    def __init__(self, listing: _Listing, side: int, channels: int):
        self.listing, self.side, self.channels = listing, side, channels

    def __len__(self) -> int:
        return len(self.listing.rel)

    def __getitem__(self, i: int):
        try:
            arr, mode = _decode(self.listing.path(i), self.side)
        except Exception as e:  # PIL raises many types for bad files (OSError, SyntaxError, ValueError...)
            return i, None, ("", ""), f"{type(e).__name__}: {e}"
        kind = "grey" if arr.shape[0] == 1 else "colour"
        return i, to_channels(arr[None], self.channels)[0], (mode, kind), ""


class _Modes(_Files):
    """row → (row, None, (mode, grey|colour), why) from the file's header (palettes decoded: their colours
    decide): the majority vote of data.channels=0 before any image is written."""

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.listing.path(i)) as im:
                mode = im.mode
                rgb = np.asarray(_to_8bit(im)) if mode in ("P", "PA") else None
        except Exception as e:  # as _Files: any error is the file's
            return i, None, ("", ""), f"{type(e).__name__}: {e}"
        return i, None, (mode, "grey" if _is_grey(mode, rgb) else "colour"), ""


def _as_list(batch):
    return batch


def _loader(dataset, rows: np.ndarray, chunk: int, workers: int):
    """The rows of ``dataset`` in order, ``chunk`` at a time, decoded by ``workers`` processes (0: this one)."""
    import torch.utils.data as tud

    workers = min(workers, len(os.sched_getaffinity(0)))     # more would only oversubscribe the cores
    return tud.DataLoader(tud.Subset(dataset, rows), batch_size=chunk, shuffle=False,
                          num_workers=workers if len(rows) > chunk else 0, collate_fn=_as_list,
                          prefetch_factor=2 if workers and len(rows) > chunk else None,
                          persistent_workers=False)


def folder_labels(p: DataParams, project_root: Path, seed: int = 0) -> np.ndarray:
    """The labels of the files the dataset stage would take (-1 unknown), from the listing alone: no file opened."""
    return _list(p, project_root, seed).labels


def stream_folder(p: DataParams, project_root: Path, seed: int = 0, workers: int = 0):
    """The folder as a stream (``stream`` module): listed now, decoded a chunk at a time by ``workers``
    DataLoader processes when the dataset stage reads it. With data.channels=0 a first pass reads every file's
    header (and palette) for the majority vote."""
    import hashlib

    ls = _list(p, project_root, seed)
    channels = p.channels
    if not channels:
        counts: dict[str, dict[str, int]] = {}
        for batch in _loader(_Modes(ls, p.resolution, 0), np.arange(len(ls.rel)), 4096, workers):
            for _, _, (mode, kind), why in batch:
                if not why:
                    tally(counts, mode, kind)
        channels = _channel_report(counts, p)["channels"]
    files = _Files(ls, p.resolution, channels)

    def read(rows: np.ndarray, chunk: int):
        for batch in _loader(files, rows, chunk, workers):
            ok = np.array([img is not None for _, img, _, _ in batch], bool)
            images = [img for _, img, _, _ in batch if img is not None]
            yield Decoded(rows=np.array([rows_i for rows_i, _, _, _ in batch], np.int64),
                          images=np.stack(images) if images else np.zeros((0, channels, p.resolution, p.resolution),
                                                                             np.uint8),
                          ok=ok, bad=[(ls.path(i), why) for i, img, _, why in batch if img is None],
                          modes=[mk for _, img, mk, _ in batch if img is not None])

    def finish(counts: dict[str, dict[str, int]], bad: list[tuple[str, str]]) -> dict:
        _check_unreadable(bad, len(ls.rel), ls.root, p)
        report = _channel_report(counts, p, channels)
        _log_conversion(report, p)
        return {**ls.report, **report, "skipped": _skipped(bad)}

    digest = hashlib.sha256()
    for rel in ls.rel:   # names, sizes and modification times: a changed folder starts over
        st = os.stat(os.path.join(ls.root, rel))
        digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return Stream(labels=ls.labels, splits=np.full(len(ls.rel), "train"), sources=ls.rel, class_names=ls.class_names,
                  report=ls.report, shape=(channels, p.resolution, p.resolution), read=read,
                  fingerprint=digest.hexdigest(), finish=finish)


def folder_state(root: Path) -> dict[str, str]:
    """What an image folder holds, for a watcher: a hash of every image's relative path and bytes. Content,
    not modification times: a touched or re-copied file with the same bytes is no change, and an edit that
    kept its mtime is one."""
    import hashlib

    images, _ = _scan(Path(root))
    content = hashlib.sha256()
    for path in images:
        content.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            content.update(hashlib.file_digest(f, "sha256").digest())
    return {"content": content.hexdigest(), "files": str(len(images))}
