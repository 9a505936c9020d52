"""Sharded arrays: how a dataset's images and its embeddings' features, at any size, are written and read
(DESIGN.md §3).

A dataset's images are ``data.shard_rows`` rows per shard, and the embeddings' features the same rows per
shard. One shard is the file ``<stem>.npy`` (every dataset that fits one shard is byte for byte what it
always was); more are the folder ``<stem>/`` of ``00000.npy``, ``00001.npy``, … Each shard is a plain
``.npy`` (uint8 N×C×H×W images, float32 N×d features), memory-mapped when read, so no reader holds more
than the rows it asks for.

- :class:`ShardedArray` is the one reader: an array-like over the shards, indexed like one numpy array (an
  int, a slice, an index array in any order, a boolean mask). Training batches, the encoders, the k-NN
  search, the evaluation and ``ganops sample`` read through it and never see the shards. Every
  ``RELEASE_BYTES`` read it drops the pages it mapped from the process (they stay in the page cache), so a
  pass over a large dataset does not leave the whole of it in the reader's resident set.
- :class:`ShardFile` writes one shard to a temporary file a chunk at a time and renames it when
  complete: a killed writer leaves whole shards only (``is_complete``), and the next one clears the
  temporary it left. The dataset stage's writer (``writer`` module) records each shard it commits.

The manifest follows the same rule (``manifest.parquet``, or the Parquet dataset ``manifest/`` of one part
per shard), read by :func:`read_table`.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from ganops.core.artifacts import ArtifactError, StorageError, describe_os_error, load_npy, recover

DIGITS = 5      # shard names: 00000.npy … 99999.npy (100,000 shards of the default size is 10^10 images)
# Pages of the memory maps a reader keeps mapped between releases. A page dropped is still in the page cache:
# reading it again is a minor fault (~1 µs for 4 KiB), not a disk read.
RELEASE_BYTES = 64 << 20
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)     # not on every platform: there the pages stay mapped


def shard_name(index: int, suffix: str = ".npy") -> str:
    return f"{index:0{DIGITS}d}{suffix}"


def shard_count(n: int, rows: int) -> int:
    return max(1, -(-n // rows))


def destination(directory: Path, stem: str, index: int, count: int, suffix: str = ".npy") -> Path:
    """Where shard ``index`` of ``count`` lives in an artifact: ``<stem><suffix>`` alone, else in ``<stem>/``."""
    return Path(directory) / f"{stem}{suffix}" if count == 1 else Path(directory) / stem / shard_name(index, suffix)


def place(files: list[Path], directory: Path, stem: str) -> None:
    """Move finished shard files (renames, no copy) into ``directory`` as ``<stem>``'s shards."""
    for i, path in enumerate(files):
        to = destination(directory, stem, i, len(files), Path(path).suffix)
        to.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, to)


def paths(directory: Path, stem: str, suffix: str = ".npy") -> list[Path]:
    """The shard files of ``<stem>`` in ``directory``, in order: ``[<stem><suffix>]`` or the folder's
    ``00000<suffix>…``. A gap in the numbering is an incomplete artifact (ArtifactError naming the shard)."""
    single = Path(directory) / f"{stem}{suffix}"
    folder = Path(directory) / stem
    if single.is_file() or not folder.is_dir():
        return [single]
    found = sorted(p for p in folder.iterdir() if p.suffix == suffix and p.stem.isdigit())
    for i, path in enumerate(found):
        if path.name != shard_name(i, suffix):
            raise ArtifactError(f"{folder / shard_name(i, suffix)} is missing (the shards run to {found[-1].name}): "
                                "the artifact is incomplete")
    if not found:
        raise ArtifactError(f"{folder} holds no shards ({shard_name(0, suffix)}, …): the artifact is incomplete")
    return found


