"""DCGAN (Radford et al. 2015): unconditional; the paper's architecture rules live in ``blocks``."""

from __future__ import annotations

from ganops.models.gan import GANFamily


class DCGAN(GANFamily):
    name = "dcgan"
