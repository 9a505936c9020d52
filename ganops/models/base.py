"""What a family is: its networks by name, their optimisers and schedules, its training step, what its
progress grid shows, and the class of its trained model (``model``: what it can do once trained).

The trainer (``ganops.train.trainer``) keeps what every family shares: the loop, the device, AMP and
channels_last, an EMA of any named network, a checkpoint over all named networks, optimisers,
schedulers and RNG states, exact resume, the NaN stop, logging and progress. A family subclass
builds its networks in ``__init__``, its optimisers in ``configure_optimizers`` (called once the
trainer has moved the networks), draws the data one step consumes in ``next_batch`` and updates its
networks in ``train_step``. The models to learn from: mimicry's ``BaseGAN`` (subclasses override the
step) and the CycleGAN repository (``model_names``, ``loss_names``, ``optimize_parameters``).

Randomness a family draws goes through ``ctx.rngs`` (checkpointed: exact resume) or, for weight
initialisation only, torch's global RNG (seeded by the trainer just before ``__init__``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ganops.core.distributed import World
from ganops.core.params import Params, TrainParams
from ganops.models.errors import TrainError
from ganops.models.trained import TrainedModel


@dataclass(frozen=True)
class DataInfo:
    """What the networks are built from: the data's size and shape and the conditions it offers."""
    n: int
    channels: int
    resolution: int
    n_classes: int = 0
    feat_dim: int = 0


@dataclass
class TrainData:
    """What a family trains on: uint8 N×C×H×W images (the source domain's, for transfer families) with
    optional labels, features and neighborhoods; for transfer families also the target domain's images
    and, for DTN, f: the source domain's classifier (its evaluator stage's network, frozen; input: float
    images in [0, 1]; ``.config`` rebuilds it through ``ganops.embed.nets.build``)."""
    images: Any
    labels: np.ndarray | None = None
    features: np.ndarray | None = None
    neighbors: np.ndarray | None = None
    target_images: Any = None
    source_classifier: nn.Module | None = None


@dataclass
class Context:
    """What the trainer lends a family: the parameters, the device and the checkpointed random streams."""
    p: Params
    device: torch.device
    rngs: dict[str, torch.Generator]          # "data" and "noise" (and a family's own): checkpointed
    channels_last: bool = False
    world: World = field(default_factory=World)   # the ranks this training runs on (a world of one by default)

    def share(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n``: every rank draws the global batch from the same
        streams and keeps its share, so the ranks together draw what one process would."""
        return self.world.share(n)

    def rank_seed(self, seed: int) -> int:
        """A seed of a stream each rank draws on its own (rank 0's is ``seed``: a world of one is unchanged)."""
        return seed + 7919 * self.world.rank

    def augment(self, ap, channels: int, batch: int):
        """What a discriminator sees of every image (``ganops.models.augment``) under ``ap`` (an augment section).
        The transforms draw from torch's global stream, which the checkpoint keeps per rank; with several ranks
        each rank seeds its own, so that the ranks' shares are not augmented alike."""
        from ganops.models.augment import Augment

        if ap.kind != "none" and self.world.grouped:
            torch.manual_seed(self.rank_seed(self.p.seed + 4))
        return Augment.of(ap, channels, batch)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


class Family:
    name: ClassVar[str] = ""
    loss_names: ClassVar[tuple[str, ...]] = ()     # what train_step returns, in this order (logged as is)
    ema_names: ClassVar[tuple[str, ...]] = ()      # networks kept as an EMA (train.ema) and used to sample
    divergence_hint: ClassVar[str] = "Lower the learning rates."     # what to try after a non-finite loss
    # what its trained model can do, rebuilt from the weights file (ganops.models.trained.load_model)
    model: ClassVar[type[TrainedModel]]
    batch: int                                     # the global batch of one step (split over the ranks)

    def __init__(self, ctx: Context, data: TrainData, info: DataInfo):
        self.ctx, self.data, self.info = ctx, data, info
        self.networks: dict[str, nn.Module] = {}
        self.configs: dict[str, dict[str, Any]] = {}   # each network's config: rebuilds it from the weights file
        self.optimizers: dict[str, torch.optim.Optimizer] = {}   # set by the trainer from configure_optimizers
        self.schedulers: dict[str, Any] = {}

    # ------------------------------------------------------------ declared by each family

    @classmethod
    def check(cls, tp: TrainParams, data: TrainData) -> DataInfo:
        """Validate the inputs this family reads; return what its networks are built from."""
        raise NotImplementedError

    def configure_optimizers(self) -> tuple[dict[str, torch.optim.Optimizer], dict[str, Any]]:
        """Optimisers by name, and learning-rate schedulers by name (stepped once per training step)."""
        raise NotImplementedError

    def next_batch(self) -> Any:
        """The data one training step consumes, drawn with ``ctx.rngs['data']``."""
        raise NotImplementedError

    def train_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """Update the networks on ``batch``; return each of ``loss_names`` as a detached scalar tensor."""
        raise NotImplementedError

    def activation_bytes(self) -> int | None:
        """Bytes one training step keeps for its backward passes at its batch size, where the family can tell
        (the trainer adds the weights, gradients, optimiser states and EMAs); None: not estimated."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Training state beyond networks, optimisers and RNGs (CycleGAN's pool of fakes), for the checkpoint."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def finish_ema(self, ema: Mapping[str, nn.Module]) -> None:
        """Once the last step is taken, anything the EMAs need before they are saved (the generator
        families: their batch-norm statistics). Must leave the training's RNGs as it found them."""

    def grid(self, nets: Mapping[str, nn.Module]) -> tuple[np.ndarray, int]:
        """The fixed progress grid (uint8 N×C×H×W, images per row) from ``nets`` (the EMAs where kept),
        already in eval mode; the same inputs every time, drawn without touching the training RNG."""
        raise NotImplementedError


def check_images(images: Any, what: str = "training images") -> tuple[int, int, int, int]:
    """(n, channels, height, width) of uint8 N×C×H×W images."""
    if getattr(images, "ndim", 0) != 4 or images.dtype != np.uint8:
        raise TrainError(f"{what} must be uint8 N×C×H×W (images.npy), got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")
    return tuple(int(v) for v in images.shape)
