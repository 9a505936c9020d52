"""Pictures a person can read: grid cells big enough to see, and a neighbor panel whose query column,
labels and similarities show, all byte-for-byte reproducible (artifacts are hashed)."""

import numpy as np
import pytest
from PIL import Image

from ganops.core.visual import CELL_MIN, MAX_SIDE, save_grid
from ganops.neighbors import diagnostics as nd
from ganops.neighbors import search as nb
from ganops.neighbors.diagnostics import OTHER_LABEL_FRAME, PANEL_NEIGHBORS, QUERY_FRAME


def _images(n, size, c=1, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, c, size, size), dtype=np.uint8)


def _read(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("size", [8, 16, 32])
def test_grid_cells_are_at_least_cell_min(tmp_path, size):
    save_grid(_images(64, size), tmp_path / "g.png", nrow=8)
    with Image.open(tmp_path / "g.png") as im:
        w, h = im.size
    # 8×8 cells (plus pads) must each reach CELL_MIN px.
    assert min(w, h) >= 8 * CELL_MIN
    assert max(w, h) <= MAX_SIDE


def test_grid_upscales_by_an_integer_factor_with_proportional_pad(tmp_path):
    images = _images(64, 32)
    save_grid(images, tmp_path / "g.png", nrow=8)
    px = _read(tmp_path / "g.png")[..., 0]
    s = px.shape[0] // (8 * (32 + 2) + 2)
    assert s >= 3 and px.shape == ((8 * 34 + 2) * s,) * 2
    # The pad (2 px) is scaled too; then each source pixel is an s×s block (nearest, no blur).
    assert (px[:2 * s, :] == 255).all()
    first = px[2 * s:(2 + 32) * s, 2 * s:(2 + 32) * s]
    np.testing.assert_array_equal(first, np.kron(images[0, 0], np.ones((s, s), np.uint8)))


def test_grid_is_capped_on_its_longer_side(tmp_path):
    save_grid(_images(1024, 32), tmp_path / "g.png", nrow=32)
    with Image.open(tmp_path / "g.png") as im:
        assert max(im.size) <= MAX_SIDE and min(im.size) > 32 * 34  # still upscaled where it fits


def _panel_inputs(n=30, k=12, size=16):
    images = _images(n, size)
    indices = (np.arange(n)[:, None] + np.arange(1, k + 1)[None]) % n
    sims = np.linspace(0.95, 0.1, k, dtype=np.float32)[None].repeat(n, axis=0)
    labels = np.arange(n) % 3  # neighbor j of i shares its label iff j is a multiple of 3
    return images, indices, sims, labels


def test_panel_marks_queries_and_other_label_neighbors(tmp_path):
    images, indices, sims, labels = _panel_inputs()
    nd.save_panel(images, indices, tmp_path / "p.png", rows=4, seed=0, labels=labels, similarities=sims)
    px = _read(tmp_path / "p.png")
    query_col = px.shape[1] // (1 + PANEL_NEIGHBORS)  # the query column and its band lie left of this

    def where(color):
        return (px == color).all(axis=-1)

    blue, red = where(QUERY_FRAME), where(OTHER_LABEL_FRAME)
    assert blue[:, :query_col].any() and not blue[:, query_col:].any()
    assert red[:, query_col:].any() and not red[:, :query_col].any()

    # Every neighbor sharing the query's label: no red frame anywhere.
    nd.save_panel(images, indices, tmp_path / "same.png", rows=4, seed=0,
                  labels=np.zeros(len(images), np.int64), similarities=sims)
    assert not (_read(tmp_path / "same.png") == OTHER_LABEL_FRAME).all(axis=-1).any()


def test_panel_captions_add_room_and_depend_on_values(tmp_path):
    images, indices, sims, labels = _panel_inputs()
    nd.save_panel(images, indices, tmp_path / "plain.png", rows=4, seed=0)
    nd.save_panel(images, indices, tmp_path / "text.png", rows=4, seed=0, labels=labels, similarities=sims)
    nd.save_panel(images, indices, tmp_path / "other.png", rows=4, seed=0, labels=labels, similarities=sims * 0.5)
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "text.png") as b:
        assert a.mode == b.mode == "RGB"
        assert b.size[0] == a.size[0] and b.size[1] > a.size[1]
    # Same size, different similarities → different pixels: the numbers are really drawn.
    assert _read(tmp_path / "other.png").shape == _read(tmp_path / "text.png").shape
    assert (_read(tmp_path / "other.png") != _read(tmp_path / "text.png")).any()


def test_panel_and_grid_are_byte_identical_on_rerun(tmp_path):
    images, indices, sims, labels = _panel_inputs()
    for name in ("a", "b"):
        nd.save_panel(images, indices, tmp_path / f"{name}.png", rows=4, seed=3, labels=labels, similarities=sims)
        save_grid(images, tmp_path / f"g{name}.png", nrow=6)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "ga.png").read_bytes() == (tmp_path / "gb.png").read_bytes()


def test_panel_rejects_mismatched_labels_and_similarities(tmp_path):
    images, indices, sims, labels = _panel_inputs()
    with pytest.raises(nb.NeighborsError, match="labels"):
        nd.save_panel(images, indices, tmp_path / "p.png", rows=2, seed=0, labels=labels[:-1])
    with pytest.raises(nb.NeighborsError, match="similarities"):
        nd.save_panel(images, indices, tmp_path / "p.png", rows=2, seed=0, similarities=sims[:, :3])
