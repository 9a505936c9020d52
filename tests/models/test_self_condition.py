"""The self-conditioned DCGAN (train.self_condition, Liu et al. 2020): k-means clusters of the images condition G
and D in training; to its users the trained G stays unconditional, drawing clusters from z at their frequencies."""

import numpy as np
import pytest
import torch

from ganops.core.params import Params
from ganops.core.pixels import to_float
from ganops.models import load_model
from ganops.models.base import TrainData
from ganops.models.clusters import cluster, cluster_of_noise, nearest, pooled
from ganops.models.dcgan import DCGAN
from ganops.models.errors import TrainError
from ganops.train.trainer import Trainer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def modes():
    """Three well-apart modes (a bright square in one of three places) of 30, 60 and 90 noisy images."""
    rng = np.random.default_rng(0)
    which = np.repeat([0, 1, 2], [30, 60, 90])
    x = rng.integers(0, 40, (len(which), 1, 16, 16)).astype(np.uint8)
    for m in range(3):
        x[which == m, :, 5 * m:5 * m + 6, 5 * m:5 * m + 6] = 220
    return x, which


def params(steps: int, k: int = 3) -> Params:
    return Params.model_validate({"seed": 1, "device": "cpu", "train": {
        "family": "dcgan", "self_condition": k, "steps": steps, "batch_size": 8, "g_filters": 8, "d_filters": 8,
        "z_dim": 8, "log_every": 1, "checkpoint_every": 2, "grid_size": 16}})


def _run(steps, images, ckpt=None, k=3):
    return Trainer(params(steps, k), TrainData(images, None), family=DCGAN, device="cpu").run(ckpt, progress=False)


def test_kmeans_finds_the_modes_and_d_assigns_an_image_as_the_clustering_did(modes):
    images, which = modes
    assign, centroids = cluster(images, 3, seed=0)
    # one cluster per mode, whatever the numbering
    assert all(len(set(assign[which == m])) == 1 for m in range(3)) and len(set(assign)) == 3
    assert centroids.shape == (3, 256)
    result = _run(2, images)
    D = load_model(result.weights()).discriminator()
    with torch.no_grad():        # given no label, D conditions an image on its nearest centroid
        y = nearest(pooled(to_float(torch.from_numpy(images))), D.centroids)
        assert torch.equal(D(to_float(torch.from_numpy(images))), D(to_float(torch.from_numpy(images)), y))
    assert np.array_equal(y.numpy(), cluster(images, 3, seed=params(2).seed)[0])


def test_the_trained_g_is_unconditional_and_draws_each_cluster_at_its_frequency(modes, tmp_path):
    images, _ = modes
    model = load_model(_run(2, images).weights())
    assert not model.conditions.label and not model.conditions.instance
    assert model.cfg.self_conditioned and model.cfg.n_classes == 3
    counts = np.sort(np.diff(np.concatenate([[0.0], model.G.cdf.numpy()])) * len(images))
    assert np.allclose(counts, [30, 60, 90])
    drawn = cluster_of_noise(torch.randn(30000, 8, generator=torch.Generator().manual_seed(0)), model.G.cdf)
    assert np.allclose(np.sort(np.bincount(drawn.numpy(), minlength=3) / 30000), [1 / 6, 1 / 3, 1 / 2], atol=0.01)
    a = model.generate(12, seed=4)               # no labels asked for, the same seed the same samples
    assert a.shape == (12, 1, 16, 16) and np.array_equal(a, load_model(_run(2, images).weights()).generate(12, seed=4))
    assert model.preview_grid(tmp_path / "samples.png", 16, 0, images).read_bytes()[:4] == b"\x89PNG"


def test_a_self_conditioned_run_resumes_bit_exactly(modes, tmp_path):
    images, _ = modes
    straight = _run(4, images)
    ck = tmp_path / "ck.pt"
    _run(2, images, ck)
    state = torch.load(ck, weights_only=False)
    assert "clusters" in state["family_state"]      # the assignment travels with the checkpoint
    resumed = _run(4, images, ck)
    assert resumed.resumed_from == 2
    for name in ("G", "D"):
        assert all(torch.equal(straight.states[name][k], resumed.states[name][k]) for k in straight.states[name])


def test_more_clusters_than_the_images_fill_are_capped_in_the_log_and_one_is_refused(modes, caplog):
    with caplog.at_level("WARNING"):
        model = load_model(_run(1, modes[0], k=200).weights())
    assert model.cfg.n_classes == 90                   # at most half the 180 images
    assert "train.self_condition=200: 180 training images make at most 90 clusters" in caplog.text
    for k in (1, -3):
        with pytest.raises(ValueError, match=rf"train\.self_condition={k}: the number of clusters is 0 \(off\) or 2"):
            params(1, k=k)
    with pytest.raises(TrainError, match=r"train\.self_condition=3: 3 training images cannot be clustered"):
        _run(1, modes[0][:3])
