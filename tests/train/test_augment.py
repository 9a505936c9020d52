"""What D sees: DiffAugment and ADA (kornia's transforms) on real and fake alike, differentiable, inside exact
resume; ADA's probability follows D's overfitting signal; LeCam's term holds D's logits together; the evaluation
reads that signal on held-out images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganops.core.params import Params, ParamsError
from ganops.evaluate import overfitting
from ganops.models.augment import Augment
from ganops.train import train

torch.set_num_threads(1)


def params(**train_kw) -> Params:
    base = {"family": "dcgan", "steps": 6, "batch_size": 8, "g_filters": 8, "d_filters": 8, "z_dim": 16, "h_dim": 8,
            "log_every": 1, "checkpoint_every": 3, "grid_size": 16}
    base.update(train_kw)
    return Params.model_validate({"seed": 3, "device": "cpu", "train": base})


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, 1, 16, 16), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
def test_diffaugment_changes_every_image_and_lets_gradients_through(channels, policy):
    torch.manual_seed(0)
    x = (torch.rand(16, channels, 16, 16) * 2 - 1).requires_grad_(True)
    out = Augment("diffaugment", channels, policy=policy)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    changed = (out - x).detach().abs().flatten(1).amax(1) > 1e-4
    assert bool(changed.all()), f"{policy}: {int((~changed).sum())} images left as they were"
    out.square().sum().backward()            # G learns through D's view of its samples
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("translation", [0.0625, 0.25])
def test_diffaugment_shifts_images_by_up_to_its_translation_share_of_the_side(translation):
    torch.manual_seed(0)
    x = torch.full((256, 1, 32, 32), -1.0)
    x[:, :, 14:18, 14:18] = 1.0                          # a centred square: its centre of mass is where it went
    out = Augment("diffaugment", 1, policy="translation", translation=translation)(x)
    mass = (out + 1).squeeze(1)
    grid = torch.arange(32.0)
    cy = (mass.sum(2) * grid).sum(1) / mass.sum((1, 2))
    cx = (mass.sum(1) * grid).sum(1) / mass.sum((1, 2))
    shift = torch.maximum((cy - 15.5).abs(), (cx - 15.5).abs())
    limit = translation * 32
    assert float(shift.max()) <= limit + 1e-3, f"shifted {float(shift.max()):.2f} px, more than {limit} px"
    assert float(shift.max()) > 0.8 * limit           # and the whole range is drawn


@pytest.mark.parametrize("cutout", [0.25, 0.5])
def test_diffaugment_cutout_blanks_a_square_of_its_share_of_the_side(cutout):
    from ganops.core.params import Params

    torch.manual_seed(0)
    x = torch.ones(64, 1, 32, 32)
    out = Augment("diffaugment", 1, policy="cutout", cutout=cutout)(x)
    blank = out.squeeze(1) == -1.0                   # black in [-1, 1]
    side = round(cutout * 32)
    assert blank.sum((1, 2)).tolist() == [side * side] * 64
    rows, cols = blank.any(2).sum(1), blank.any(1).sum(1)     # one square, not scattered pixels
    assert rows.tolist() == cols.tolist() == [side] * 64
    assert len({tuple(b.nonzero()[0].tolist()) for b in blank}) > 16    # anywhere in the image
    ap = Params.model_validate({"train": {"augment": {"policy": "translation,cutout", "cutout": cutout}}}).train.augment
    assert Augment.of(ap, 1, 64).ops[-1].scale[0] == pytest.approx(cutout ** 2)   # the key reaches the transform


def test_no_augmentation_is_the_identity_and_ada_starts_at_zero():
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert torch.equal(Augment("none", 1)(x), x)
    ada = Augment("ada", 1)
    assert ada.p == 0.0 and torch.equal(ada(x), x)   # ADA adds augmentation only once D overfits


def test_a_bad_policy_or_kind_names_the_key_and_what_is_allowed():
    with pytest.raises(ParamsError, match=r"train\.augment\.policy': value 'color,zoom' is not allowed; expected a "
                                          r"comma-separated subset of color, translation, cutout"):
        _load("train.augment.policy=color,zoom")
    with pytest.raises(ParamsError, match=r"train\.augment\.kind': value 'mixup' is not allowed; expected one of "
                                          r"'none', 'diffaugment' or 'ada'"):
        _load("train.augment=mixup")
    assert _load("train.augment=ada").train.augment.kind == "ada"      # the kind alone, its keys' defaults
    with pytest.raises(ParamsError, match=r"key 'transfer\.augment\.kind': value 'ada' is not allowed; expected one "
                                          r"of 'none' or 'diffaugment'"):
        _load("transfer.augment=ada")     # ADA steers by one real/fake logit: the translators' D give none
    with pytest.raises(ParamsError, match=r"train\.augment\.policy.*each at most once"):
        _load("train.augment.policy=color,color")
    # no shift is the policy without translation; past half the image is gone
    for bad, allowed in (("0", r"> 0"), ("0.75", r"≤ 0\.5")):
        with pytest.raises(ParamsError, match=rf"train\.augment\.translation': value {bad} is not allowed; "
                                              rf"expected a number {allowed}"):
            _load(f"train.augment.translation={bad}")
    with pytest.raises(ParamsError, match=r"transfer\.augment\.translation': value 2 is not allowed"):
        _load("transfer.augment.translation=2")
    with pytest.raises(ParamsError, match=r"train\.augment\.ada_kimg"):
        _load("train.augment.ada_kimg=.inf")     # p would never move


def _load(item: str) -> Params:
    from ganops.core import params as P

    return P.load(None, [item])


class _World:   # one process: the mean of a tensor is itself
    def mean(self, t):
        return t


def test_ada_raises_p_while_d_is_sure_of_the_reals_and_lowers_it_when_not():
    ada = Augment("ada", 1, target=0.6, interval=2, kimg=0.1, batch=10)   # a step of 10·2/100 = 0.2 per adjustment
    sure, unsure = torch.full((10,), 3.0), torch.tensor([1.0] * 5 + [-1.0] * 5)
    for _ in range(4):                       # r_t = 1 > 0.6 for two intervals
        ada.observe(sure, _World())
    assert ada.p == pytest.approx(0.4) and ada.rt == 1.0
    assert all(op.p == pytest.approx(0.4) for op in ada.ops)
    for _ in range(6):                       # r_t = 0 < 0.6 for three intervals: down, and never below 0
        ada.observe(unsure, _World())
    assert ada.p == 0.0 and ada.rt == 0.0
    for _ in range(20):
        ada.observe(sure, _World())
    assert ada.p == 1.0                      # and never above 1


@pytest.mark.parametrize("augment, lecam", [("diffaugment", 0.0), ("ada", 0.0), ("diffaugment", 0.5)])
def test_an_augmented_training_resumes_bit_exactly(images, tmp_path, augment, lecam):
    # ADA's p moves at every step (a fast D, sure of the reals at once, and a low target); LeCam's averages
    # of D's logits are checkpointed (restarted from the resumed step's logits, D's updates would differ)
    kw = {"augment": {"kind": augment, "ada_kimg": 0.1, "ada_interval": 1, "ada_target": 0.05}, "lr_d": 0.01,
          "lecam": lecam}
    straight = train(params(**kw), images, checkpoint_path=tmp_path / "a.pt")
    train(params(**kw, steps=3), images, checkpoint_path=tmp_path / "b.pt")
    resumed = train(params(**kw), images, checkpoint_path=tmp_path / "b.pt")
    assert resumed.resumed_from == 3
    for net in ("G", "D"):
        for k, v in straight.states[net].items():
            assert torch.equal(v, resumed.states[net][k]), f"{net}.{k}"
    if augment == "ada":
        ps = [e["ada_p"] for e in straight.history]
        assert ps == [e["ada_p"] for e in resumed.history] and max(ps) > 0   # p itself resumed, and logged
    plain = train(params(augment="none"), images)
    assert not torch.equal(plain.states["G"]["out.weight"], straight.states["G"]["out.weight"])


def _digits_16() -> np.ndarray:
    """scikit-learn's real digits as uint8 N×1×16×16 (each 8×8 pixel doubled)."""
    from sklearn.datasets import load_digits

    return np.repeat(np.repeat((load_digits().images * 255 / 16).astype(np.uint8), 2, 1), 2, 2)[:, None]


