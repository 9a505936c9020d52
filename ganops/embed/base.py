"""What every encoder shares: the error type, the result type, and batched feature extraction.

Images arrive as uint8 N×C×H×W numpy arrays, often a read-only memory map of images.npy. They are
converted to float one batch at a time, so memory stays one batch of floats, never a float copy
of the whole dataset, and the memory map is never written to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops.core.device import autocast
from ganops.core.errors import UserError
from ganops.data.shards import ShardedArray

MetricLog = Callable[[str, float, int], None]


class EncoderError(UserError, RuntimeError):
    """An encoder cannot run: the message names the key, file or value and says how to fix it."""


@dataclass
class EmbedResult:
    features: np.ndarray                    # float32 N×D, L2-normalised rows, C-contiguous
    state_dict: dict[str, Any] | None       # saved as encoder.pt: {"config": ..., "weights": ...}
    metrics: dict[str, Any] = field(default_factory=dict)


def check_images(images: np.ndarray, labels: np.ndarray | None = None) -> None:
    """An ndarray or the dataset's ShardedArray (anything indexed like one): uint8 N×C×H×W."""
    if getattr(images, "ndim", 0) != 4 or getattr(images, "dtype", None) != np.uint8:
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", type(images).__name__)
        raise EncoderError(f"images must be a uint8 N×C×H×W array (images.npy), got {dtype} with shape {shape}")
    n, c = images.shape[:2]
    if n == 0:
        raise EncoderError("images.npy holds no images; check data.limit / data.split")
    if c not in (1, 3):
        raise EncoderError(f"images have {c} channels; encoders take 1 or 3 (set data.channels to 1 or 3)")
    if labels is not None and len(labels) != n:
        raise EncoderError(f"{len(labels)} labels for {n} images; rebuild the dataset (`ganops stage dataset`)")


def batches(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def to_float(batch: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images → float32 in [0, 1] on ``device``; copies only this batch (a memory map stays read-only)."""
    if isinstance(batch, torch.Tensor):
        t = batch
    else:
        arr = np.asarray(batch)
        if not (arr.flags.writeable and arr.flags.c_contiguous):   # a memory-map slice: copy this batch only
            arr = np.array(arr, dtype=np.uint8)
        t = torch.from_numpy(arr)
    return t.to(device, non_blocking=True).float().div_(255.0)


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.normalize(x.float(), dim=1, eps=1e-12)


@torch.inference_mode()
def extract(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 512,
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None, out: Path | None = None) -> np.ndarray:
    """Features of every image, L2-normalised float32 N×D (C-contiguous).

    ``model`` takes float images in [0, 1] (its own preprocessing inside) and returns N×D.
    ``transform`` optionally adapts a float batch first (e.g. channel conversion for user images).
    ``out``: a .npy file the features are appended to a batch at a time (returned memory-mapped), so that the
    memory is a batch's whatever the number of images; otherwise they are returned in memory.
    """
    from ganops.data.shards import ShardFile

    was_training = model.training
    model.eval()
    cuda = device.type == "cuda"
    held: np.ndarray | None = None
    sink: ShardFile | None = None
    try:
        for sl in batches(len(images), batch_size):
            x = to_float(images[sl], device)
            if transform is not None:
                x = transform(x)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                f = model(x)
            f = l2_normalise(f.reshape(f.shape[0], -1)).cpu().numpy()
            if not np.isfinite(f).all():
                raise EncoderError("the encoder produced non-finite features (NaN/inf); lower embed.lr or check the "
                                   "images")
            if out is not None:
                sink = sink or ShardFile(Path(out), (f.shape[1],), len(images), np.float32)
                sink.append(f)
                continue
            if held is None:
                held = np.empty((len(images), f.shape[1]), dtype=np.float32)
            held[sl] = f
        if sink is not None:
            sink.commit()
            sink = None
            return np.load(out, mmap_mode="r")
    finally:
        model.train(was_training)
        if sink is not None:
            sink.abort()
    assert held is not None
    return held


def extract_pieces(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int, pieces: Path,
                   rows: int, log: Callable[[str], None] | None = None,
                   only: list[int] | None = None) -> ShardedArray | None:
    """``extract`` in pieces of ``rows`` images (the dataset's shards), spread over the ranks of this process's
    world: rank r takes pieces r, r + size, …, each written to ``pieces/<i>.npy`` and committed whole, so a run that
    was killed (any rank, any number of ranks) keeps the pieces it finished. Rank 0 returns them all as one
    memory-mapped array, the features' shards as they are (``shards.place`` moves them into the artifact; nothing
    is copied); the other ranks return None. ``only``: these pieces alone, returned to nobody (Dagster's
    `embeddings_shards` partitions; processes that share ``pieces`` wait for each other's piece). A piece is
    extracted in the same batches whatever the number of ranks. Memory: a batch."""
    from ganops.core import distributed
    from ganops.core.locks import exclusive
    from ganops.data.shards import shard_count, shard_name

    world = distributed.world()
    world.broadcast_state([model])      # rank 0's encoder, the one it saves (each rank's batch-norm statistics differ)
    if world.main:
        _keep_pieces_of(model, pieces)
    world.barrier()
    n = len(images)
    count = shard_count(n, rows)
    span = [(i * rows, min(n, (i + 1) * rows)) for i in range(count)]
    mine = list(range(world.rank, count, world.size)) if only is None else list(only)
    wrong = [i for i in mine if not 0 <= i < count]
    if wrong:
        raise EncoderError(f"piece {wrong[0]} is not one of the {count} pieces of {rows} images (00000-"
                           f"{shard_name(count - 1, '')}) of {n} images")
    todo = [i for i in mine if not _whole(pieces / shard_name(i), span[i][1] - span[i][0])]
    if log is not None and len(todo) < len(mine):
        log(f"extracting {len(todo)} of rank {world.rank}'s {len(mine)} pieces of {rows} images "
            f"({len(mine) - len(todo)} kept from a run that stopped)")
    for i in todo:
        a, b = span[i]
        with exclusive(pieces / f".{shard_name(i, '.lock')}", f"piece {i}", wait=True):
            if not _whole(pieces / shard_name(i), b - a):     # another process may have written it meanwhile
                extract(model, images[a:b], device, batch_size, out=pieces / shard_name(i))
    if only is not None:
        return None
    world.barrier()
    if not world.main:
        return None
    return ShardedArray.of_files([pieces / shard_name(i) for i in range(count)], "embeddings")


def _whole(path: Path, rows: int) -> bool:
    """A committed piece of ``rows`` feature rows."""
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return False
    return arr.ndim == 2 and arr.shape[0] == rows and arr.dtype == np.float32


def _keep_pieces_of(model: nn.Module, pieces: Path) -> None:
    """Pieces are kept for the same encoder only (its weights and buffers, hashed): a rerun that trained another
    one (a checkpoint lost, other data) starts the pieces over."""
    import hashlib

    from ganops.core import artifacts as A

    digest = hashlib.sha256()
    for name, t in model.state_dict().items():
        digest.update(name.encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    from ganops.core.locks import directory_lock

    stamp = pieces / "encoder.sha256"
    pieces.parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(pieces.parent):        # processes starting at once agree on one folder
        if pieces.is_dir() and (not stamp.is_file() or stamp.read_text() != digest.hexdigest()):
            A.remove_tree(pieces)
        pieces.mkdir(parents=True, exist_ok=True)
        if not stamp.is_file():
            A.atomic_write_bytes(stamp, digest.hexdigest().encode())
