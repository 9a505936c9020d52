"""The downloadable datasets, in torchvision's on-disk layouts.

torchvision does the downloading (``download=True`` fetches and verifies the official files);
reading is done here, straight from the on-disk formats, for two reasons: torchvision's MNIST
refuses a folder that holds only the test split (it checks all four files and wants to extract
the .gz next to them, which fails on a read-only folder like ../shared/data/mnist), and its
md5 checks would reject a re-packed or partial cache that is perfectly readable.
"""

from __future__ import annotations

import bz2
import gzip
import pickle
from pathlib import Path

import numpy as np

from ganops.core.params import DataParams
from ganops.data.raw import DataSourceError
from ganops.data.resize import center_crop_square, resize_square
from ganops.data.splits import Part, SplitSource

DIGIT_NAMES = [str(i) for i in range(10)]


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally .gz) as a numpy array: magic 0x0000 0x08 ndim, big-endian dims, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataSourceError(f"{path} is not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(np.int64)
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataSourceError(f"{path}: header says {tuple(dims)} = {int(np.prod(dims))} bytes, file holds {body.size}")
    return body.reshape(tuple(dims))


class IdxSource(SplitSource):
    folder = ""
    base_url = ""
    tv_class = ""
    class_names: list[str] = DIGIT_NAMES
    layout = "torchvision's raw layout; .gz or extracted"

    def directory(self, root: Path, split: str) -> Path:
        return root / self.folder / "raw"

    def files(self, split: str) -> list[tuple[str, str]]:
        prefix = "train" if split == "train" else "t10k"
        names = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
        return [(n, self.base_url + n) for n in names]

    def missing(self, root: Path, split: str) -> list[str]:
        folder = self.directory(root, split)
        return [n for n, _ in self.files(split) if not self._find(folder, n)]

    @staticmethod
    def _find(folder: Path, gz_name: str) -> Path | None:
        for candidate in (folder / gz_name, folder / gz_name[:-3]):
            if candidate.is_file():
                return candidate
        return None

    def load(self, root: Path, split: str, download: bool, p: DataParams) -> Part:
        if download:
            import torchvision.datasets as tvd

            getattr(tvd, self.tv_class)(str(root), train=split == "train", download=True)
        folder = self.directory(root, split)
        images_file, labels_file = (self._find(folder, n) for n, _ in self.files(split))
        images, labels = read_idx(images_file), read_idx(labels_file)
        if images.ndim != 3 or labels.shape != (len(images),):
            raise DataSourceError(f"{images_file} holds {images.shape} and {labels_file} {labels.shape}; "
                                  "expected N×28×28 images and N labels")
        return Part(images[:, None], labels.astype(np.int64), None, list(self.class_names))


class Mnist(IdxSource):
    name, folder, tv_class = "mnist", "MNIST", "MNIST"
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist/"


class FashionMnist(IdxSource):
    name, folder, tv_class = "fashion_mnist", "FashionMNIST", "FashionMNIST"
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


# ---------------------------------------------------------------- USPS (libsvm, bz2)

class Usps(SplitSource):
    name = "usps"
    layout = "bz2 libsvm files, as torchvision's USPS stores them"
    _files = {"train": "usps.bz2", "test": "usps.t.bz2"}
    _url = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"

    def directory(self, root: Path, split: str) -> Path:
        return root

    def files(self, split: str) -> list[tuple[str, str]]:
        return [(self._files[split], self._url + self._files[split])]

    def load(self, root: Path, split: str, download: bool, p: DataParams) -> Part:
        if download:
            import torchvision.datasets as tvd

            tvd.USPS(str(root), train=split == "train", download=True)
        path = root / self._files[split]
        with bz2.open(path, "rt") as f:
            lines = [line.split() for line in f]
        # libsvm: "<label 1..10> 1:v 2:v ... 256:v", values in [-1, 1]; every pixel is present.
        labels = np.array([int(float(t[0])) - 1 for t in lines], np.int64)
        values = np.array([[float(x.split(":")[1]) for x in t[1:]] for t in lines], np.float32)
        if values.ndim != 2 or values.shape[1] != 256:
            raise DataSourceError(f"{path}: expected 256 values per line (16×16 images), got {values.shape}")
        images = np.clip(np.rint((values + 1) * 127.5), 0, 255).astype(np.uint8).reshape(-1, 1, 16, 16)
        return Part(images, labels, None, DIGIT_NAMES)


# ---------------------------------------------------------------- SVHN (.mat)

class Svhn(SplitSource):
    name = "svhn"
    optional = ("extra",)
    layout = "MATLAB files, as torchvision's SVHN stores them"
    _url = "http://ufldl.stanford.edu/housenumbers/"

    def directory(self, root: Path, split: str) -> Path:
        return root

    def files(self, split: str) -> list[tuple[str, str]]:
        return [(f"{split}_32x32.mat", f"{self._url}{split}_32x32.mat")]

    def load(self, root: Path, split: str, download: bool, p: DataParams) -> Part:
        import scipy.io

        if download:
            import torchvision.datasets as tvd

            tvd.SVHN(str(root), split=split, download=True)
        mat = scipy.io.loadmat(str(root / f"{split}_32x32.mat"))
        x, y = mat["X"], mat["y"].astype(np.int64).ravel()
        images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # 32×32×3×N → N×3×32×32
        y[y == 10] = 0  # SVHN stores the digit 0 as class 10
        return Part(images, y, None, DIGIT_NAMES)


# ---------------------------------------------------------------- CIFAR-10 (pickled batches)

# What CIFAR-10's batches are made of: dicts, lists, strings and numpy arrays. pickle.load of anything else
# could run code a planted file chose; numpy moved its reconstructor to numpy._core in 2.0.
_CIFAR_GLOBALS = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                            ("numpy._core.multiarray", "scalar")})


