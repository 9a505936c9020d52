"""Samples from a trained generator, conditioned the way its family needs.

- dcgan: noise only.
- cgan (and class-conditional IC-GAN): a label per row.
- IC-GAN: an instance embedding h per row: a dataset instance's features, or a user's own image
  embedded with the pipeline's encoder (what IC-GAN's users ask for: "generate around my image").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops.core import artifacts as A
from ganops.core.errors import UserError
from ganops.core.params import Params


class SampleError(UserError, ValueError):
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
    from ganops.embed.api import embed_as_dataset

    return embed_as_dataset(image[None], p, root)[0]


def _check_upstream(gdir: Path, p: Params, root: Path) -> None:
    """The generator must be the one these parameters describe, conditioned on the embeddings now in
    place: another encoder's features would crash on their size or, worse, silently mean something else."""
    from ganops.stages.common import check_meta

    meta = A.read_meta(gdir, produced_by="train")
    try:
        check_meta(gdir, meta, p, "train", root=root)
    except A.ArtifactError as exc:
        raise SampleError(f"{exc} Then sample again.") from None
    if "embeddings" in meta.get("upstream", {}):
        edir = A.embeddings_dir(root, p)
        emb = A.read_meta(edir, produced_by="embeddings")
        try:       # embeddings made with other parameters: rebuilding them comes before retraining
            check_meta(edir, emb, p, "embeddings", rerun="embeddings", root=root)
        except A.ArtifactError as exc:
            raise SampleError(f"{exc} Then train again (`ganops stage train`) and sample.") from None
        if emb.get("content_hash") != meta["upstream"]["embeddings"]:
            raise SampleError(f"{gdir} was trained on other embeddings than those now in {A.embeddings_dir(root, p)} "
                              f"(embed.encoder={p.embed.encoder}); run `ganops stage train` to train on them, or "
                              "restore the embeddings it was trained on.")


def _registered(p: Params, root: Path, ref: str):
    """The model of a registered version; an IC-GAN's must have been trained on the embeddings now in place."""
    from ganops.models import load_model
    from ganops.tracking import registry
    from ganops.tracking.runs import GENERATOR_TAG

    weights, mv = registry.load_weights(p, root, ref)
    model = load_model(weights, kind="generator")
    want = model.conditions.feat_dim
    if want:
        dim = np.load(A.embeddings_dir(root, p) / "features.npy", mmap_mode="r").shape[1]
        if dim != want:
            raise SampleError(f"--model {ref}: version {mv.version} conditions on {want}-d "
                              f"instance features, {A.embeddings_dir(root, p)} holds {dim}-d ones: set embed.* as "
                              f"when it was trained (generator {mv.tags.get(GENERATOR_TAG, '?')})")
    return model


def sample(p: Params, root: Path, n: int, seed: int, instance: Path | None = None,
           label: int | None = None, model: str | None = None) -> np.ndarray:
    """``n`` samples from the trained generator of ``p`` (its EMA weights when kept), or from a registered
    version (``model``: ``champion`` or a version number)."""
    from ganops.models import load_model

    gdir = A.generator_dir(root, p)
    if model is not None:
        trained = _registered(p, root, model)
    elif not (gdir / "model.pt").exists():
        raise SampleError(f"no {p.train.family} generator for these parameters ({gdir} is empty): train it with "
                          f"`ganops stage train --set train.family={p.train.family}` and the same --set options")
    else:
        trained = load_model(gdir / "model.pt", kind="generator")
        _check_upstream(gdir, p, root)
    c = trained.conditions
    if instance is not None and not c.instance:
        raise SampleError(f"--instance needs an IC-GAN generator; {A.generator_dir(root, p)} is "
                          f"{trained.describe()}")
    if label is not None and not c.label:
        raise SampleError(f"--label needs a class-conditional generator (cgan, or icgan with "
                          f"train.class_conditional=true); this is {trained.describe()}")
    if c.label and label is None and (instance is not None or not c.instance):
        raise SampleError(f"this {trained.family} model is class-conditional: pass --label 0..{c.n_classes - 1}")
    if label is not None and not 0 <= label < c.n_classes:
        raise SampleError(f"--label {label}: the model knows labels 0..{c.n_classes - 1}")
    if instance is not None:
        h = embed_instance(load_image(instance, trained.cfg.channels, trained.cfg.resolution), p, root)
        return trained.generate(n, seed=seed, labels=label, features=h)
    # no image given: sample the model of the data (IC-GAN: an instance drawn per sample)
    features = labels = None
    if c.instance:
        features = np.load(A.embeddings_dir(root, p) / "features.npy", mmap_mode="r")
    if c.label:  # class-conditional IC-GAN: the drawn instances' labels, or instances of --label
        from ganops.data import store

        labels = store.load_labels(A.dataset_dir(root, p))
    try:
        y, h, _ = trained.data_conditions(n, seed, features, labels, label)
    except ValueError as exc:
        raise SampleError(f"--label {label}: {exc}") from None
    return trained.generate(n, seed=seed, labels=y, features=h)
