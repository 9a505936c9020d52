"""Training: the generic trainer, the families (dcgan, cgan, icgan) and sampling from the result."""

from ganops.train.checkpoint import load_weights, save_weights
from ganops.train.errors import TrainError
from ganops.train.families import FAMILIES, get_family
from ganops.train.losses import LOSSES, get_loss
from ganops.train.sample import build_discriminator, build_generator, generate
from ganops.train.trainer import TrainResult, train

__all__ = ["FAMILIES", "LOSSES", "TrainError", "TrainResult", "build_discriminator", "build_generator",
           "generate", "get_family", "get_loss", "load_weights", "save_weights", "train"]