def _load_cifar_pickle(path: Path):
    """One CIFAR-10 batch file, unpickled with only the real format's objects allowed."""
    class Restricted(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if (module, name) in _CIFAR_GLOBALS:
                return super().find_class(module, name)
            raise DataSourceError(f"{path}: not a CIFAR-10 batch file: it asks to load {module}.{name}, which "
                                  "the real batches never hold (a pickle could run code, so it was not loaded); "
                                  "replace it with the file from cifar-10-python.tar.gz")

    with open(path, "rb") as f:
        try:
            return Restricted(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DataSourceError(f"{path}: not a readable CIFAR-10 batch file ({exc}); replace it with the file "
                                  "from cifar-10-python.tar.gz") from None

class Cifar10(SplitSource):
    name = "cifar10"
    layout = "the extracted cifar-10-python.tar.gz"
    _url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

    def directory(self, root: Path, split: str) -> Path:
        return root / "cifar-10-batches-py"

    def files(self, split: str) -> list[tuple[str, str]]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        return [(n, self._url) for n in [*names, "batches.meta"]]

    def load(self, root: Path, split: str, download: bool, p: DataParams) -> Part:
        if download:
            import torchvision.datasets as tvd

            tvd.CIFAR10(str(root), train=split == "train", download=True)
        folder = self.directory(root, split)
        images, labels = [], []
        for name, _ in self.files(split)[:-1]:
            batch = _load_cifar_pickle(folder / name)
            images.append(np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch["labels"], np.int64))
        names = _load_cifar_pickle(folder / "batches.meta")["label_names"]
        return Part(np.concatenate(images), np.concatenate(labels), None, list(names))


# ---------------------------------------------------------------- CelebA (aligned JPEGs)

class CelebA(SplitSource):
    name = "celeba"
    optional = ("valid",)
    layout = "torchvision's CelebA layout, img_align_celeba.zip extracted"
    _url = "https://drive.google.com/drive/folders/0B7EVK8r0v71pWEZsZE9oNnFzTm8 (torchvision downloads it)"
    _codes = {"train": "0", "valid": "1", "test": "2"}

    def directory(self, root: Path, split: str) -> Path:
        return root / "celeba"

    def files(self, split: str) -> list[tuple[str, str]]:
        return [("img_align_celeba/", self._url), ("list_eval_partition.txt", self._url)]

    def missing(self, root: Path, split: str) -> list[str]:
        folder = self.directory(root, split)
        out = [] if (folder / "img_align_celeba").is_dir() else ["img_align_celeba/"]
        return out + ([] if (folder / "list_eval_partition.txt").is_file() else ["list_eval_partition.txt"])

    def load(self, root: Path, split: str, download: bool, p: DataParams) -> Part:
        if download:
            import torchvision.datasets as tvd

            tvd.CelebA(str(root), split=split, download=True)
        folder = self.directory(root, split)
        with open(folder / "list_eval_partition.txt") as f:
            names = [t[0] for t in (line.split() for line in f) if len(t) == 2 and t[1] == self._codes[split]]
        paths = [folder / "img_align_celeba" / n for n in names]
        # Decoding 200k JPEGs is the slow part: only the ones data.limit keeps are decoded.
        return Part(None, np.full(len(names), -1, np.int64), [str(q) for q in paths], None,
                    decode=lambda keep: _decode_rgb([paths[i] for i in keep], p.resolution))


def _decode_rgb(paths: list[Path], side: int) -> np.ndarray:
    """JPEGs → uint8 N×3×side×side, each cropped and shrunk as it is decoded (200k at 178×218 would be 23 GB)."""
    from PIL import Image

    images = np.empty((len(paths), 3, side, side), np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
        images[i] = resize_square(center_crop_square(arr)[None], side)[0]
    return images


SPLIT_SOURCES: dict[str, SplitSource] = {s.name: s for s in (Mnist(), FashionMnist(), Usps(), Svhn(), Cifar10(),
                                                              CelebA())}
