"""A dataset source as a stream: every row known up front (label, split, where the image came from), the
pixels decoded a chunk at a time, so that the dataset stage never holds the collection (DESIGN.md §3).

An image folder is decoded by a torch DataLoader's worker processes (``distributed.data_workers``), in
order; a source that torchvision or scikit-learn hands over in memory (MNIST, CIFAR-10, digits) is framed a
chunk at a time from that array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ganops.core.params import DataParams
from ganops.data.raw import RawImages
from ganops.data.resize import frame


@dataclass
class Decoded:
    """One chunk of a stream, in the order asked."""
    rows: np.ndarray                 # the stream rows read (int64)
    images: np.ndarray               # uint8 len(rows)×C×R×R, framed; only the rows that could be read
    ok: np.ndarray                   # bool per row: read (its image is in ``images``, in order)
    bad: list[tuple[str, str]]       # per unreadable row, in order: (the file, the error)
    modes: list[tuple[str, str]] = field(default_factory=list)   # files: per read row (PIL mode, grey|colour)


def tally(counts: dict[str, dict[str, int]], mode: str, kind: str, n: int = 1) -> None:
    """Add ``n`` files of PIL ``mode`` decoded as ``kind`` (grey | colour) to ``counts``, the form records and
    ``Stream.finish`` take (JSON-ready: string keys)."""
    counts.setdefault(mode, {}).setdefault(kind, 0)
    counts[mode][kind] += n


@dataclass
class Stream:
    labels: np.ndarray               # int64 N, -1 unknown
    splits: np.ndarray               # str N
    sources: Sequence[str]           # N: a file path relative to the folder, or 'mnist/test/17'
    class_names: list[str] | None
    report: dict[str, Any]
    shape: tuple[int, int, int]      # C×R×R of every framed image
    read: Callable[[np.ndarray, int], Iterator[Decoded]]    # (ascending rows, chunk rows) → their chunks
    fingerprint: str                 # changes when the rows or their pixels may have: a resumed stage starts over
    # (modes counted {mode: {"grey"|"colour": files}}, unreadable (file, why)) → the source's report; raises
    # when unreadable files are not to be skipped
    finish: Callable[[dict[str, dict[str, int]], list[tuple[str, str]]], dict[str, Any]] = lambda counts, bad: {}

    def __len__(self) -> int:
        return len(self.labels)


def from_raw(raw: RawImages, p: DataParams) -> Stream:
    """A source loaded in memory (its loader already read it whole), framed a chunk at a time."""
    n = len(raw.images)
    shape = frame(raw.images[:1], p.resolution, p.channels).shape[1:] if n else (
        p.channels or raw.images.shape[1], p.resolution, p.resolution)

    def read(rows: np.ndarray, chunk: int) -> Iterator[Decoded]:
        for a in range(0, len(rows), chunk):
            r = rows[a:a + chunk]
            yield Decoded(r, frame(raw.images[r], p.resolution, p.channels), np.ones(len(r), bool), [])

    digest = hashlib.sha256()
    for a in range(0, n, 4096):
        digest.update(np.ascontiguousarray(raw.images[a:a + 4096]).data)
    digest.update(raw.labels.tobytes())
    return Stream(raw.labels, raw.splits, list(raw.sources), raw.class_names, dict(raw.report), tuple(shape), read,
                  digest.hexdigest(), lambda counts, bad: dict(raw.report))
