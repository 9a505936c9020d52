"""IC-GAN (Casanova et al. 2021): G(z, h_i) and D(x, h_i), h_i the instance's embedding.

h_i enters G through a learned linear projection, concatenated with z and feeding conditional
batch norm; D adds a projection term. With ``train.class_conditional`` the label of the sampled
neighbor conditions both as well (the paper's class-conditional IC-GAN). The real side pairs h_i
with a uniformly drawn member of its k-NN set A_i (see ``ganops.train.sampling``).
"""

from __future__ import annotations

from ganops.models.base import Family
from ganops.params import TrainParams


class ICGAN(Family):
    name = "icgan"
    cbn = True

    def uses_labels(self, tp: TrainParams) -> bool:
        return tp.class_conditional
