"""Training: the generic trainer (checkpoints, exact resume, EMA, AMP) and sampling from its result.

The families live in ``ganops.models`` and the losses in ``ganops.losses``; both are re-exported here.
"""

from ganops.losses import LOSSES, get_loss
from ganops.models import get_family
from ganops.models.errors import TrainError
from ganops.train.checkpoint import load_weights, network_config, network_state, non_finite_count, save_weights
from ganops.train.generate import build_discriminator, build_generator, generate
from ganops.train.trainer import TrainResult, train

__all__ = ["LOSSES", "TrainError", "TrainResult", "build_discriminator", "build_generator",
           "generate", "get_family", "get_loss", "load_weights", "network_config", "network_state", "non_finite_count",
           "save_weights", "train"]
