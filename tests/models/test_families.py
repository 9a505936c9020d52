"""The family contract (ganops/models/README.md): a family is one class and one registry line. A family
declared here, in the test, trains on the one trainer, resumes exactly, and its trained model samples,
draws its preview grid and names its conditions through load_model, with nothing else told about it."""

from typing import ClassVar

import numpy as np
import pytest
import torch

from ganops.catalog import families
from ganops.core.params import Params, TrainParams
from ganops.models import load_model
from ganops.models.base import TrainData
from ganops.models.gan import GANFamily
from ganops.models.gan_model import GeneratorModel
from ganops.train.trainer import Trainer

torch.set_num_threads(1)


class ConcatCGAN(GANFamily):
    """The cGAN before conditional batch norm: the label only concatenated with z (Mirza & Osindero)."""
    name = "concat_cgan"
    cbn: ClassVar[bool] = False

    @classmethod
    def uses_labels(cls, tp: TrainParams) -> bool:
        return True


@pytest.fixture
def registered(monkeypatch):
    """The one registry line."""
    spec = families.FamilySpec("concat_cgan", "Mirza & Osindero 2014", f"{__name__}:ConcatCGAN",
                               unused_keys=frozenset({"class_conditional"}))
    monkeypatch.setitem(families.ALL, spec.name, spec)
    monkeypatch.setitem(families.SPECS, spec.name, spec)
    return spec


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (48, 1, 16, 16), dtype=np.uint8), np.repeat(np.arange(4), 12)


def params(steps: int) -> Params:
    return Params.model_validate({"seed": 1, "device": "cpu", "train": {
        "steps": steps, "batch_size": 8, "g_filters": 8, "d_filters": 8, "z_dim": 8, "h_dim": 4, "log_every": 1,
        "checkpoint_every": 2, "grid_size": 16}})


def _run(steps, data, ckpt=None):
    images, labels = data
    return Trainer(params(steps), TrainData(images, labels), family=ConcatCGAN, device="cpu").run(ckpt, progress=False)


def test_a_family_declared_by_one_line_trains_resumes_and_samples(registered, data, tmp_path):
    straight = _run(4, data)
    ck = tmp_path / "ck.pt"
    _run(2, data, ck)
    resumed = _run(4, data, ck)
    assert resumed.resumed_from == 2
    for name in ("G", "D"):                          # N + resume + N steps == 2N straight steps
        assert all(torch.equal(straight.states[name][k], resumed.states[name][k]) for k in straight.states[name])

    model = load_model(resumed.weights())
    assert isinstance(model, GeneratorModel) and model.family == "concat_cgan" and model.kind == "generator"
    assert model.conditions.label and model.conditions.n_classes == 4 and not model.conditions.instance
    assert not model.cfg.cbn                          # what makes it this family reached its networks
    a = model.generate(8, seed=3, labels=2)
    assert a.shape == (8, 1, 16, 16) and a.dtype == np.uint8
    assert np.array_equal(a, load_model(resumed.weights()).generate(8, seed=3, labels=2))
    with pytest.raises(ValueError, match="class-conditional"):
        model.generate(2)
    grid = model.preview_grid(tmp_path / "samples.png", 16, 0, data[0], labels=data[1])
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_model_file_of_an_unknown_family_is_refused_by_name(registered, data, monkeypatch):
    weights = _run(1, data).weights()
    monkeypatch.delitem(families.ALL, registered.name)       # a ganops that does not declare it
    with pytest.raises(Exception, match=r"names the family 'concat_cgan', which this ganops does not know"):
        load_model(weights)
