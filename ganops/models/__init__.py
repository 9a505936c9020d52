"""GAN families found by name (a CycleGAN-style registry), and the networks they build."""

from __future__ import annotations

from ganops.models.base import DataInfo, Family
from ganops.models.cgan import CGAN
from ganops.models.dcgan import DCGAN
from ganops.models.errors import TrainError
from ganops.models.icgan import ICGAN

FAMILIES: dict[str, Family] = {f.name: f for f in (DCGAN(), CGAN(), ICGAN())}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise TrainError(f"key 'train.family': value {name!r} is not allowed; expected one of "
                         f"{', '.join(FAMILIES)}") from None


__all__ = ["FAMILIES", "DataInfo", "Family", "get_family"]
