"""DCGAN (Radford et al. 2015): unconditional; the paper's architecture rules live in ``blocks``."""

from __future__ import annotations

from ganops.models.gan import GANFamily


class DCGAN(GANFamily):
    name = "dcgan"
    self_conditions = True      # train.self_condition: clusters of the images condition G and D (models.clusters)
