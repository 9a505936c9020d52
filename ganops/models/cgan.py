"""Conditional GAN (Mirza & Osindero 2014): the class label conditions G and D.

The label's embedding is concatenated with z in G; D adds a projection term of the label's
embedding (projection discriminator, Miyato & Koyama 2018).
"""

from __future__ import annotations

from ganops.models.base import Family
from ganops.params import TrainParams


class CGAN(Family):
    name = "cgan"

    def uses_labels(self, tp: TrainParams) -> bool:
        return True
