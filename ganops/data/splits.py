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
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.data.raw import DataSourceError, RawImages, resolve_root, root_phrase
from ganops.params import DataParams

log = logging.getLogger(__name__)

# A download that stalls should fail, not hang the stage; torchvision sets no timeout itself.
DOWNLOAD_TIMEOUT_S = 60


@dataclass
class Part:
    """One split as a source loads it."""

    images: np.ndarray             # uint8 N×C×H×W
    labels: np.ndarray             # int64 N
    sources: list[str] | None      # None: '<name>/<split>/<i>'
    class_names: list[str] | None
    extra: dict | None = None      # goes into the report (e.g. corrupt files skipped)


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

    def load(self, root: Path, split: str, download: bool, p: DataParams, limit: int | None) -> Part:
        """Read one split with torchvision (downloading first when ``download``)."""
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
    return (f"{src.name}: files missing under {root_phrase(p, root)}:\n" + "\n".join(lines) +
            "\n  Or set data.download=true on a machine with network access.")


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


def load_split_source(src: SplitSource, p: DataParams, project_root: Path) -> RawImages:
    root = resolve_root(p, project_root)
    wanted, left_out = choose_splits(src, root, p)
    need = {s: m for s in wanted if (m := src.missing(root, s))}
    if need and not p.download:
        raise DataSourceError(instructions(src, root, p, need) + "\n  (data.download is false)")
    for split, names in left_out.items():
        log.warning("%s: split %r not loaded, files missing in %s: %s (data.split='available' loads what "
                    "is present)", src.name, split, src.directory(root, split), ", ".join(names))

    parts: list[tuple[str, Part]] = []
    n = 0
    for split in wanted:
        if p.limit is not None and n >= p.limit:
            break  # the first `limit` images are already loaded: skip reading later splits
        part = _load_one(src, root, split, split in need, p, None if p.limit is None else p.limit - n)
        parts.append((split, part))
        n += len(part.images)
    raw = _assemble(src.name, parts)
    raw.report.update({
        "root": str(root),
        "splits_loaded": [s for s, _ in parts],
        "splits_missing": {s: [str(src.directory(root, s) / f) for f in m] for s, m in left_out.items()},
        "downloaded": [s for s, _ in parts if s in need],
    })
    return raw.head(p.limit)


def _load_one(src: SplitSource, root: Path, split: str, download: bool, p: DataParams,
              limit: int | None) -> Part:
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            return src.load(root, split, download, p, limit)
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
        sources += part.sources or [f"{name}/{split}/{i}" for i in range(len(part.images))]
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