class ShardedArray:
    """Rows over memory-mapped shards (images, features), indexed as one numpy array; every read returns an
    ndarray (a view of the memory map when the rows lie in one shard, else one copy)."""

    def __init__(self, shards: list[np.ndarray], files: list[Path] | None = None):
        if not shards:
            raise ValueError("ShardedArray needs at least one shard")
        tails = {s.shape[1:] for s in shards}
        dtypes = {s.dtype for s in shards}
        if len(tails) > 1 or len(dtypes) > 1:
            raise ArtifactError(f"the shards disagree: shapes {sorted(map(str, tails))}, dtypes {sorted(map(str, dtypes))}")
        self.shards = shards
        self.files = files      # the shard files, when read from files
        self.offsets = np.cumsum([0, *(len(s) for s in shards)])
        self.shape = (int(self.offsets[-1]), *shards[0].shape[1:])
        self.dtype = shards[0].dtype
        self.ndim = len(self.shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.release_bytes = RELEASE_BYTES
        self._read = 0          # bytes read since the last release

    def release(self) -> None:
        """Drop the pages of the memory-mapped shards from this process (MADV_DONTNEED on read-only file
        maps: the next read maps them again from the page cache, or the file). Arrays in memory: nothing."""
        self._read = 0
        if _DONTNEED is None:
            return
        for s in self.shards:
            m = getattr(s, "_mmap", None)
            if m is not None and not m.closed:
                m.madvise(_DONTNEED)

    @classmethod
    def open(cls, directory: Path, stem: str, produced_by: str) -> ShardedArray:
        """``<stem>``'s shards in an artifact (``paths``); a missing or corrupt one names the stage to rerun."""
        return cls.of_files(paths(directory, stem), produced_by)

    @classmethod
    def of_files(cls, files: list[Path], produced_by: str) -> ShardedArray:
        return cls([load_npy(path, produced_by) for path in files], list(files))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, shards={len(self.shards)})"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        if dtype is not None:
            out = out.astype(dtype, copy=False)
        return np.array(out) if copy and (isinstance(out, np.memmap) or dtype is None) else out

    def __getitem__(self, key):
        if isinstance(key, tuple):     # rows first, then the rest of the index on what they gave
            rows = self[key[0]]
            return rows[key[1:]] if isinstance(key[0], (int, np.integer)) else rows[(slice(None), *key[1:])]
        out = self._rows(key)
        self._read += out.nbytes
        if self._read >= self.release_bytes:   # a view returned earlier stays valid: its pages fault back in
            self.release()
        return out

    def _rows(self, key) -> np.ndarray:
        if len(self.shards) == 1:
            return self.shards[0][key]
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"index {int(key)} is out of bounds for {n} images")
            s = int(np.searchsorted(self.offsets, i, side="right")) - 1
            return self.shards[s][i - self.offsets[s]]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self._take(np.arange(start, stop, step))
            return self._range(start, max(start, stop))
        index = np.asarray(key)
        if index.dtype == bool:
            if index.shape != (n,):
                raise IndexError(f"boolean index of shape {index.shape} for {n} images")
            index = np.flatnonzero(index)
        return self._take(index)

    def _range(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        if stop <= self.offsets[min(first + 1, len(self.shards))]:     # within one shard: a view
            s = min(first, len(self.shards) - 1)
            return self.shards[s][start - self.offsets[s]:stop - self.offsets[s]]
        out = np.empty((stop - start, *self.shape[1:]), self.dtype)
        for s in range(first, len(self.shards)):
            lo, hi = max(start, self.offsets[s]), min(stop, self.offsets[s + 1])
            if lo >= hi:
                break
            out[lo - start:hi - start] = self.shards[s][lo - self.offsets[s]:hi - self.offsets[s]]
        return out

    def _take(self, index: np.ndarray) -> np.ndarray:
        n = self.shape[0]
        index = index.astype(np.int64, copy=False)
        if index.ndim != 1:
            return self._take(index.ravel()).reshape(*index.shape, *self.shape[1:])
        if len(index) and (index.min() < -n or index.max() >= n):
            bad = index[(index < -n) | (index >= n)][0]
            raise IndexError(f"index {int(bad)} is out of bounds for {n} images")
        index = np.where(index < 0, index + n, index)
        owner = np.searchsorted(self.offsets, index, side="right") - 1
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        for s in np.unique(owner).tolist():
            at = np.flatnonzero(owner == s)
            out[at] = self.shards[s][index[at] - self.offsets[s]]
        return out


class ShardFile:
    """One shard being written: a temporary file of up to ``max_rows`` rows, appended a chunk at a time and
    renamed into place by ``commit`` (its header then says the rows written: numpy leaves room in the header for
    the first axis to change in place). Plain file writes, not a memory map: a full disk is an error naming the
    file, not a SIGBUS. Memory: one chunk."""

    def __init__(self, path: Path, shape: tuple[int, ...], max_rows: int, dtype=np.uint8):
        self.path, self.shape, self.max_rows, self.dtype = Path(path), tuple(shape), max_rows, np.dtype(dtype)
        self.rows = 0
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._guard(self._open)

    def _header(self, f) -> None:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                 "fortran_order": False, "shape": (self.rows, *self.shape)})

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recover(self.path)
        self.f = open(self.tmp, "wb")    # noqa: SIM115 (held open across appends; closed by commit or abort)
        self._header(self.f)
        self.start = self.f.tell()

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            self.abort()
            raise StorageError(describe_os_error(exc, self.path)) from None
        except BaseException:
            self.abort()
            raise

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        if chunk.shape[1:] != self.shape or self.rows + len(chunk) > self.max_rows:
            self.abort()
            raise ValueError(f"{self.path.name} takes {self.max_rows} rows of {self.shape}; got {chunk.shape} after "
                             f"{self.rows}")
        self._guard(self.f.write, chunk.data)
        self.rows += len(chunk)

    def commit(self) -> Path:
        def done():
            self.f.seek(0)
            self._header(self.f)     # the rows written, in the same number of header bytes
            if self.f.tell() != self.start:
                raise ValueError(f"{self.path.name}: the header changed size")
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            os.replace(self.tmp, self.path)
            return self.path
        return self._guard(done)

    def abort(self) -> None:
        f = getattr(self, "f", None)
        if f is not None and not f.closed:
            f.close()
        self.tmp.unlink(missing_ok=True)


def is_complete(path: Path, shape: tuple[int, ...], dtype=np.uint8) -> bool:
    """Whether ``path`` is a whole shard of ``shape`` (a committed file: its header and size agree)."""
    if not Path(path).is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False
    return arr.shape == tuple(shape) and arr.dtype == np.dtype(dtype)


def read_table(directory: Path, stem: str, columns: list[str] | None = None):
    """``<stem>.parquet``, or the Parquet dataset ``<stem>/`` (one part per shard, read in order), as one
    DataFrame."""
    import pandas as pd

    files = paths(directory, stem, ".parquet")
    if len(files) == 1:
        return pd.read_parquet(files[0], columns=columns)
    return pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
