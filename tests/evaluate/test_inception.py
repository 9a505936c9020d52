"""The Inception-V3 metric path: weights found only in the hub cache, loaded safely, metrics finite.

No real weights here (offline): a file in the real format is written from torch-fidelity's own network with
random weights, the way torch-fidelity's converter writes it (conv / BatchNorm / fc tensors, no BN counters).
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

from ganops.evaluate.inception import (
    WEIGHT_FILES,
    InceptionFeatures,
    find_weights,
    inception_metrics,
    missing_message,
)


class _Untrained(FeatureExtractorInceptionV3):
    """torch-fidelity's network as constructed, before weights: an empty state dict keeps the initialisation."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        if state_dict:
            return super().load_state_dict(state_dict, strict, assign)
        return None


def _random_inception_state() -> dict[str, torch.Tensor]:
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    net = _Untrained("untrained", ["2048"], feature_extractor_weights_path=empty)
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):          # He init keeps activations O(1) through 40-odd layers
            fan_in = m.weight[0].numel()
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
    return {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_weights_in_the_real_format_load_and_give_finite_metrics(tmp_path):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    torch.save(_random_inception_state(), hub / "checkpoints" / WEIGHT_FILES[0])

    weights = find_weights(hub)
    assert weights == hub / "checkpoints" / WEIGHT_FILES[0]
    model = InceptionFeatures(weights)

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (8, 1, 24, 24), dtype=np.uint8)
    pool, logits = model.extract(grey, "cpu", batch_size=5)   # two batches, grey → RGB, resized to 299 inside
    assert pool.shape == (8, 2048) and logits.shape == (8, 1008)
    assert np.isfinite(pool).all() and np.isfinite(logits).all() and pool.std() > 1e-3

    # the same images as explicit RGB against cached real features of the grey ones: one set against itself
    rgb = np.repeat(grey, 3, axis=1)
    out = inception_metrics(None, rgb, model, "cpu", kid_subsets=5, real_features=pool)
    assert set(out) == {"fid_inception", "kid_inception_mean", "kid_inception_std", "is_inception_mean",
                        "is_inception_std"}
    assert all(np.isfinite(v) for v in out.values()), out
    scale = float(np.trace(np.cov(pool.astype(np.float64), rowvar=False)))
    assert abs(out["fid_inception"]) < 1e-4 * scale, (out, scale)
    assert out["is_inception_mean"] >= 1.0 - 1e-9


def test_missing_weights_are_reported_with_file_and_place(tmp_path):
    assert find_weights(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    assert find_weights(tmp_path) is None
    message = missing_message(tmp_path)
    assert str(tmp_path / "checkpoints" / WEIGHT_FILES[0]) in message
    assert URL_INCEPTION_V3 in message and URL_INCEPTION_V3.endswith("/" + WEIGHT_FILES[0])


def test_pytorch_fid_layout_has_torch_fidelity_keys_and_shapes():
    """Why pytorch-fid's file name is accepted: its network (torchvision's Inception3 with a 1008-way head, no
    aux head, blocks patched in place) has exactly the state-dict keys and shapes of torch-fidelity's."""
    from torchvision.models import inception_v3

    fid_layout = inception_v3(weights=None, num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    ours = _random_inception_state()
    assert set(ours) == {k for k in fid_layout if not k.endswith("num_batches_tracked")}
    assert all(fid_layout[k].shape == v.shape for k, v in ours.items())


class _Evil:
    """A pickle that would create a directory if it were ever executed."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("content", ["wrong_keys", "not_a_dict", "code"])
def test_wrong_files_are_clear_errors_and_never_executed(tmp_path, content):
    path = tmp_path / WEIGHT_FILES[0]
    marker = tmp_path / "executed"
    obj = {"wrong_keys": {"fc.weight": torch.zeros(3, 3)}, "not_a_dict": [torch.zeros(3)],
           "code": _Evil(marker)}[content]
    torch.save(obj, path)
    with pytest.raises(ValueError) as info:
        InceptionFeatures(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