def test_lecam_keeps_a_memorising_d_from_driving_real_and_fake_logits_apart():
    """16 real images and a D trained long without augmentation: LeCam's term holds D's logits on the reals
    near its average on fakes, so the gap D opens between them is a fraction of the unregularised one."""
    x = _digits_16()[:16]
    gaps = {}
    for weight in (0.0, 1.0):
        res = train(params(steps=150, batch_size=16, checkpoint_every=1000, log_every=10, ema=False, augment="none",
                           loss="ns", lecam=weight), x)
        gaps[weight] = np.mean([e["d_real"] - e["d_fake"] for e in res.history[-5:]])
    assert gaps[0.0] > 3 and gaps[1.0] < gaps[0.0] / 2, gaps


def test_lecam_is_refused_negative_infinite_or_with_a_decay_of_one():
    for key, value in (("lecam", "-0.1"), ("lecam", ".inf"), ("lecam_decay", "1.0")):
        with pytest.raises(ParamsError, match=rf"train\.{key}'"):
            _load(f"train.{key}={value}")


def test_the_overfitting_signal_reads_a_memorising_d():
    # D sure of the training images, calling held-out ones as fake as samples: r_v = 1
    sig = overfitting.signal(np.full(50, 4.0), np.full(50, -2.0), np.full(50, -2.0))
    assert sig["d_rt_train"] == 1.0 and sig["d_rt_holdout"] == -1.0 and sig["d_rv"] == pytest.approx(1.0)
    # D telling held-out images from training ones no better than chance: r_v = 0
    sig = overfitting.signal(np.array([1.0, -1.0] * 25), np.array([-1.0, 1.0] * 25), np.full(50, -3.0))
    assert sig["d_rv"] == pytest.approx(0.0) and sig["d_rt_holdout"] == 0.0


