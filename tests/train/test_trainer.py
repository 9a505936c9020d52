"""The training library: losses, DCGAN networks, IC-GAN sampling, exact resume, errors, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganops.catalog.losses import get_loss
from ganops.core.params import Params
from ganops.models import load_model
from ganops.models.batches import BatchSampler
from ganops.models.blocks import DConfig, Discriminator, GConfig, Generator
from ganops.models.weights import save_weights
from ganops.train import TrainError, train

torch.set_num_threads(1)

N, RES = 60, 16


def params(**train_kw) -> Params:
    base = {"steps": 4, "batch_size": 8, "g_filters": 8, "d_filters": 8, "z_dim": 16, "h_dim": 8,
            "log_every": 1, "checkpoint_every": 2, "grid_size": 16}
    base.update(train_kw)
    return Params.model_validate({"seed": 3, "device": "cpu", "train": base})


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 1, RES, RES), dtype=np.uint8)
    labels = np.arange(N) % 10
    feats = rng.normal(size=(N, 12)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    neighbors = np.stack([(np.arange(N) + o) % N for o in (1, 2, 5)], 1).astype(np.int64)
    return images, labels, feats, neighbors


# ---------------------------------------------------------------- losses

def test_losses_on_known_logits():
    t = torch.tensor
    hinge, ns, ls = get_loss("hinge"), get_loss("ns"), get_loss("ls")
    assert hinge.d(t([2.0, 2.0]), t([-2.0, -2.0])).item() == 0.0          # both sides beyond the margin
    assert hinge.d(t([-2.0]), t([2.0])).item() == pytest.approx(6.0)      # (1+2) + (1+2)
    assert hinge.g(t([2.0, -2.0, 3.0])).item() == pytest.approx(-1.0)
    assert ns.d(t([0.0]), t([0.0])).item() == pytest.approx(2 * math.log(2))
    assert ns.g(t([0.0])).item() == pytest.approx(math.log(2))
    assert ns.d(t([20.0]), t([-20.0])).item() == pytest.approx(0.0, abs=1e-8)
    assert ls.d(t([1.0]), t([0.0])).item() == 0.0
    assert ls.d(t([0.0]), t([1.0])).item() == pytest.approx(1.0)
    assert ls.g(t([0.0])).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="train.loss"):
        get_loss("wasserstein")


# ---------------------------------------------------------------- networks

@pytest.mark.parametrize("res", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_networks_shapes_and_rules(res, channels):
    torch.manual_seed(0)
    G = Generator(GConfig(resolution=res, channels=channels, filters=8, z_dim=10))
    D = Discriminator(DConfig(resolution=res, channels=channels, filters=8))
    x = G(torch.randn(4, 10))
    assert x.shape == (4, channels, res, res)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x).shape == (4,)
    # DCGAN rules: transposed convs in G, strided convs in D, no BN at D's input, no Linear layers
    assert not any(isinstance(m, torch.nn.Linear) for m in (*G.modules(), *D.modules()))
    assert isinstance(D.features[0], torch.nn.Conv2d) and D.features[0].stride == (2, 2)
    assert isinstance(D.features[1], torch.nn.LeakyReLU) and D.features[1].negative_slope == 0.2
    assert all(c.stride == (2, 2) for c in G.convs[1:]) and isinstance(G.out, torch.nn.ConvTranspose2d)


def test_spectral_norm_discriminator_runs():
    D = Discriminator(DConfig(resolution=16, channels=1, filters=8, n_classes=3, spectral_norm=True))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert D(torch.randn(2, 1, 16, 16), torch.tensor([0, 2])).shape == (2,)


def test_unsupported_resolution_names_the_key(data):
    images = np.zeros((N, 1, 24, 24), np.uint8)
    with pytest.raises(TrainError, match=r"data\.resolution.*16, 32, 64"):
        train(params(family="dcgan"), images)


# ---------------------------------------------------------------- IC-GAN sampling

def test_icgan_real_side_comes_from_the_neighborhood_never_the_instance():
    n, k = 40, 4
    images = (np.arange(n, dtype=np.uint8) * 5)[:, None, None, None].repeat(RES, 2).repeat(RES, 3)
    feats = np.eye(n, dtype=np.float32)                        # h_i identifies instance i
    rng = np.random.default_rng(1)
    neighbors = np.stack([rng.choice(np.delete(np.arange(n), i), k, replace=False) for i in range(n)])
    s = BatchSampler(images, None, feats, neighbors, use_labels=False, use_features=True,
                device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    used = np.zeros((n, k), bool)
    for _ in range(50):
        x, _, h = s.real(32)
        i = h.argmax(1).numpy()
        j = np.rint((x[:, 0, 0, 0].numpy() + 1) * 127.5 / 5).astype(int)
        assert (j != i).all()
        hit = neighbors[i] == j[:, None]
        assert hit.any(1).all()
        used[i] |= hit
    assert used.mean() > 0.9                                   # every member of A_i gets drawn


def test_class_conditional_icgan_uses_the_neighbors_label(data):
    images, _, feats, neighbors = data
    labels = np.arange(N) * 7 % 10                              # distinct from the instance's own
    s = BatchSampler(images, labels, feats, neighbors, use_labels=True, use_features=True,
                device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    d = s.draw(200)
    y, h = s.conditions(d)
    assert torch.equal(y, torch.as_tensor(labels)[d.image_index])
    assert torch.equal(h, torch.as_tensor(feats)[d.cond_index])
    assert (d.image_index != d.cond_index).all()


def test_class_swap_pairs_an_instance_with_the_nearest_images_of_a_drawn_class(data):
    images, _, _, neighbors = data
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, N)
    feats = rng.normal(size=(N, 12)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    kw = dict(use_labels=True, use_features=True, device=torch.device("cpu"))
    s = BatchSampler(images, labels, feats, neighbors, **kw, rng=torch.Generator().manual_seed(0), class_swap=1.0)
    d = s.draw(400)
    i, j = d.cond_index.numpy(), d.image_index.numpy()
    assert (i != j).all()
    sims = feats @ feats.T
    for a, b in zip(i, j):         # j is among the k most similar of its own class to i (i itself excluded)
        same = np.flatnonzero((labels == labels[b]) & (np.arange(N) != a))
        assert b in same[np.argsort(-sims[a, same])[:neighbors.shape[1]]]
    assert (labels[j] != labels[i]).mean() > 0.6                 # the drawn class is mostly another one
    assert set(np.unique(labels[j])) == {0, 1, 2, 3}
    # class_swap is the share of such draws; 0 draws from the neighborhoods as ever (the same random stream)
    def in_neighborhood(swap: float) -> float:
        d = BatchSampler(images, labels, feats, neighbors, **kw, rng=torch.Generator().manual_seed(0),
                         class_swap=swap).draw(400)
        return (neighbors[d.cond_index.numpy()] == d.image_index.numpy()[:, None]).any(1).mean()

    assert in_neighborhood(0.0) == 1.0 and 0.4 < in_neighborhood(0.5) < 0.8 and in_neighborhood(1.0) < 0.3
    few = labels.copy()
    few[np.flatnonzero(few == 2)[3:]] = 1                      # class 2 keeps 3 images, k = 3 needs 4
    with pytest.raises(TrainError, match=r"class_swap=1.0: class 2 has 3 images.*neighbors.k=3"):
        BatchSampler(images, few, feats, neighbors, **kw, rng=torch.Generator(), class_swap=1.0)
    plain = BatchSampler(images, labels, feats, neighbors, **kw, rng=torch.Generator().manual_seed(0))
    assert torch.equal(plain.draw(64).image_index, BatchSampler(
        images, labels, feats, neighbors, **kw, rng=torch.Generator().manual_seed(0), class_swap=0.0).draw(64).image_index)


# ---------------------------------------------------------------- errors

def test_icgan_without_neighborhoods_says_which_stage(data):
    images, labels, feats, _ = data
    with pytest.raises(TrainError, match="ganops stage neighbors"):
        train(params(family="icgan"), images, labels, feats, None)


@pytest.mark.parametrize("family,cc,key", [("cgan", False, "train.family=cgan"),
                                           ("icgan", True, "train.class_conditional")])
def test_conditional_family_on_unlabelled_data(data, family, cc, key):
    images, _, feats, neighbors = data
    with pytest.raises(TrainError, match=f"{key}.*unlabelled"):
        train(params(family=family, class_conditional=cc), images, np.full(N, -1), feats, neighbors)


def test_diverging_run_stops_at_once(data, tmp_path):
    with pytest.raises(TrainError, match=r"non-finite loss at step 1 .*no checkpoint had been written yet"):
        train(params(family="dcgan", loss="ns", lr_d=1e30, lr_g=1e30, checkpoint_every=1), data[0],
              checkpoint_path=tmp_path / "ck.pt")


def test_nan_loss_stops_naming_step_and_last_good_checkpoint(data, tmp_path, monkeypatch):
    from ganops.train.trainer import Trainer

    step = Trainer.train_step

    def blow_up_d_after_step_3(self):     # D's weights become NaN, as after a diverging update
        if self.step == 3:
            with torch.no_grad():
                for w in self.family.networks["D"].parameters():
                    w.fill_(float("nan"))
        return step(self)

    monkeypatch.setattr(Trainer, "train_step", blow_up_d_after_step_3)
    ck = tmp_path / "ck.pt"
    with pytest.raises(TrainError, match=r"non-finite loss at step 4 .*last good checkpoint is .*ck\.pt \(step 3\)"):
        train(params(family="dcgan", steps=8, checkpoint_every=1), data[0], checkpoint_path=ck)
    saved = torch.load(ck, weights_only=True)
    assert saved["step"] == 3 and all(torch.isfinite(v).all() for v in saved["networks"]["D"].values())


# ---------------------------------------------------------------- exact resume

def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _assert_same_opt(a, b):
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(v, b["state"][pid][k]), (pid, k)


def test_resume_is_bit_exact(data, tmp_path):
    images, labels, feats, neighbors = data
    kw = dict(family="icgan", class_conditional=True, d_steps=2, steps=6, checkpoint_every=3, spectral_norm=True,
              class_swap=0.5, mode_seeking=1.0)      # their draws come from the checkpointed streams too
    straight = train(params(**kw), images, labels, feats, neighbors, checkpoint_path=tmp_path / "a.pt")
    first = train(params(**{**kw, "steps": 3}), images, labels, feats, neighbors, checkpoint_path=tmp_path / "b.pt")
    assert first.steps == 3
    resumed = train(params(**kw), images, labels, feats, neighbors, checkpoint_path=tmp_path / "b.pt")
    assert resumed.resumed_from == 3 and resumed.steps == 6
    _assert_same(straight.states["G"], resumed.states["G"])
    _assert_same(straight.states["D"], resumed.states["D"])
    _assert_same(straight.ema["G"], resumed.ema["G"])
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    _assert_same_opt(a["optimizers"]["G"], b["optimizers"]["G"])
    _assert_same_opt(a["optimizers"]["D"], b["optimizers"]["D"])
    assert [e["step"] for e in resumed.history] == list(range(1, 7))
    assert not torch.equal(straight.states["G"]["out.weight"], first.states["G"]["out.weight"])


@pytest.mark.parametrize("family", ["dcgan", "cgan", "icgan"])
def test_channels_last_on_the_cpu_is_a_speed_choice_that_trains_the_same_model(data, family):
    # the generator families train in channels_last on the CPU too (faster there): the same losses and weights as
    # torch's default layout to float rounding, so no figure measured in one layout is another model's
    from ganops.models import TrainData
    from ganops.train.trainer import Trainer

    swap = {"class_conditional": True, "class_swap": 0.5} if family == "icgan" else {}
    p = params(family=family, d_steps=2, **swap)
    runs = {}
    for channels_last in (None, False):        # None: the trainer's own choice
        tr = Trainer(p, TrainData(*data), channels_last=channels_last)
        losses = torch.stack([tr.train_step() for _ in range(3)])
        runs[tr.channels_last] = losses, {n: tr.family.networks[n].state_dict() for n in ("G", "D")}
    assert set(runs) == {True, False}          # the default on the CPU is channels_last
    (fast, fast_nets), (plain, plain_nets) = runs[True], runs[False]
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for name in ("G", "D"):
        for key, value in plain_nets[name].items():
            torch.testing.assert_close(fast_nets[name][key], value, rtol=1e-5, atol=1e-5, msg=f"{name}.{key}")
    conv = next(m for m in fast_nets["G"] if m.endswith("weight") and fast_nets["G"][m].dim() == 4)
    assert fast_nets["G"][conv].is_contiguous(memory_format=torch.channels_last)


def test_mode_seeking_rewards_pairs_whose_images_differ_as_their_noise_does():
    from ganops.core.distributed import World
    from ganops.models.gan import _mode_seeking

    one = World()                                              # a world of one (the ranks: tests/train/test_ranks.py)
    z = torch.randn(9, 16)                                     # an odd row is left out of the pairs
    same = torch.zeros(9, 1, 8, 8)
    differ = torch.rand(9, 1, 8, 8) * 2 - 1
    assert _mode_seeking(same, z, one) > 1e4 > 10 > _mode_seeking(differ, z, one)
    assert _mode_seeking(differ, z * 2, one) == pytest.approx(2 * _mode_seeking(differ, z, one).item(), rel=1e-4)


def test_killed_run_resumes_to_the_same_weights(data, tmp_path):
    images = data[0]
    p = params(family="dcgan", steps=6, checkpoint_every=2)
    straight = train(p, images)

    def crash(step, metrics):
        if step == 4:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        train(p, images, checkpoint_path=tmp_path / "ck.pt", log=crash)
    resumed = train(p, images, checkpoint_path=tmp_path / "ck.pt")
    assert resumed.resumed_from == 4
    _assert_same(straight.states["G"], resumed.states["G"])
    _assert_same(straight.states["D"], resumed.states["D"])
    _assert_same(straight.ema["G"], resumed.ema["G"])


def test_checkpoint_of_other_params_is_refused(data, tmp_path):
    images = data[0]
    train(params(family="dcgan", steps=2, lr_g=2e-4), images, checkpoint_path=tmp_path / "ck.pt")
    with pytest.raises(TrainError, match=r"(?s)other parameters.*train\.lr_g: checkpoint 0\.0002, now 0\.001"):
        train(params(family="dcgan", steps=4, lr_g=1e-3), images, checkpoint_path=tmp_path / "ck.pt")


# ---------------------------------------------------------------- EMA, callbacks, conditioning

def test_ema_copies_g_before_ema_start_and_averages_after(data):
    images = data[0]
    # standing_stats=0: the batch-norm statistics copied too (the end of training re-estimates them: below)
    before = train(params(family="dcgan", steps=3, ema_start=10, standing_stats=0), images)
    _assert_same(before.states["G"], before.ema["G"])
    after = train(params(family="dcgan", steps=3, ema_start=1), images)
    assert not torch.equal(after.states["G"]["out.weight"], after.ema["G"]["out.weight"])


def test_the_ema_weighs_g_with_a_half_life_of_ema_rampup_times_the_steps_so_far(data):
    # stylegan2-ada's ramp-up: the steps of the last rampup × t carry about half the average's weight
    from ganops.models import TrainData
    from ganops.train.trainer import Trainer

    steps, rampup = 40, 0.25
    tr = Trainer(params(family="dcgan", steps=steps, ema_rampup=rampup), TrainData(*data))
    live, avg = tr.family.networks["G"].parameters(), tr.ema["G"].parameters()
    w, e = next(live), next(avg)
    seen = [w.detach().double().clone()]                    # G at step 0, then after each step
    for _ in range(steps):
        tr.train_step()
        seen.append(w.detach().double().clone())
    decay = [0.5 ** (1 / (rampup * t)) for t in range(1, steps + 1)]
    share = [float(np.prod(decay))] + [(1 - d) * float(np.prod(decay[t:])) for t, d in enumerate(decay, 1)]
    assert sum(share) == pytest.approx(1.0)
    expected = sum(s * x for s, x in zip(share, seen))
    torch.testing.assert_close(e.detach().double(), expected, rtol=1e-4, atol=1e-6)
    recent = sum(share[-int(rampup * steps):])
    assert 0.45 < recent < 0.6, recent
    assert not torch.allclose(e.detach().double(), seen[-1], atol=1e-4)     # an average, not a copy


@pytest.mark.parametrize("family", ["dcgan", "cgan", "icgan"])
def test_the_ema_g_samples_with_batch_norm_statistics_of_its_own_weights(data, family):
    # the live G's running statistics fit the live G's weights (and, early on, still their initial 0 and 1), not
    # the average's: at the end the EMA G's are estimated from its own samples, the training left as it was
    from ganops.models import TrainData
    from ganops.train.trainer import Trainer

    runs = {}
    for batches in (0, 32):
        tr = Trainer(params(family=family, steps=6, standing_stats=batches), TrainData(*data))
        runs[batches] = tr, tr.run(progress=False)
    (_, copied), (tr, own) = runs[0], runs[32]
    for name in ("G", "D"):
        _assert_same(copied.states[name], own.states[name])
    weights = [k for k in own.ema["G"] if "running_" not in k and "num_batches" not in k]
    _assert_same({k: copied.ema["G"][k] for k in weights}, {k: own.ema["G"][k] for k in weights})

    G, fam = tr.ema["G"], tr.family
    name, bn = next((n, m) for n, m in G.named_modules() if isinstance(m, torch.nn.BatchNorm2d))
    key = f"{name}.running_var"
    rngs = {k: r.get_state() for k, r in tr.rngs.items()}
    again = bn.running_var.clone()
    fam.finish_ema(tr.ema)                  # as a rerun of the finished run does: the same statistics
    assert torch.equal(bn.running_var, again)
    assert all(torch.equal(r.get_state(), rngs[k]) for k, r in tr.rngs.items())

    seen = []
    hook = bn.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    with torch.no_grad():
        for _ in range(32):
            y, h = fam._fake_conditions(64)
            G(fam.noise(64), y, h)
    hook.remove()
    x = torch.cat(seen)
    var = x.var((0, 2, 3))
    off_own = (own.ema["G"][key] / var).log().abs().max()           # a factor of e^off at worst
    off_copied = (copied.ema["G"][key] / var).log().abs().max()
    assert off_own < 0.2 < off_copied, (off_own, off_copied)


def test_callbacks_get_metrics_and_progress_grids(data):
    images = data[0]
    logs, grids = [], []
    r = train(params(family="cgan", steps=4, log_every=2, sample_every=3), images, data[1],
              log=lambda s, m: logs.append((s, m)), sample_cb=lambda s, x, nrow: grids.append((s, x, nrow)))
    assert [s for s, _ in logs] == [2, 4]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "steps_per_s"} <= set(logs[0][1])
    assert [s for s, *_ in grids] == [3, 4]
    assert grids[0][1].shape == (16, 1, RES, RES) and grids[0][1].dtype == np.uint8 and grids[0][2] == 10
    assert r.final_losses.keys() == {"d_loss", "g_loss", "d_real", "d_fake"}


def test_conditioning_changes_the_output(data, tmp_path):
    images, labels, feats, neighbors = data
    r = train(params(family="cgan", steps=3), images, labels)
    G = load_model(r.weights()).G
    z = torch.randn(1, 16).repeat(2, 1)
    x = G(z, torch.tensor([0, 1]))
    assert (x[0] - x[1]).abs().max() > 0.01 * x.abs().max()

    r = train(params(family="icgan", steps=3), images, labels, feats, neighbors)
    save_weights(tmp_path / "g.pt", r.weights())
    model = load_model(tmp_path / "g.pt")
    assert model.conditions.instance and not model.conditions.label
    x = model.G(z, None, torch.as_tensor(feats[:2]))
    assert (x[0] - x[1]).abs().max() > 0.01 * x.abs().max()
    D = model.discriminator()
    assert D(torch.zeros(2, 1, RES, RES), None, torch.as_tensor(feats[:2])).shape == (2,)
    a = model.generate(5, seed=1, features=feats[0])
    b = load_model(r.weights()).generate(5, seed=1, features=feats[0])
    assert a.shape == (5, 1, RES, RES) and a.dtype == np.uint8 and np.array_equal(a, b)
    with pytest.raises(ValueError, match="instance"):
        model.generate(2)


def test_short_dcgan_run_on_digits_learns_something():
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.as_tensor(digits.images[:400] / 16 * 255, dtype=torch.float32)[:, None]
    images = torch.nn.functional.interpolate(small, size=RES, mode="bilinear").round().clamp(0, 255)
    images = images.to(torch.uint8).numpy()
    # 120 steps: conditioned on 20 clusters (the default), G takes longer than 60 to darken the background
    r = train(params(family="dcgan", steps=120, batch_size=16, log_every=10, ema=False), images)
    losses = [v for e in r.history for v in (e["d_loss"], e["g_loss"])]
    assert all(map(math.isfinite, losses))
    init = train(params(family="dcgan", steps=1, batch_size=16, ema=False, lr_g=1e-12, lr_d=1e-12), images)
    assert not torch.equal(init.states["G"]["out.weight"], r.states["G"]["out.weight"])
    x = load_model(r.weights()).generate(32, seed=0).astype(np.float32)
    assert x.std(0).mean() > 1.0                                 # samples differ from one another
    assert x.mean() < 128                                        # digits are mostly dark background


def test_unreadable_checkpoint_is_reported_not_trusted(data, tmp_path):
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"half a checkpoint")
    with pytest.raises(TrainError, match=r"ck\.pt: not a readable ganops checkpoint.*Delete it"):
        train(params(family="dcgan"), data[0], checkpoint_path=ck)


def test_resume_past_the_requested_steps_is_refused(data, tmp_path):
    train(params(family="dcgan", steps=4), data[0], checkpoint_path=tmp_path / "ck.pt")
    done = train(params(family="dcgan", steps=4), data[0], checkpoint_path=tmp_path / "ck.pt")
    assert done.resumed_from == 4 and done.steps == 4
    with pytest.raises(TrainError, match=r"step 4, past train\.steps=2"):
        train(params(family="dcgan", steps=2), data[0], checkpoint_path=tmp_path / "ck.pt")


# ---------------------------------------------------------------- the generator asset check

@pytest.mark.parametrize("family", ["dcgan", "cgan", "icgan"])
def test_generator_check_passes_a_usable_g_and_fails_a_collapsed_or_broken_one(data, tmp_path, family):
    from ganops.tracking.checks import generator_healthy

    images, labels, feats, nbrs = data
    weights = train(params(family=family, steps=60, checkpoint_every=60), images, labels, feats, nbrs, device="cpu",
                    progress=False).weights()
    save_weights(tmp_path / "ok" / "model.pt", weights)
    assert generator_healthy(tmp_path / "ok").passed

    collapsed = {**weights, "ema": {"G": {k: (torch.zeros_like(v) if k.endswith("weight") and v.is_floating_point()
                                              else v) for k, v in weights["ema"]["G"].items()}}}
    save_weights(tmp_path / "flat" / "model.pt", collapsed)
    outcome = generator_healthy(tmp_path / "flat")
    assert not outcome.passed and outcome.metadata["sample_spread"] < 2.0

    broken = {**weights, "ema": {"G": {k: v.clone() for k, v in weights["ema"]["G"].items()}}}
    next(v for v in broken["ema"]["G"].values() if v.is_floating_point()).view(-1)[0] = float("nan")
    save_weights(tmp_path / "nan" / "model.pt", broken)
    assert generator_healthy(tmp_path / "nan").metadata["non_finite_weights"] == 1
    assert not generator_healthy(tmp_path / "nan").passed
