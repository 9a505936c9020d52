"""The evaluation pictures: readable layouts, the walk's and arithmetic's maths, byte-for-byte reproducible."""

import numpy as np
import pytest
import torch
from PIL import Image

from ganops.core.visual import CELL_MIN, MAX_SIDE
from ganops.evaluate import pictures as P
from ganops.models.blocks import GConfig, Generator
from ganops.models.gan_model import GeneratorModel

RES, Z = 32, 16


def _generator(**cfg) -> GeneratorModel:
    """The model of a small untrained G whose samples differ visibly: DCGAN's N(0, 0.02) init gives
    near-constant grey, so the output layer is scaled up and batch norm gets running statistics from a few
    batches."""
    torch.manual_seed(0)
    G = Generator(GConfig(resolution=RES, channels=1, filters=8, z_dim=Z, **cfg))
    y = torch.randint(0, cfg["n_classes"], (64,)) if cfg.get("n_classes") else None
    h = torch.randn(64, cfg["feat_dim"]) if cfg.get("feat_dim") else None
    with torch.no_grad():
        G.out.weight.mul_(40)
        for _ in range(5):
            G(torch.randn(64, Z), y, h)
    family = "icgan" if cfg.get("feat_dim") else "cgan" if cfg.get("n_classes") else "dcgan"
    return GeneratorModel({"family": family, "configs": {"G": G.cfg.to_dict()}, "networks": {"G": G.state_dict()}})


@pytest.fixture(scope="module")
def model():
    return _generator()


def _size(path):
    with Image.open(path) as im:
        im.load()
        return im.size


def _rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _cells(path, ncol):
    """The RES-px images of a save_grid PNG, in order (undoing its pad and integer upscale)."""
    with Image.open(path) as im:
        px = np.asarray(im)
    s = px.shape[1] // (ncol * (RES + 2) + 2)
    small = px[::s, ::s]
    nrow = (small.shape[0] - 2) // (RES + 2)
    at = lambda i: 2 + i * (RES + 2)
    return np.stack([small[at(r):at(r) + RES, at(q):at(q) + RES] for r in range(nrow) for q in range(ncol)])


def _rank_classes(k):
    """A stand-in classifier: mean brightness ranked into k equally filled classes."""
    return lambda x: np.argsort(np.argsort(x.reshape(len(x), -1).mean(1), kind="stable"), kind="stable") * k // len(x)


# ---------------------------------------------------------------- sample grid

def test_sample_grid_is_readable_and_shows_the_seeded_samples(model, tmp_path):
    path = P.sample_grid(model, tmp_path / "a.png", n=64, seed=3)
    w, h = _size(path)
    assert w == h and w // (8 * (RES + 2) + 2) * RES >= CELL_MIN     # 8 a row, 32-px cells upscaled to >= 96 px
    np.testing.assert_array_equal(_cells(path, 8), model.generate(64, seed=3)[:, 0])
    assert path.read_bytes() == P.sample_grid(model, tmp_path / "b.png", seed=3).read_bytes()
    assert path.read_bytes() != P.sample_grid(model, tmp_path / "c.png", seed=4).read_bytes()


# ---------------------------------------------------------------- latent walk

def test_slerp_has_exact_endpoints_and_keeps_the_norm():
    rng = np.random.default_rng(0)
    z0, z1 = rng.standard_normal((2, 3, 100)).astype(np.float32)
    z1 *= np.linalg.norm(z0, axis=-1, keepdims=True) / np.linalg.norm(z1, axis=-1, keepdims=True)
    path = P.slerp(z0, z1, 7)
    assert path.shape == (3, 7, 100)
    np.testing.assert_array_equal(path[:, 0].astype(np.float32), z0)
    np.testing.assert_array_equal(path[:, -1].astype(np.float32), z1)
    # On the sphere all the way; a straight line would sag to ~|z|/√2 midway between near-orthogonal z.
    np.testing.assert_allclose(np.linalg.norm(path, axis=-1), np.linalg.norm(z0, axis=-1)[:, None].repeat(7, 1),
                               rtol=1e-6)
    np.testing.assert_allclose(P.slerp(z0[0], 2 * z0[0], 3)[1], 1.5 * z0[0], rtol=1e-6)   # parallel: a line
    with pytest.raises(ValueError, match="2 steps"):
        P.slerp(z0, z1, 1)


