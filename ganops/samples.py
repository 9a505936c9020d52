"""Samples from a trained generator, conditioned the way its family needs.

- dcgan: noise only.
- cgan (and class-conditional IC-GAN): a label per row.
- IC-GAN: an instance embedding h per row: a dataset instance's features, or a user's own image
  embedded with the pipeline's encoder (what IC-GAN's users ask for: "generate around my image").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops import artifacts as A
from ganops.params import Params


class SampleError(ValueError):
    """A sampling request does not fit the trained model: the message says what the model needs."""


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


def _article(family: str) -> str:
    return f"an {family}" if family[0] in "aeiou" else f"a {family}"


def _check_upstream(gdir: Path, p: Params, root: Path) -> None:
    """The generator must be the one these parameters describe, conditioned on the embeddings now in
    place: another encoder's features would crash on their size or, worse, silently mean something else."""
    from ganops.stages.common import check_meta

    meta = A.read_meta(gdir, produced_by="train")
    try:
        check_meta(gdir, meta, p, "train")
    except A.ArtifactError as exc:
        raise SampleError(f"{exc} Then sample again.") from None
    if "embeddings" in meta.get("upstream", {}):
        emb = A.read_meta(A.embeddings_dir(root, p), produced_by="embeddings")
        if emb.get("content_hash") != meta["upstream"]["embeddings"]:
            raise SampleError(f"{gdir} was trained on other embeddings than those now in {A.embeddings_dir(root, p)} "
                              f"(embed.encoder={p.embed.encoder}); run `ganops stage train` to train on them, or "
                              "restore the embeddings it was trained on.")


def sample(p: Params, root: Path, n: int, seed: int, instance: Path | None = None,
           label: int | None = None) -> np.ndarray:
    """``n`` samples from the trained generator of ``p`` (its EMA weights when kept)."""
    from ganops.train import generate, load_weights

    gdir = A.generator_dir(root, p)
    if not (gdir / "model.pt").exists():
        raise SampleError(f"no {p.train.family} generator for these parameters ({gdir} is empty): train it with "
                          f"`ganops stage train --set train.family={p.train.family}` and the same --set options")
    weights = load_weights(gdir / "model.pt")
    _check_upstream(gdir, p, root)
    g = weights["g_config"]
    if instance is not None and not g.get("feat_dim"):
        raise SampleError(f"--instance needs an IC-GAN generator; {A.generator_dir(root, p)} is a "
                          f"{weights['family']} model")
    if label is not None and not g.get("n_classes"):
        raise SampleError(f"--label needs a class-conditional generator (cgan, or icgan with "
                          f"train.class_conditional=true); this is {_article(weights['family'])} model")
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
