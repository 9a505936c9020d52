"""A trained model, rebuilt from its weights file: what the rest of the package asks of it.

``load_model(weights)`` reads the family from the weights (``TrainResult.weights()`` or a model.pt) and
returns that family's model class (``Family.model``): a ``GeneratorModel`` samples (its conditions, the
model of the data, its preview grid), a ``TranslatorModel`` translates (one way or both, its preview
grid). Nothing outside ``ganops.models`` needs to know which family it holds: it asks the model, as
nanoGPT's users call ``GPT.generate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganops.models.errors import TrainError
from ganops.models.weights import load_weights, network_config, network_state, non_finite_count


@dataclass(frozen=True)
class Port:
    """One named tensor a served model takes or gives; -1 in ``shape`` is any size (the batch)."""
    name: str
    dtype: str
    shape: tuple[int, ...]


class TrainedModel:
    """The weights of one trained family, its networks rebuilt on demand on ``device``."""

    def __init__(self, weights: dict[str, Any], device: torch.device | str = "cpu", use_ema: bool = True):
        self.weights = weights
        self.device = torch.device(device)
        self.use_ema = use_ema

    @property
    def family(self) -> str:
        return str(self.weights.get("family", "?"))

    @property
    def kind(self) -> str:
        """Its family's kind (``ganops.catalog.families``): generator (samples a dataset) or transfer (translates)."""
        from ganops.catalog.families import ALL

        return ALL[self.family].kind

    @property
    def network_names(self) -> list[str]:
        return list(self.weights["configs"])

    def config(self, name: str) -> dict[str, Any]:
        return network_config(self.weights, name)

    def state(self, name: str, ema: bool | None = None) -> dict[str, torch.Tensor]:
        """Network ``name``'s weights: its EMA where one was kept (unless ``ema`` is False)."""
        return network_state(self.weights, name, ema=self.use_ema if ema is None else ema)

    def non_finite_weights(self) -> int:
        """NaN or inf values in the weights the model runs with (every network's)."""
        return sum(non_finite_count(self.weights, n) for n in self.network_names)

    def served(self) -> tuple[nn.Module, list[Port], Port]:
        """The network a serving system runs, on CPU in eval mode, with the tensors it takes (positionally)
        and gives: what the registry logs as a torch.export program, which loads without ganops and without
        unpickling anything."""
        raise NotImplementedError

    def describe(self) -> str:
        """``a dcgan model`` / ``an icgan model``: how messages name it."""
        return f"{'an' if self.family[:1] in 'aeiou' else 'a'} {self.family} model"


def load_model(weights: dict[str, Any] | str | Path, device: torch.device | str = "cpu",
               use_ema: bool = True, kind: str | None = None) -> TrainedModel:
    """The trained model of a weights file (a path or the loaded dict). ``kind``: refuse a model of the other
    kind (``generator`` or ``transfer``, as ``ganops.catalog.families`` declares them) with a message that says which
    command fits it."""
    from ganops.catalog.families import ALL, FAMILY_NAMES, TRANSFER_NAMES
    from ganops.models import get_family

    kinds = {"generator": FAMILY_NAMES, "transfer": TRANSFER_NAMES}
    w = load_weights(Path(weights)) if isinstance(weights, (str, Path)) else weights
    family = w.get("family")
    if family not in ALL:
        raise TrainError(f"the model file names the family {family!r}, which this ganops does not know "
                         f"({', '.join(ALL)})")
    model = get_family(family).model(w, device, use_ema)
    if kind is not None and model.kind != kind:
        use = "`ganops sample` for generators" if model.kind == "generator" else "`ganops translate` for translators"
        raise TrainError(f"the model is {model.describe()}, not a {kind} model ({' or '.join(kinds[kind])}); "
                         f"use {use}")
    return model