@pytest.mark.parametrize("n_classes", [0, 3])
def test_walk_rows_go_from_one_seeded_sample_to_the_next_under_a_fixed_condition(tmp_path, n_classes):
    model = _generator(n_classes=n_classes)
    rows, steps = 3, 6
    labels = [2, 0, 1] if n_classes else None
    path = P.latent_walk(model, tmp_path / "w.png", rows=rows, steps=steps, seed=5, labels=labels)
    frames = _cells(path, steps).reshape(rows, steps, RES, RES).astype(int)
    assert frames.shape[0] == rows
    ends = model.generate(2 * rows, seed=5, labels=None if labels is None else np.repeat(labels, 2))[:, 0].astype(int)
    # Same z, same condition: the same image up to one grey level (batch size may change float rounding).
    assert np.abs(frames[:, 0] - ends[0::2]).max() <= 1
    assert np.abs(frames[:, -1] - ends[1::2]).max() <= 1
    assert (np.abs(frames[:, 2] - frames[:, 0]).max((1, 2)) > 1).all()       # it moves in between
    assert path.read_bytes() == P.latent_walk(model, tmp_path / "v.png", rows, steps, 5, labels).read_bytes()
    assert path.read_bytes() != P.latent_walk(model, tmp_path / "u.png", rows, steps, 6, labels).read_bytes()


def test_walk_width_grows_with_steps(model, tmp_path):
    (w4, h4), (w10, h10) = (_size(P.latent_walk(model, tmp_path / f"{s}.png", rows=2, steps=s)) for s in (4, 10))
    assert h4 == h10 and w4 * (10 * (RES + 2) + 2) == w10 * (4 * (RES + 2) + 2)


def test_walk_conditions_must_be_given_for_icgan_and_fit_the_rows(tmp_path):
    model = _generator(feat_dim=5)
    with pytest.raises(ValueError, match="instance features"):
        P.latent_walk(model, tmp_path / "w.png", rows=2, steps=3)
    with pytest.raises(ValueError, match="3 conditions for 2 rows"):
        P.latent_walk(model, tmp_path / "w.png", rows=2, steps=3, features=np.ones((3, 5), np.float32))
    h = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    one_each, one_for_all = (P.latent_walk(model, tmp_path / f"{n}.png", rows=2, steps=3, features=f)
                             for n, f in (("each", h), ("all", h[0])))
    assert one_each.read_bytes() != one_for_all.read_bytes()


# ---------------------------------------------------------------- latent arithmetic

def test_pick_triples_takes_distinct_classes_with_three_members():
    classes = np.array([0] * 5 + [1] * 3 + [2] * 4 + [3] * 2)      # class 3 has too few members
    triples = P.pick_triples(classes, seed=0)
    assert sorted(triples) == [(0, 1, 2), (0, 2, 1), (1, 0, 2)]    # a < c: a - b + c == c - b + a
    many = P.pick_triples(np.repeat(np.arange(6), 3), seed=0)
    assert len(many) == P.MAX_TRIPLES == len(set(many)) and many == P.pick_triples(np.repeat(np.arange(6), 3), 0)
    assert P.pick_triples(np.array([0, 0, 0, 1, 1, 1]), seed=0) == []


def test_arithmetic_draws_a_row_per_triple_reproducibly(model, tmp_path):
    pics = {k: P.latent_arithmetic(model, tmp_path / f"{k}.png", _rank_classes(k), seed=1, n_pool=96) for k in (3, 4)}
    (w3, h3), (w4, h4) = _size(pics[3]), _size(pics[4])
    assert w3 == w4 and h4 > h3        # 3 classes make 3 triples, 4 classes at least 4: one more row
    again = P.latent_arithmetic(model, tmp_path / "again.png", _rank_classes(4), seed=1, n_pool=96)
    assert again.read_bytes() == pics[4].read_bytes()
    other = P.latent_arithmetic(model, tmp_path / "other.png", _rank_classes(4), seed=2, n_pool=96)
    assert other.read_bytes() != pics[4].read_bytes()
    assert (_rgb(pics[4]) == P.GENERATED_FRAME).all(-1).any()     # results are framed as generated


def test_arithmetic_without_three_classes_draws_the_class_counts(model, tmp_path):
    seen = []

    def one_class(x):
        seen.append(len(x))
        return np.full(len(x), 7)

    path = P.latent_arithmetic(model, tmp_path / "f.png", one_class, seed=1, n_pool=64)
    assert seen == [64]                # the pool is classified once; nothing is generated from it
    full = P.latent_arithmetic(model, tmp_path / "t.png", _rank_classes(4), seed=1, n_pool=64)
    assert _size(path)[1] < _size(full)[1] / 2
    assert not (_rgb(path) == P.GENERATED_FRAME).all(-1).any()
    with pytest.raises(ValueError, match="classify returned 1 labels for 64"):
        P.latent_arithmetic(model, tmp_path / "e.png", lambda x: [0], n_pool=64)


