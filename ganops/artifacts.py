"""Where each artifact lives, atomic writes, and the meta.json sidecar (DESIGN.md §3).

A stage writes its whole directory into a hidden temporary sibling and renames it into place, so a
stage killed half way leaves the previous artifact intact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ganops.params import Params

META = "meta.json"
_HASH_SKIP = {META}


class ArtifactError(RuntimeError):
    """An artifact is missing, stale or inconsistent: the message names the file and the fix."""


# ---------------------------------------------------------------- paths

def dataset_dir(root: Path, p: Params) -> Path:
    return Path(root) / "data" / "dataset" / p.data.dataset


def embeddings_dir(root: Path, p: Params) -> Path:
    return Path(root) / "data" / "embeddings" / p.data.dataset / p.embed.encoder


def neighbors_dir(root: Path, p: Params) -> Path:
    return Path(root) / "data" / "neighbors" / p.data.dataset / p.embed.encoder / f"k{p.neighbors.k}"


def generator_dir(root: Path, p: Params) -> Path:
    return Path(root) / "data" / "generator" / p.data.dataset / p.train.family


def metrics_file(root: Path, stage: str) -> Path:
    """DVC metrics live beside the artifacts, not inside them (DVC forbids overlapping outputs)."""
    return Path(root) / "metrics" / f"{stage}.json"


def checkpoint_dir(root: Path, *parts: str) -> Path:
    """Scratch for resumable work (not a DVC output, so `dvc repro` does not delete it)."""
    return Path(root) / "data" / ".checkpoints" / Path(*parts)


# ---------------------------------------------------------------- atomic writes

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(final: Path) -> None:
    """Undo what a killed writer left: restore a displaced previous artifact, drop dead temporaries."""
    final = Path(final)
    parent = final.parent
    if not parent.exists():
        return
    for sib in parent.glob(f".{final.name}.*-*"):
        kind, _, pid = sib.name.rpartition("-")
        if not pid.isdigit() or _pid_alive(int(pid)) and int(pid) != os.getpid():
            continue
        if kind.endswith(".old") and not final.exists():
            os.replace(sib, final)
        else:
            shutil.rmtree(sib, ignore_errors=True) if sib.is_dir() else sib.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``final`` in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def atomic_torch_save(path: Path, obj: Any) -> Path:
    """``torch.save`` into memory, then the atomic write: a killed save leaves the previous file."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n").encode())


def atomic_save_npy(path: Path, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---------------------------------------------------------------- hashes and meta.json

def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def content_hash(directory: Path) -> str:
    """One hash over every file of an artifact but meta.json (names and bytes, in sorted order)."""
    h = hashlib.sha256()
    directory = Path(directory)
    for f in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in _HASH_SKIP):
        h.update(str(f.relative_to(directory)).encode())
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("ganops", "torch", "torchvision", "numpy", "faiss-cpu", "faiss-gpu", "scikit-learn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_meta(directory: Path, *, stage: str, params: dict[str, Any], seed: int,
               upstream: dict[str, str], metrics: dict[str, Any], timings: dict[str, float],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = {
        "stage": stage,
        "params": params,
        "seed": seed,
        "upstream": upstream,
        "metrics": metrics,
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
        "content_hash": content_hash(directory),
        **(extra or {}),
    }
    atomic_write_json(Path(directory) / META, meta)
    return meta


def read_meta(directory: Path, *, produced_by: str | None = None) -> dict[str, Any]:
    """The sidecar of a finished artifact; a missing one says which stage makes it."""
    path = Path(directory) / META
    if not path.exists():
        how = f" Run `ganops stage {produced_by}` (or materialize its asset) first." if produced_by else ""
        raise ArtifactError(f"{directory} has no finished artifact ({META} missing).{how}")
    return json.loads(path.read_text())


def require_files(directory: Path, names: list[str], produced_by: str) -> None:
    missing = [n for n in names if not (Path(directory) / n).exists()]
    if missing:
        raise ArtifactError(
            f"{directory} lacks {', '.join(missing)}: the artifact is incomplete or from another version. "
            f"Run `ganops stage {produced_by}` again.")
