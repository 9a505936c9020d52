"""Dataset sources and the dataset artifact, on real data (digits, the shared MNIST test split) and on
files written in each source's real on-disk format."""

import bz2
import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_MNIST
from PIL import Image

from ganops.core.params import DataParams
from ganops.data import store, writer
from ganops.data.resize import to_channels
from ganops.data.sources import DataSourceError, load_source

# Images per digit in the official MNIST test split.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _params(**kw) -> DataParams:
    return DataParams(**{"download": False, **kw})


def test_digits_default_to_artifact(tmp_path):
    p = _params(resolution=32)
    raw = load_source(p, tmp_path)
    assert raw.images.shape == (1797, 1, 8, 8) and raw.images.max() == 255
    ds = store.prepare(raw, p, seed=0)
    summary = writer.write_dataset(tmp_path, ds, p)

    # data.holdout (0.1): 180 images, 18 per class, kept out of images.npy for the evaluation
    images = store.load_images(tmp_path)
    assert images.shape == (1617, 1, 32, 32) and images.dtype == np.uint8
    manifest = store.load_manifest(tmp_path)
    assert list(manifest.columns) == ["index", "label", "split", "sha1", "source", "original_index"]
    assert manifest["sha1"].str.len().eq(40).all()
    held, held_labels = store.load_holdout(tmp_path)
    assert held.shape == (180, 1, 32, 32) and np.bincount(held_labels).min() >= 17
    held_manifest = pd.read_parquet(tmp_path / store.HOLDOUT_MANIFEST)
    assert not set(held_manifest["sha1"]) & set(manifest["sha1"])      # no image in both
    assert sorted([*manifest["original_index"], *held_manifest["original_index"]]) == list(range(1797))
    assert sum(summary["per_class"].values()) == 1617 and len(summary["per_class"]) == 10
    assert sum(summary["holdout_per_class"].values()) == 180
    assert summary["per_split"] == {"train": 1617}
    metrics = json.loads((tmp_path / "summary.json").read_text())["metrics"]
    assert (metrics["n_images"], metrics["n_train"], metrics["n_holdout"]) == (1797, 1617, 180)
    with Image.open(tmp_path / "grid.png") as im:
        assert im.format == "PNG" and min(im.size) >= 256


def _indices(raw) -> list[int]:
    """Original positions, from the sources ('digits/17', 'mnist/test/17')."""
    return [int(s.rsplit("/", 1)[1]) for s in raw.sources]


def test_limit_is_a_seeded_class_stratified_sample(tmp_path):
    """digits is not class-sorted, but a class-sorted source cut at its first images would lose classes."""
    full = load_source(_params(), tmp_path)
    raw = load_source(_params(limit=100), tmp_path, seed=0)
    assert len(raw) == 100
    share = np.bincount(full.labels) * 100 / len(full)
    assert (np.abs(np.bincount(raw.labels, minlength=10) - share) < 1).all()  # every class, near its share
    idx = _indices(raw)
    assert idx == sorted(idx) and idx != list(range(100))  # original order kept, not the first images
    assert np.array_equal(raw.images, full.images[idx]) and np.array_equal(raw.labels, full.labels[idx])
    assert raw.report["limit"] == {"kept": 100, "of": 1797, "seed": 0, "sampling": "stratified by label"}

    assert load_source(_params(limit=100), tmp_path, seed=0).sources == raw.sources
    assert load_source(_params(limit=100), tmp_path, seed=1).sources != raw.sources
    assert len(load_source(_params(limit=5000), tmp_path)) == 1797


def test_split_source_limit_is_stratified_and_keeps_each_images_source():
    """MNIST test split: the sample covers all ten digits and each image still names its position."""
    full = load_source(_params(dataset="mnist", root=str(SHARED_MNIST)), SHARED_MNIST.parent)
    raw = load_source(_params(dataset="mnist", root=str(SHARED_MNIST), limit=50), SHARED_MNIST.parent, seed=3)
    assert len(raw) == 50
    share = np.array(MNIST_TEST_COUNTS) * 50 / 10000
    assert (np.abs(np.bincount(raw.labels, minlength=10) - share) < 1).all()
    idx = _indices(raw)
    assert idx == sorted(idx) and np.array_equal(raw.images, full.images[idx])
    assert raw.report["limit"]["kept"] == 50 and raw.report["splits_loaded"] == ["test"]