# ---------------------------------------------------------------- IC-GAN instance panel

def _imgs(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 1, RES, RES), dtype=np.uint8)


def test_instance_panel_grows_with_columns_and_caps_them(tmp_path):
    size = lambda k, s: _size(P.instance_panel(tmp_path / f"{k}-{s}.png", _imgs(3), _imgs(3, k), _imgs(3, s)))
    (w2, h2), (w5, h5) = size(2, 2), size(5, 2)
    assert h2 == h5 and w5 > w2
    capped = size(P.PANEL_COLS, P.PANEL_COLS)
    assert size(60, 60) == capped and max(capped) <= MAX_SIDE


def test_instance_panel_frames_real_and_generated_and_is_reproducible(tmp_path):
    a = P.instance_panel(tmp_path / "a.png", _imgs(2), _imgs(2, 3), _imgs(2, 4))
    px = _rgb(a)
    assert (px == P.INSTANCE_FRAME).all(-1).any() and (px == P.GENERATED_FRAME).all(-1).any()
    assert a.read_bytes() == P.instance_panel(tmp_path / "b.png", _imgs(2), _imgs(2, 3), _imgs(2, 4)).read_bytes()
    held = P.instance_panel(tmp_path / "c.png", _imgs(2), _imgs(2, 3), _imgs(2, 4), captions=["held-out", "train"])
    assert held.read_bytes() != a.read_bytes()
    with pytest.raises(ValueError, match="2 instances"):
        P.instance_panel(tmp_path / "d.png", _imgs(2), _imgs(3, 3), _imgs(2, 4))


# ---------------------------------------------------------------- memorisation panel

def test_nearest_panel_puts_the_closest_pair_first_and_flags_pairs_below_the_reference(tmp_path):
    levels = np.array([70, 120, 170, 220], np.uint8)     # pair i: solid grey levels[i], sample and neighbor alike
    solid = np.broadcast_to(levels[:, None, None, None], (4, 1, RES, RES)).copy()
    d = [0.4, 0.1, 0.3, 0.2]
    px = _rgb(P.nearest_panel(tmp_path / "n.png", solid, solid, d))
    grey = (px[..., 0] == px[..., 1]) & (px[..., 1] == px[..., 2]) & np.isin(px[..., 0], levels)
    y = np.flatnonzero(grey.any(1))[0] + 2                  # a line through the first row of cells
    order = [v for i, v in enumerate(px[y, grey[y], 0]) if i == 0 or v != px[y, grey[y], 0][i - 1]]
    assert order == [120, 220, 170, 70]                     # by distance: 0.1, 0.2, 0.3, 0.4
    assert not (px == P.SUSPECT_FRAME).all(-1).any()
    flagged = _rgb(P.nearest_panel(tmp_path / "r.png", solid, solid, d, holdout_reference=0.25))
    assert (flagged == P.SUSPECT_FRAME).all(-1).any()
    none = _rgb(P.nearest_panel(tmp_path / "s.png", solid, solid, d, holdout_reference=0.05))
    assert not (none == P.SUSPECT_FRAME).all(-1).any()


# ---------------------------------------------------------------- loss plot

def _history(scale=1.0):
    return [{"step": s, "d_loss": scale * 1.4 / s ** 0.1, "g_loss": scale * (0.7 + s / 500), "d_real": 0.5,
             "d_fake": -0.5} for s in range(50, 501, 50)]


def test_loss_plot_is_a_reproducible_png(tmp_path):
    a = P.loss_plot(_history(), tmp_path / "a.png")
    assert _size(a)[0] > _size(P.loss_plot([{k: e[k] for k in ("step", "d_loss", "g_loss")} for e in _history()],
                                           tmp_path / "losses-only.png"))[0]
    assert a.read_bytes() == P.loss_plot(_history(), tmp_path / "b.png").read_bytes()
    assert a.read_bytes() != P.loss_plot(_history(2.0), tmp_path / "c.png").read_bytes()
    with pytest.raises(ValueError, match="empty"):
        P.loss_plot([], tmp_path / "d.png")
