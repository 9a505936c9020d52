"""The families' networks, training steps and trained models. Which families exist is declared once, in
``ganops.catalog.families`` (light: the schema and both front doors read it without loading torch); each
declaration names its class here, imported on first use. ``load_model`` rebuilds a trained model from its
weights file as its family's model class (``GeneratorModel``, ``TranslatorModel``)."""

from __future__ import annotations

import importlib

from ganops.catalog.families import ALL
from ganops.models.base import Context, DataInfo, Family, TrainData
from ganops.models.errors import TrainError
from ganops.models.trained import TrainedModel, load_model


def get_family(name: str) -> type[Family]:
    """The family class declared as ``name`` in ``ganops.catalog.families.ALL``."""
    spec = ALL.get(name)
    if spec is None:
        raise TrainError(f"key 'train.family': value {name!r} is not allowed; expected one of {', '.join(ALL)}")
    module, _, attr = spec.impl.partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["Context", "DataInfo", "Family", "TrainData", "TrainedModel", "get_family", "load_model"]
