"""IC-GAN (Casanova et al. 2021): G(z, h_i) and D(x, h_i), h_i the instance's embedding.

h_i enters G through a learned linear projection, concatenated with z and feeding conditional
batch norm; D adds a projection term. With ``train.class_conditional`` the label of the sampled
neighbor conditions both as well (the paper's class-conditional IC-GAN). The real side pairs h_i
with a uniformly drawn member of its k-NN set A_i (see ``ganops.models.batches``).
"""

from __future__ import annotations

from ganops.core.params import TrainParams
from ganops.models.gan import GANFamily


class ICGAN(GANFamily):
    name = "icgan"
    cbn = True
    labels_key = "train.class_conditional=true"
    without_labels = "set train.class_conditional=false"

    @classmethod
    def uses_labels(cls, tp: TrainParams) -> bool:
        return tp.class_conditional
