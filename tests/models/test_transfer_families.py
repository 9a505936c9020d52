"""Domain-transfer families on the one trainer: CycleGAN and DTN train, checkpoint every named network,
resume bit-exactly (pool of fakes and learning-rate decay included) and refuse inputs they cannot use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganops.core.params import Params
from ganops.embed.nets import SmallCNN
from ganops.models import TrainData
from ganops.models.cyclegan import ImagePool
from ganops.train import TrainError, train

torch.set_num_threads(1)

RES = 16


def params(family: str, **kw) -> Params:
    base = {"family": family, "steps": 6, "batch_size": 4, "g_filters": 4, "d_filters": 4, "n_blocks": 1,
            "pool_size": 3, "checkpoint_every": 3, "log_every": 1, "grid_size": 4, "sample_every": 3}
    base.update(kw)
    return Params.model_validate({"seed": 2, "device": "cpu", "transfer": base})


@pytest.fixture(scope="module")
def domains():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (40, 1, RES, RES), dtype=np.uint8)
    target = rng.integers(0, 256, (50, 1, RES, RES), dtype=np.uint8)
    torch.manual_seed(0)
    f = SmallCNN(1, 16, (8, 8, 8, 8), RES).eval()
    return source, target, f


def run(p: Params, data: TrainData, **kw):
    return train(p, data=data, section="transfer", progress=False, **kw)


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class Killed(Exception):
    pass


def _kill_at(step: int):
    def log(s, metrics):
        if s == step:
            raise Killed       # after the step's checkpoint was written, as a kill would find it
    return log


@pytest.mark.parametrize("augment", ["none", "diffaugment"])
@pytest.mark.parametrize("family", ["cyclegan", "dtn"])
def test_transfer_resume_is_bit_exact(domains, family, augment, tmp_path):
    source, target, f = domains
    data = TrainData(source, target_images=target, source_classifier=f)
    p = params(family, augment=augment)     # DiffAugment: its draws resume with the rest
    straight = run(p, data, checkpoint_path=tmp_path / "a.pt")
    with pytest.raises(Killed):
        run(p, data, checkpoint_path=tmp_path / "b.pt", log=_kill_at(3))
    resumed = run(p, data, checkpoint_path=tmp_path / "b.pt")
    assert resumed.resumed_from == 3 and resumed.steps == 6
    for name in straight.states:
        _same(straight.states[name], resumed.states[name])
    assert straight.history == resumed.history
    a, b = (torch.load(tmp_path / n, weights_only=True) for n in ("a.pt", "b.pt"))
    assert a["optimizers"]["G"]["param_groups"][0]["lr"] == b["optimizers"]["G"]["param_groups"][0]["lr"]
    for k, v in a["family_state"].items():       # CycleGAN's pools of fakes
        assert torch.equal(v, b["family_state"][k]), k
    if augment != "none":                        # the discriminators saw other images than without it
        plain = run(params(family), data)
        d = "D" if family == "dtn" else "D_a"
        assert any(not torch.equal(v, straight.states[d][k]) for k, v in plain.states[d].items())


def test_cyclegan_trains_all_four_networks_and_decays_the_learning_rate(domains):
    source, target, _ = domains
    p = params("cyclegan", steps=8, decay_start=0.5)
    grids = []
    r = run(p, TrainData(source, target_images=target), sample_cb=lambda s, g, n: grids.append((s, g, n)))
    assert set(r.states) == {"G_ab", "G_ba", "D_a", "D_b"}
    assert {"cycle_a", "cycle_b", "idt_a", "idt_b", "d_a", "d_b"} <= set(r.final_losses)
    assert all(np.isfinite(v) for v in r.final_losses.values())
    # the grid: each source image, its translation and its reconstruction, one row each
    _, img, nrow = grids[-1]
    assert nrow == 3 and img.shape == (3 * 4, 1, RES, RES) and img.dtype == np.uint8
    # 4 steps at full rate, then linear to 0 over the other 4 (CycleGAN's lambda rule): lr·(1 − 4/5)
    from ganops.train.trainer import Trainer

    tr = Trainer(p, TrainData(source, target_images=target), device="cpu", section="transfer")
    for _ in range(8):
        tr.train_step()
    assert tr.family.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2e-4 * (1 - 4 / 5))


def test_dtn_keeps_f_frozen_and_judges_three_ways(domains):
    source, target, f = domains
    r = run(params("dtn"), TrainData(source, target_images=target, source_classifier=f))
    _same(r.states["f"], {k: v.cpu() for k, v in f.state_dict().items()})
    assert r.configs["D"]["outputs"] == 3 and r.configs["f"]["dim"] == 16
    assert {"gan", "const", "tid"} <= set(r.final_losses)


def test_dtn_translates_colour_source_into_grey_target(domains):
    _, target, _ = domains
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, (30, 3, RES, RES), dtype=np.uint8)
    f3 = SmallCNN(3, 16, (8, 8, 8, 8), RES).eval()
    grids = []
    run(params("dtn", steps=2), TrainData(colour, target_images=target, source_classifier=f3),
        sample_cb=lambda s, g, n: grids.append(g))
    assert grids[-1].shape == (8, 3, RES, RES)    # source (RGB) beside its grey translation, shown as RGB


def test_image_pool_keeps_then_swaps_fakes():
    pool = ImagePool(3, torch.Generator().manual_seed(0))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)               # filling: every new fake is shown
    shown = pool.query(torch.full((20, 1, 1, 1), 9.0))
    old = shown[shown != 9.0]
    assert 0 < len(old) < 20 and set(old.tolist()) <= {0.0, 1.0, 2.0}   # about half come from history
    assert (pool.state() == 9.0).any()                         # …and the new ones took their place
    assert ImagePool(0, torch.Generator()).query(first) is first


@pytest.mark.parametrize(("kw", "data_kw", "match"), [
    ({}, {"target_images": None}, r"transfer.target"),
    ({}, {"target_images": np.zeros((5, 1, 8, 8), np.uint8)}, r"transfer.source.resolution"),
    ({"family": "dtn"}, {"source_classifier": None}, r"source domain's labels"),
    ({"identity_weight": 0.5}, {"target_images": np.zeros((5, 3, RES, RES), np.uint8)}, r"transfer.identity_weight"),
])
def test_transfer_refuses_inputs_it_cannot_use(domains, kw, data_kw, match):
    source, target, f = domains
    data = {"target_images": target, "source_classifier": f, **data_kw}
    fam = kw.pop("family", "cyclegan")
    with pytest.raises(TrainError, match=match):
        run(params(fam, **kw), TrainData(source, **data))


def test_cyclegan_step_computes_the_repository_losses(domains):
    """The batched step (a network's inputs share one call) gives the losses of the CycleGAN
    repository's separate calls, G side and D side, on the same networks and batch."""
    import copy

    from torch.nn import functional as F

    from ganops.train.trainer import Trainer

    source, target, _ = domains
    tr = Trainer(params("cyclegan", pool_size=50), TrainData(source, target_images=target), device="cpu",
                 section="transfer")
    fam = tr.family
    batch = fam.next_batch()
    n = {k: copy.deepcopy(v) for k, v in fam.networks.items()}
    a, b = batch.source, batch.target
    with torch.no_grad():
        fake_b, fake_a = n["G_ab"](a), n["G_ba"](b)
        mse = lambda x, t: (x - t).pow(2).mean()  # noqa: E731
        want = {"g_ab": mse(n["D_b"](fake_b), 1), "g_ba": mse(n["D_a"](fake_a), 1),
                "cycle_a": F.l1_loss(n["G_ba"](fake_b), a) * 10, "cycle_b": F.l1_loss(n["G_ab"](fake_a), b) * 10,
                "idt_a": F.l1_loss(n["G_ba"](a), a) * 5, "idt_b": F.l1_loss(n["G_ab"](b), b) * 5,
                # the pool is empty, so the discriminators see this step's fakes
                "d_a": 0.5 * (mse(n["D_a"](a), 1) + mse(n["D_a"](fake_a), 0)),
                "d_b": 0.5 * (mse(n["D_b"](b), 1) + mse(n["D_b"](fake_b), 0))}
    got = fam.train_step(batch)
    for k, v in want.items():
        assert got[k].item() == pytest.approx(v.item(), rel=1e-4, abs=1e-6), k
