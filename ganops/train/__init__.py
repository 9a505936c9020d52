"""Training: the one trainer around any family (loop, device, AMP, EMA, checkpoints, exact resume).

What a trained model can do (sample, translate) is its family's: ``ganops.models.load_model``.
"""

from ganops.models.errors import TrainError
from ganops.train.trainer import TrainResult, train

__all__ = ["TrainError", "TrainResult", "train"]
