"""Samples from a trained generator, conditioned the way its family needs.

- dcgan: noise only.
- cgan (and class-conditional IC-GAN): a label per row.
- IC-GAN: an instance embedding h per row: a dataset instance's features, or a user's own image
  embedded with the pipeline's encoder (what IC-GAN's users ask for: "generate around my image").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ganops import artifacts as A
from ganops.params import Params

PER_ROW = 8


class SampleError(ValueError):
    """A sampling request does not fit the trained model: the message says what the model needs."""


def _conditions(weights: dict[str, Any], n_rows: int, features, labels, seed: int):
    """Seeded instances (IC-GAN) or consecutive labels (cGAN), one per row."""
    g = weights["g_config"]
    picks = None
    h = y = None
    if g.get("feat_dim"):
        picks = np.sort(np.random.default_rng(seed).choice(len(features), min(n_rows, len(features)), replace=False))
        h = np.asarray(features[picks], np.float32)
        if g.get("n_classes"):
            y = np.asarray(labels)[picks]
    elif g.get("n_classes"):
        y = np.arange(n_rows) % g["n_classes"]
    return picks, h, y


def preview_grid(weights: dict[str, Any], images: np.ndarray, features, labels, p: Params, path: Path) -> Path:
    """The generator's sample grid: one condition per row; for IC-GAN the row starts with the real instance."""
    from ganops.train import generate
    from ganops.visual import save_grid

    n_rows = max(1, p.train.n_samples // PER_ROW)
    picks, h, y = _conditions(weights, n_rows, features, labels, p.seed)
    n_rows = len(h) if h is not None else n_rows
    rep = lambda a: None if a is None else np.repeat(a, PER_ROW, axis=0)  # noqa: E731
    fake = generate(weights, n_rows * PER_ROW, seed=p.seed, labels=rep(y), features=rep(h))
    if picks is None:
        return save_grid(fake, Path(path), nrow=PER_ROW)
    real = np.asarray(images[picks])
    rows = np.concatenate([real[:, None], fake.reshape(n_rows, PER_ROW, *fake.shape[1:])], axis=1)
    return save_grid(rows.reshape(-1, *fake.shape[1:]), Path(path), nrow=PER_ROW + 1)


def load_image(path: Path, channels: int, resolution: int) -> np.ndarray:
    """A user's image file → uint8 C×R×R, prepared as image_folder prepares images (centre square, resize)."""
    from PIL import UnidentifiedImageError

    from ganops.data.folder import decode_image

    path = Path(path)
    if not path.is_file():
        raise SampleError(f"--instance {path}: no such file")
    try:
        return decode_image(path, resolution, channels)
    except (UnidentifiedImageError, OSError) as e:
        raise SampleError(f"--instance {path}: not a readable image ({e})") from e


def embed_instance(image: np.ndarray, p: Params, root: Path) -> np.ndarray:
    """h of one uint8 C×R×R image, from the same encoder (and preprocessing) as the dataset's features."""
    import torch

    from ganops.data import store
    from ganops.embed import embed_images, extract
    from ganops.embed.pixels import PixelEncoder, mean_image

    emb_dir = A.embeddings_dir(root, p)
    if p.embed.encoder == "pixels":
        encoder = PixelEncoder(mean_image(store.load_images(A.dataset_dir(root, p))))
        return extract(encoder, image[None], torch.device("cpu"))[0]
    return embed_images(emb_dir / "encoder.pt", image[None])[0]


def sample(p: Params, root: Path, n: int, seed: int, instance: Path | None = None,
           label: int | None = None) -> np.ndarray:
    """``n`` samples from the trained generator of ``p`` (its EMA weights when kept)."""
    from ganops.train import generate, load_weights

    weights = load_weights(A.generator_dir(root, p) / "model.pt")
    g = weights["g_config"]
    if instance is not None and not g.get("feat_dim"):
        raise SampleError(f"--instance needs an IC-GAN generator; {A.generator_dir(root, p)} is a "
                          f"{weights['family']} model")
    if label is not None and not g.get("n_classes"):
        raise SampleError(f"--label needs a class-conditional generator (cgan, or icgan with "
                          f"train.class_conditional=true); this is a {weights['family']} model")
    if g.get("n_classes") and label is None:
        raise SampleError(f"this {weights['family']} model is class-conditional: pass --label 0..{g['n_classes'] - 1}")
    if label is not None and not 0 <= label < g["n_classes"]:
        raise SampleError(f"--label {label}: the model knows labels 0..{g['n_classes'] - 1}")
    h = None
    if g.get("feat_dim"):
        if instance is not None:
            h = embed_instance(load_image(instance, g["channels"], g["resolution"]), p, root)
        else:  # no image given: condition on one seeded dataset instance
            features = np.load(A.embeddings_dir(root, p) / "features.npy", mmap_mode="r")
            h = np.array(features[np.random.default_rng(seed).integers(len(features))])
    return generate(weights, n, seed=seed, labels=label, features=h)
