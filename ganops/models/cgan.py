"""Conditional GAN (Mirza & Osindero 2014): the class label conditions G and D.

The label's embedding is concatenated with z in G and, as in SNGAN and BigGAN, sets G's batch-norm
gains and biases (conditional batch norm): concatenation alone let the label fade through G's layers
(per-label accuracy 0.84 on MNIST at 1,500 steps, benchmarks/gan_quality.py). D adds a projection term
of the label's embedding (projection discriminator, Miyato & Koyama 2018), initialised as SNGAN does.
"""

from __future__ import annotations

from ganops.core.params import TrainParams
from ganops.models.gan import GANFamily


class CGAN(GANFamily):
    name = "cgan"
    cbn = True

    @classmethod
    def uses_labels(cls, tp: TrainParams) -> bool:
        return True