def test_mnist_from_a_folder_holding_only_the_test_split():
    """The shared folder is read-only and has only the two t10k files: mnist must still load."""
    p = _params(dataset="mnist", root=str(SHARED_MNIST), download=True)
    raw = load_source(p, SHARED_MNIST.parent)
    assert raw.images.shape == (10000, 1, 28, 28)
    assert np.bincount(raw.labels).tolist() == MNIST_TEST_COUNTS
    assert set(raw.splits) == {"test"}
    assert raw.report["splits_loaded"] == ["test"] and "train" in raw.report["splits_missing"]


def test_mnist_train_split_missing_says_which_files_where(tmp_path):
    p = _params(dataset="mnist", root=str(SHARED_MNIST), split="train")
    with pytest.raises(DataSourceError) as e:
        load_source(p, tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert str(SHARED_MNIST / "MNIST" / "raw") in msg and "data.download" in msg


def test_nothing_present_without_download_lists_every_file(tmp_path):
    with pytest.raises(DataSourceError) as e:
        load_source(_params(dataset="fashion_mnist", root=str(tmp_path)), tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in msg


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_files(tmp_path):
    raw_dir = tmp_path / "FashionMNIST" / "raw"
    raw_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 7), ("t10k", 5)):
        _write_idx(raw_dir / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw_dir / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    raw = load_source(_params(dataset="fashion_mnist", root=str(tmp_path)), tmp_path)
    assert raw.images.shape == (12, 1, 28, 28)
    assert raw.splits.tolist() == ["train"] * 7 + ["test"] * 5
    assert raw.class_names[9] == "Ankle boot"


def test_idx_with_wrong_magic_is_named(tmp_path):
    raw_dir = tmp_path / "MNIST" / "raw"
    raw_dir.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(raw_dir / name, "wb") as f:
            f.write(b"not an idx file")
    with pytest.raises(DataSourceError, match="t10k-images-idx3-ubyte.gz"):
        load_source(_params(dataset="mnist", root=str(tmp_path)), tmp_path)


def test_usps_libsvm_bz2(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.uniform(-1, 1, (4, 256))
    lines = [f"{lab} " + " ".join(f"{j + 1}:{v:.6f}" for j, v in enumerate(row))
             for lab, row in zip([1, 10, 3, 5], values)]
    (tmp_path / "usps.bz2").write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    raw = load_source(_params(dataset="usps", root=str(tmp_path)), tmp_path)
    assert raw.images.shape == (4, 1, 16, 16)
    assert raw.labels.tolist() == [0, 9, 2, 4]
    assert np.array_equal(raw.images[1, 0].ravel(), np.rint((values[1] + 1) * 127.5).astype(np.uint8))


def test_svhn_mat_maps_ten_to_zero(tmp_path):
    import scipy.io

    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": np.array([[10], [1], [9]], np.uint8)})
    raw = load_source(_params(dataset="svhn", root=str(tmp_path)), tmp_path)
    assert raw.labels.tolist() == [0, 1, 9]
    assert np.array_equal(raw.images[2], x[..., 2].transpose(2, 0, 1))


def test_cifar10_pickled_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data = np.random.default_rng(0).integers(0, 256, (6, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data, "labels": [3, 1, 4, 1, 5, 9]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"]}, f)
    raw = load_source(_params(dataset="cifar10", root=str(tmp_path)), tmp_path)
    assert raw.images.shape == (6, 3, 32, 32) and raw.labels.tolist() == [3, 1, 4, 1, 5, 9]
    assert np.array_equal(raw.images[0].ravel(), data[0])
    assert raw.class_names[3] == "cat"


class _Planted:
    """A pickle that runs a command when loaded, as a planted file in data.root could."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_a_planted_pickle_without_running_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "ran"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": _Planted(marker), "labels": [1]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["cat"]}, f)
    with pytest.raises(DataSourceError, match=r"test_batch: not a CIFAR-10 batch file: it asks to load "
                                              r"(posix|os|nt)\.system"):
        load_source(_params(dataset="cifar10", root=str(tmp_path)), tmp_path)
    assert not marker.exists()
    (folder / "test_batch").write_bytes(b"\x80\x02}q")          # truncated
    with pytest.raises(DataSourceError, match="not a readable CIFAR-10 batch file"):
        load_source(_params(dataset="cifar10", root=str(tmp_path)), tmp_path)


def test_celeba_aligned_jpegs(tmp_path):
    folder = tmp_path / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    parts = []
    for i in range(4):
        name = f"{i + 1:06d}.jpg"
        Image.new("RGB", (178, 218), (40 * i, 0, 0)).save(folder / "img_align_celeba" / name)
        parts.append(f"{name} {i % 3}")
    (folder / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    raw = load_source(_params(dataset="celeba", root=str(tmp_path), split="train", resolution=16), tmp_path)
    assert raw.images.shape == (2, 3, 16, 16)  # partition 0: images 1 and 4
    assert raw.sources[1].endswith("000004.jpg") and (raw.labels == -1).all()
    one = load_source(_params(dataset="celeba", root=str(tmp_path), split="train", resolution=16, limit=1), tmp_path)
    assert len(one) == 1 and one.sources[0] in raw.sources  # decoded only the image data.limit keeps
    assert np.array_equal(one.images[0], raw.images[raw.sources.index(one.sources[0])])


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    for cls, color in (("cats", (200, 10, 10)), ("dogs", (10, 200, 10))):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 30), color).save(root / cls / f"{i}.png")
    (root / "README.txt").write_text("not an image: ignored")
    return root


def test_image_folder_labels_from_subfolders(tmp_path):
    root = _folder(tmp_path)
    raw = load_source(_params(dataset="image_folder", root=str(root), resolution=16), tmp_path)
    assert raw.images.shape == (6, 3, 16, 16)
    assert raw.class_names == ["cats", "dogs"] and raw.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert raw.sources[0] == "cats/0.png"


def test_image_folder_corrupt_files_are_listed_or_skipped_with_a_report(tmp_path):
    root = _folder(tmp_path)
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    good = root / "cats" / "0.png"
    (root / "cats" / "half.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(DataSourceError) as e:
        load_source(_params(dataset="image_folder", root=str(root)), tmp_path)
    assert "broken.jpg" in str(e.value) and "half.png" in str(e.value) and "data.skip_corrupt" in str(e.value)

    p = _params(dataset="image_folder", root=str(root), skip_corrupt=True, resolution=16)
    raw = load_source(p, tmp_path)
    assert len(raw) == 6
    assert raw.report["skipped"]["count"] == 2
    assert {Path(f).name for f in raw.report["skipped"]["files"]} == {"broken.jpg", "half.png"}
    (tmp_path / "out").mkdir()
    summary = writer.write_dataset(tmp_path / "out", store.prepare(raw, p, 0), p)
    assert summary["metrics"]["n_skipped"] == 2
    assert summary["source_report"]["skipped"]["count"] == 2


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(DataSourceError, match="data.root='nowhere'.*not a directory"):
        load_source(_params(dataset="image_folder", root="nowhere"), tmp_path)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataSourceError, match="no image files"):
        load_source(_params(dataset="image_folder", root="empty"), tmp_path)


def test_single_split_sources_reject_test_split(tmp_path):
    with pytest.raises(DataSourceError, match="data.split='test'"):
        load_source(_params(split="test"), tmp_path)


def test_rgb_to_grey_matches_pil():
    rgb = np.random.default_rng(0).integers(0, 256, (2, 3, 9, 7), dtype=np.uint8)
    grey = to_channels(rgb, 1)
    for i in range(2):
        ref = np.asarray(Image.fromarray(rgb[i].transpose(1, 2, 0)).convert("L"))
        assert np.abs(grey[i, 0].astype(int) - ref.astype(int)).max() <= 1
    assert to_channels(grey, 3).shape == (2, 3, 9, 7)


def test_mnist_reader_agrees_with_torchvisions_reader(tmp_path):
    """Our IDX reader (which also reads .gz in place) gives torchvision's arrays on the real files."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    raw_dir = SHARED_MNIST / "MNIST" / "raw"
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(gzip.decompress((raw_dir / f"{name}.gz").read_bytes()))
    ours = load_source(_params(dataset="mnist", root=str(SHARED_MNIST)), tmp_path)
    assert np.array_equal(ours.images[:, 0], read_image_file(str(tmp_path / "t10k-images-idx3-ubyte")).numpy())
    assert np.array_equal(ours.labels, read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")).numpy())
