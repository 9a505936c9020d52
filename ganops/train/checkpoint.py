"""Training checkpoints: atomic, ``torch.load(weights_only=True)``-safe, with every RNG state.

A checkpoint holds every network of the family by name, their EMAs, optimisers and schedulers, the step, the loss history, the params
identity and the state of every random number generator the run draws from (torch CPU and CUDA,
numpy, Python's ``random``, and the trainer's own ``torch.Generator``s), all as tensors, numbers,
strings, lists and dicts, so it loads without unpickling arbitrary objects.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganops.core.artifacts import atomic_torch_save
from ganops.models.errors import TrainError

FORMAT = "ganops.train/2"     # /2: networks, optimisers and schedulers by name (any family)


# ---------------------------------------------------------------- RNG states

def rng_state(rngs: dict[str, torch.Generator]) -> dict[str, Any]:
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "generators": {name: g.get_state() for name, g in rngs.items()},   # the file's key, kept: checkpoints resume
    }


def set_rng_state(state: dict[str, Any], rngs: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    for name, g in rngs.items():
        g.set_state(state["generators"][name])


# ---------------------------------------------------------------- files

def save(path: Path, obj: dict[str, Any]) -> Path:
    return atomic_torch_save(Path(path), {"format": FORMAT, **obj})


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:   # truncated or foreign file
        raise TrainError(f"{path}: not a readable ganops checkpoint ({type(exc).__name__}: {exc}). "
                         f"Delete it to start over.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise TrainError(f"{path}: not a ganops checkpoint of format {FORMAT} (found {found!r}); delete it to start over")
    return obj


def identity_diff(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint {saved.get(k, '<absent>')!r}, now {current.get(k, '<absent>')!r}"
            for k in keys if saved.get(k) != current.get(k)]


def check_identity(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    diff = identity_diff(saved, current)
    if diff:
        raise TrainError(
            f"{path} was made with other parameters or data, so it cannot be resumed:\n  " + "\n  ".join(diff)
            + "\nRestore those values, or delete the checkpoint to train from scratch.")


def identity_json(identity: dict[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, default=str)
