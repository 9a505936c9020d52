"""Where each artifact lives, atomic writes, and the meta.json sidecar (DESIGN.md §3).

A stage writes its whole directory into a hidden temporary sibling and renames it into place, so a
stage killed half way leaves the previous artifact intact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import json
import os
import platform
import re
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core.errors import UserError
from ganops.core.params import Params

META = "meta.json"
_HASH_SKIP = {META}


class ArtifactError(UserError, RuntimeError):
    """An artifact is missing, stale or inconsistent: the message names the file and the fix."""


# ---------------------------------------------------------------- paths

def _data(root: Path, p: Params) -> Path:
    """data/, or data/domains/<role> for a transfer domain's artifacts (``Params.domain``): DVC forbids two
    stages one output, so the source domain's digits are not the generator pipeline's digits folder."""
    return Path(root) / "data" if p.role is None else Path(root) / "data" / "domains" / p.role


def dataset_dir(root: Path, p: Params) -> Path:
    return _data(root, p) / "dataset" / p.data.dataset


def embeddings_dir(root: Path, p: Params) -> Path:
    return _data(root, p) / "embeddings" / p.data.dataset / p.embed.encoder


def neighbors_dir(root: Path, p: Params) -> Path:
    return _data(root, p) / "neighbors" / p.data.dataset / p.embed.encoder / f"k{p.neighbors.k}"


def generator_dir(root: Path, p: Params, family: str | None = None) -> Path:
    """Keyed by what the family reads: an IC-GAN generator lives under its encoder and k, a DCGAN one does not."""
    from ganops.core.identity import uses_neighbors

    family = family or p.train.family
    base = Path(root) / "data" / "generator" / p.data.dataset
    return base / p.embed.encoder / f"k{p.neighbors.k}" / family if uses_neighbors(family) else base / family


def evaluator_dir(root: Path, p: Params) -> Path:
    return _data(root, p) / "evaluator" / p.data.dataset


def classifier_dir(root: Path, p: Params) -> Path:
    """DTN's f, on the source domain (``p`` its domain view)."""
    return _data(root, p) / "classifier" / p.data.dataset


def evaluation_dir(root: Path, p: Params, family: str | None = None) -> Path:
    """Beside its generator's key: data/evaluation/<the generator's path below data/generator>."""
    gen = generator_dir(root, p, family)
    return Path(root) / "data" / "evaluation" / gen.relative_to(Path(root) / "data" / "generator")


def on_instances_dir(root: Path, p: Params, family: str | None = None) -> Path:
    """The IC-GAN's evaluation on another dataset's instances: data/evaluation/on_instances/<the generator's
    path below data/generator> (one per generator: the on_instances.* in force, named in its meta.json)."""
    gen = generator_dir(root, p, family)
    return Path(root) / "data" / "evaluation" / "on_instances" / gen.relative_to(Path(root) / "data" / "generator")


def pair(p: Params) -> str:
    """A domain transfer's name: ``<source>-to-<target>`` (no dataset name holds "-to-")."""
    return f"{p.transfer.source.dataset}-to-{p.transfer.target.dataset}"


def translator_dir(root: Path, p: Params, family: str | None = None) -> Path:
    return Path(root) / "data" / "transfer" / pair(p) / (family or p.transfer.family)


def transfer_evaluation_dir(root: Path, p: Params, family: str | None = None) -> Path:
    return Path(root) / "data" / "evaluation" / pair(p) / (family or p.transfer.family)


def stage_dir(root: Path, p: Params, stage: str) -> Path:
    return {"dataset": dataset_dir, "embeddings": embeddings_dir, "neighbors": neighbors_dir,
            "train": generator_dir, "evaluator": evaluator_dir, "classifier": classifier_dir, "evaluate": evaluation_dir,
            "evaluate_on_instances": on_instances_dir, "transfer": translator_dir, "evaluate_transfer": transfer_evaluation_dir}[stage](root, p)


def metrics_file(root: Path, stage: str) -> Path:
    """DVC metrics live beside the artifacts, not inside them (DVC forbids overlapping outputs)."""
    return Path(root) / "metrics" / f"{stage}.json"