def test_a_d_trained_long_on_few_images_is_surer_of_them_than_of_held_out_ones():
    """Real overfitting: 16 training images, a D trained for many steps; held-out images of the same
    distribution get lower outputs than the images it trained on, and fewer positive ones (ADA's r_t).

    d_rv is not asserted here: its scale is D's output on a reference it never learnt to place (a blank image),
    which over seeds and layouts came out above and below the training images' (unit-tested above)."""
    from ganops.models import load_model

    x = _digits_16()
    train_x, held = x[:16], x[200:400]
    res = train(params(steps=300, batch_size=16, checkpoint_every=1000, log_every=100, ema=False, augment="none"),
                train_x)    # no augmentation: nothing keeps D from memorising
    D = load_model(res.weights()).discriminator()
    sig = overfitting.signal(overfitting.d_outputs(D, train_x), overfitting.d_outputs(D, held),
                             overfitting.d_outputs(D, np.zeros_like(held)))
    assert sig["d_mean_train"] > sig["d_mean_holdout"] + 1.0 and sig["d_rt_train"] > sig["d_rt_holdout"], sig


def test_each_rank_augments_its_share_with_draws_of_its_own_and_one_process_is_unchanged():
    from ganops.core.distributed import World
    from ganops.models.base import Context

    p = params()
    x = torch.rand(4, 1, 16, 16) * 2 - 1

    def view(world: World) -> torch.Tensor:
        torch.manual_seed(123)     # the same global stream before the family is built, as on every rank
        aug = Context(p, torch.device("cpu"), {}, world=world).augment(p.train.augment, 1, 8)
        return aug(x)

    one, again = view(World()), view(World())
    assert torch.equal(one, again)                                    # one process: as before, reproducible
    rank0, rank1 = view(World(0, 2, backend="gloo")), view(World(1, 2, backend="gloo"))
    assert not torch.equal(rank0, rank1)                              # the ranks' shares are not augmented alike
    assert torch.equal(rank1, view(World(1, 2, backend="gloo")))      # and each rank's draws are seeded
