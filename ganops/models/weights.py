"""A trained model's weights file (model.pt): each network's config and weights by name, and their EMAs;
written atomically and read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ganops.core.artifacts import atomic_torch_save, load_torch_file
from ganops.models.errors import TrainError

WEIGHTS_FORMAT = "ganops.weights/2"   # /2: {"configs", "networks", "ema"} by network name


def save_weights(path: Path, weights: dict[str, Any]) -> Path:
    """The trained model (``TrainResult.weights()``): each network's config and weights, and their EMAs."""
    return atomic_torch_save(Path(path), {"format": WEIGHTS_FORMAT, **weights})


def load_weights(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise TrainError(f"{path}: no trained model there; run `ganops stage train` first")
    obj = load_torch_file(path, f"ganops stage {'transfer' if 'transfer' in path.parts else 'train'}")
    if not isinstance(obj, dict) or obj.get("format") != WEIGHTS_FORMAT:
        raise TrainError(f"{path}: not a ganops model file of format {WEIGHTS_FORMAT}; run `ganops stage train` again")
    return obj


def network_config(weights: dict[str, Any], name: str) -> dict[str, Any]:
    """The config that rebuilds network ``name`` of a weights file (e.g. ``"G"``)."""
    try:
        return weights["configs"][name]
    except KeyError:
        raise TrainError(f"the {weights.get('family', '?')} model has no network {name!r}; it has "
                         f"{', '.join(weights.get('configs', {})) or 'none'}") from None


def network_state(weights: dict[str, Any], name: str, ema: bool = True) -> dict[str, torch.Tensor]:
    """Network ``name``'s weights: its EMA when kept and ``ema``, else the trained weights."""
    network_config(weights, name)
    kept = (weights.get("ema") or {}).get(name)
    return kept if ema and kept is not None else weights["networks"][name]


def non_finite_count(weights: dict[str, Any], name: str = "G") -> int:
    """How many NaN or inf values network ``name``'s sampling weights (its EMA when kept) hold."""
    return sum(int((~torch.isfinite(t)).sum()) for t in network_state(weights, name).values() if t.is_floating_point())