def load_torch_file(path: Path, rebuild: str) -> Any:
    """A torch file of an artifact (model.pt, evaluator.pt, encoder.pt), read with ``weights_only=True``; an
    empty, truncated or foreign file is an ArtifactError naming it and the command that rebuilds it."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as exc:
        said = " ".join(str(exc).split()).split(". ")[0][:160] or "no data"
        raise ArtifactError(f"{path} cannot be read (truncated or corrupt: {type(exc).__name__}: {said}); rebuild "
                            f"it with `{rebuild}` (it overwrites the artifact)") from None


def leaderboard_file(root: Path, name: str) -> Path:
    """An evaluation's headline figures, one row of `dvc metrics show` (dvc.yaml's top-level metrics)."""
    return Path(root) / "metrics" / "leaderboard" / f"{name}.json"


def checkpoint_dir(root: Path, *parts: str) -> Path:
    """Scratch for resumable work (not a DVC output, so `dvc repro` does not delete it)."""
    return Path(root) / "data" / ".checkpoints" / Path(*parts)


def lock_file(root: Path, name: str) -> Path:
    return Path(root) / "data" / ".locks" / f"{name}.lock"


# ---------------------------------------------------------------- OS errors in words

class StorageError(ArtifactError):
    """Writing or reading a file failed in the OS (read-only, full disk, …): the message names the path."""


_ADVICE = {
    errno.EACCES: "no permission to write there: make the folder writable, or run from a writable copy (--root)",
    errno.EPERM: "no permission to write there: make the folder writable, or run from a writable copy (--root)",
    errno.EROFS: "the file system is read-only: run from a writable copy of the project (--root)",
    errno.ENOSPC: "the disk is full: free some space and run again (the previous artifact is intact)",
    errno.EDQUOT: "the disk quota is exhausted: free some space and run again (the previous artifact is intact)",
    errno.EFBIG: "the file exceeds the size limit of this system or process (ulimit -f): raise it and run again",
}


def describe_os_error(exc: OSError, path: Path | str | None = None) -> str:
    """One line: the path, what the OS said and what to do."""
    where = path if path is not None else (exc.filename or "a file")
    advice = _ADVICE.get(exc.errno or 0, "check the path and run again")
    return f"cannot write {where}: {exc.strerror or exc}; {advice}"


def check_writable(directory: Path) -> None:
    """Fail now, naming the folder, if the stage could not write its results there later."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(describe_os_error(exc, directory)) from None


# ---------------------------------------------------------------- atomic writes

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def _settle(leftover: Path) -> None:
    """A temporary or displaced copy whose writer is gone: restore the previous artifact if it was
    displaced and nothing replaced it, otherwise delete it."""
    m = _LEFTOVER.match(leftover.name)
    if not m or (int(m["pid"]) != os.getpid() and _pid_alive(int(m["pid"]))):
        return
    final = leftover.parent / m["name"]
    if m["kind"] == "old" and not final.exists():
        os.replace(leftover, final)
    else:
        _remove(leftover)


def remove_tree(path: Path) -> None:
    """Delete scratch that served its purpose (a finished stage's checkpoint folder)."""
    shutil.rmtree(path, ignore_errors=True)


def recover(final: Path) -> None:
    """Undo what a killed or failed writer left beside ``final``."""
    final = Path(final)
    if final.parent.exists():
        for leftover in final.parent.glob(f".{glob.escape(final.name)}.*-*"):
            _settle(leftover)


def sweep(directory: Path) -> None:
    """Undo what killed or failed writers left anywhere in ``directory`` (run at a stage's start)."""
    directory = Path(directory)
    if directory.is_dir():
        for leftover in directory.glob(".*-*"):
            _settle(leftover)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``final`` in one rename."""
    from ganops.core.locks import directory_lock

    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        recover(final)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise StorageError(describe_os_error(exc, final.parent)) from None
    try:
        yield tmp
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        # Two different runs may finish into the same directory: swap one at a time.
        with directory_lock(final.parent):
            if final.exists():
                os.replace(final, old)
            os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise StorageError(describe_os_error(exc, final)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write to a temporary sibling, then rename; a failed write removes its temporary."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        recover(path)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(describe_os_error(exc, path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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


def load_npy(path: Path, produced_by: str, mmap: bool = True) -> np.ndarray:
    """An artifact's .npy, memory-mapped; a missing, truncated or corrupt file names itself and the stage to rerun."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path} is missing: the artifact is incomplete. Run `ganops stage {produced_by}` again.")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(f"{path} is truncated or corrupt ({exc}). Run `ganops stage {produced_by}` again "
                            "to rebuild it.") from None


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
               upstream: dict[str, str], metrics: dict[str, Any], code_version: str = "",
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """meta.json holds only what the inputs determine, so every door writes the same bytes; what
    varies per run (argv, times, host, the door) goes to the MLflow run instead."""
    meta = {
        "stage": stage,
        "params": params,
        "seed": seed,
        "upstream": upstream,
        "metrics": metrics,
        "versions": library_versions(),
        "code_version": code_version,
        "content_hash": content_hash(directory),
        **(extra or {}),
    }
    atomic_write_json(Path(directory) / META, meta)
    return meta


def is_run_varying(key: str) -> bool:
    """Metric names that measure the run, not the artifact (durations, speeds)."""
    return ("seconds" in key or key.endswith(("_s", "per_s")) or key.startswith("resumed_from")
            or key == "threads")


def artifact_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not is_run_varying(k)}


def read_meta(directory: Path, *, produced_by: str | None = None) -> dict[str, Any]:
    """The sidecar of a finished artifact; a missing one says which stage makes it."""
    path = Path(directory) / META
    if not path.exists():
        how = f" Run `ganops stage {produced_by}` (or materialize its asset) first." if produced_by else ""
        raise ArtifactError(f"{directory} has no finished artifact ({META} missing).{how}")
    try:
        return json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ArtifactError(f"{path} is unreadable ({exc}). Run `ganops stage {produced_by or 'that made it'}` "
                            "again.") from None


def require_files(directory: Path, names: list[str], produced_by: str) -> None:
    missing = [n for n in names if not (Path(directory) / n).exists()]
    if missing:
        raise ArtifactError(
            f"{directory} lacks {', '.join(missing)}: the artifact is incomplete or from another version. "
            f"Run `ganops stage {produced_by}` again.")
