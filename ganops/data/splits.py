"""Datasets with named splits kept in torchvision's on-disk layout, and the policy that loads them.

One policy for every such source (MNIST, Fashion-MNIST, USPS, SVHN, CIFAR-10, CelebA):

- ``data.split='available'`` loads every split whose files are present and records (and logs) the
  ones that are missing; when no split is present at all it downloads every split (if
  ``data.download``). It never downloads a missing split next to a present one: a default run on a
  machine with a partial cache (the MNIST test split alone) must work offline, without a network
  timeout first.
- ``'all'`` needs every required split, ``'train'``/``'test'`` exactly that one; missing files are
  downloaded when ``data.download`` is true.
- When files are missing and cannot be downloaded the error lists which files go in which
  directory and where they come from.
- ``data.limit`` samples across the loaded splits (``raw.sample_indices``: seeded, stratified by
  label), so every split is read in full first; a source whose decoding is costly (CelebA) hands
  back a ``decode`` function instead of images and only the sampled images are decoded.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.core.params import DataParams
from ganops.data.raw import DataSourceError, RawImages, limit_report, resolve_root, root_phrase, sample_indices

log = logging.getLogger(__name__)

# A download that stalls should fail, not hang the stage; torchvision sets no timeout itself.
DOWNLOAD_TIMEOUT_S = 60


@dataclass
class Part:
    """One split as a source loads it."""

    images: np.ndarray | None      # uint8 N×C×H×W; None: made by ``decode`` for the kept images only
    labels: np.ndarray             # int64 N
    sources: list[str] | None      # None: '<name>/<split>/<i>'
    class_names: list[str] | None
    extra: dict | None = None      # goes into the report (e.g. corrupt files skipped)
    decode: Callable[[np.ndarray], np.ndarray] | None = None  # indices → their uint8 images

    def take(self, keep: np.ndarray, default_sources: list[str]) -> Part:
        """The images at ``keep`` (ascending), decoded now if the source deferred decoding."""
        sources = self.sources or default_sources
        if self.images is None:
            images = self.decode(keep)
        else:
            images = self.images if len(keep) == len(self.labels) else self.images[keep]
        return Part(images, self.labels[keep], [sources[i] for i in keep], self.class_names, self.extra)


class SplitSource:
    """A dataset with splits; subclasses say where its files live and how torchvision reads them."""

    name = ""
    required: tuple[str, ...] = ("train", "test")   # 'all' needs these, in load order
    optional: tuple[str, ...] = ()                  # loaded when present (SVHN 'extra')
    layout = ""                                     # "torchvision's MNIST layout"

    def directory(self, root: Path, split: str) -> Path:
        raise NotImplementedError

    def missing(self, root: Path, split: str) -> list[str]:
        """Names (relative to ``directory``) of the files this split needs and lacks."""
        folder = self.directory(root, split)
        return [name for name, _ in self.files(split) if not (folder / name).is_file()]

    def files(self, split: str) -> list[tuple[str, str]]:
        """(file name, URL it comes from) for each file the split needs."""
        raise NotImplementedError

    def where_from(self, split: str, names: list[str]) -> str:
        urls = dict(self.files(split))
        return ", ".join(urls[n] for n in names if n in urls)

    def load(self, root: Path, split: str, download: bool, p: DataParams) -> Part:
        """Read one whole split (downloading first when ``download``)."""
        raise NotImplementedError


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def instructions(src: SplitSource, root: Path, p: DataParams, missing: dict[str, list[str]]) -> str:
    """Exactly which files to put where, per split, and where they come from."""
    lines = []
    for split, names in missing.items():
        folder = src.directory(root, split)
        lines.append(f"  {split}: put {_join(names)} in {folder} ({src.layout}); "
                     f"from {src.where_from(split, names)}")
    fix = ("Or run once where the network reaches them (the files stay in data.root), or set data.root to a "
           "folder that has them." if p.download else "Or set data.download=true on a machine with network access.")
    return f"{src.name}: files missing under {root_phrase(p, root)}:\n" + "\n".join(lines) + "\n  " + fix


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def choose_splits(src: SplitSource, root: Path, p: DataParams) -> tuple[list[str], dict[str, list[str]]]:
    """The splits to load, and the splits that 'available' leaves out (with their missing files)."""
    allowed = (*src.required, *src.optional)
    if p.split in ("train", "test"):
        if p.split not in allowed:
            raise DataSourceError(f"data.split={p.split!r}: {src.name} has the splits {list(allowed)}; "
                                  f"allowed values here: 'available', 'all', "
                                  f"{', '.join(repr(s) for s in ('train', 'test') if s in allowed)}")
        return [p.split], {}
    present = [s for s in allowed if not src.missing(root, s)]
    if p.split == "all":
        return [*src.required, *(s for s in src.optional if s in present)], {}
    if not present:  # nothing cached: download everything, or explain what is missing
        return list(src.required), {}
    left_out = {s: src.missing(root, s) for s in src.required if s not in present}
    return present, left_out


def load_split_source(src: SplitSource, p: DataParams, project_root: Path, seed: int = 0) -> RawImages:
    root = resolve_root(p, project_root)
    wanted, left_out = choose_splits(src, root, p)
    need = {s: m for s in wanted if (m := src.missing(root, s))}
    if need and not p.download:
        raise DataSourceError(instructions(src, root, p, need) + "\n  (data.download is false)")
    for split, names in left_out.items():
        log.warning("%s: split %r not loaded, files missing in %s: %s (data.split='available' loads what "
                    "is present)", src.name, split, src.directory(root, split), ", ".join(names))

    parts = [(split, _load_one(src, root, split, split in need, p)) for split in wanted]
    parts, limited = _sample(src.name, parts, p.limit, seed)
    raw = _assemble(src.name, parts)
    raw.report.update({
        "root": str(root),
        "splits_loaded": [s for s, _ in parts],
        "splits_missing": {s: [str(src.directory(root, s) / f) for f in m] for s, m in left_out.items()},
        "downloaded": [s for s, _ in parts if s in need],
        **({"limit": limited} if limited else {}),
    })
    return raw


def _sample(name: str, parts: list[tuple[str, Part]], limit: int | None,
            seed: int) -> tuple[list[tuple[str, Part]], dict | None]:
    """Every split cut down to the images ``data.limit`` keeps (one sample across all splits)."""
    labels = np.concatenate([part.labels for _, part in parts])
    keep = sample_indices(labels, limit, seed)
    out, start = [], 0
    for split, part in parts:
        n = len(part.labels)
        local = keep[(keep >= start) & (keep < start + n)] - start
        out.append((split, part.take(local, [f"{name}/{split}/{i}" for i in range(n)])))
        start += n
    return out, (limit_report(labels, keep, seed) if len(keep) < len(labels) else None)


def _load_one(src: SplitSource, root: Path, split: str, download: bool, p: DataParams) -> Part:
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return src.load(root, split, download, p)
    except DataSourceError:
        raise
    except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError...)
        if download:
            missing = {split: src.missing(root, split) or [n for n, _ in src.files(split)]}
            raise DataSourceError(f"{src.name}: downloading the {split!r} split failed "
                                  f"({type(e).__name__}: {e}).\n" + instructions(src, root, p, missing)) from e
        raise DataSourceError(f"{src.name}: reading the {split!r} split from {src.directory(root, split)} failed "
                              f"({type(e).__name__}: {e}); the files are present but unreadable: replace "
                              f"them with the originals ({src.where_from(split, [n for n, _ in src.files(split)])})"
                              ) from e


def _assemble(name: str, parts: list[tuple[str, Part]]) -> RawImages:
    shapes = {part.images.shape[1:] for _, part in parts}
    if len(shapes) > 1:
        raise DataSourceError(f"{name}: splits have different image shapes {sorted(shapes)}")
    sources: list[str] = []
    extras: dict = {}
    for split, part in parts:
        sources += part.sources
        for key, value in (part.extra or {}).items():
            extras.setdefault(key, []).append(value)
    images = np.concatenate([part.images for _, part in parts]) if len(parts) > 1 else parts[0][1].images
    raw = RawImages(
        images=images,
        labels=np.concatenate([part.labels for _, part in parts]).astype(np.int64),
        splits=np.concatenate([np.full(len(part.images), split) for split, part in parts]),
        sources=sources,
        class_names=parts[0][1].class_names,
        report={},
    )
    if "skipped" in extras:  # merge the per-split corrupt-file reports
        files = [f for s in extras.pop("skipped") for f in s["files"]]
        raw.report["skipped"] = {"count": len(files), "files": files}
    raw.report.update(extras)
    return raw
