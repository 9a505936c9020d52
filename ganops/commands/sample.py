"""Samples from a trained generator, conditioned the way its family needs.

- dcgan: noise only.
- cgan (and class-conditional IC-GAN): a label per row.
- IC-GAN: an instance embedding h per row: a dataset instance's features, or a user's own image
  embedded with the pipeline's encoder (what IC-GAN's users ask for: "generate around my image").
- IC-GAN on another dataset's instances (``sample_instances``): every image of a source the pipeline
  reads (a torchvision source, ``digits``, an image folder), embedded with the encoder G was trained
  with: the paper's transfer by swapping the conditioning instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.core import artifacts as A
from ganops.core.errors import UserError
from ganops.core.params import Params
from ganops.data.raw import RawImages


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
        from ganops.data import store

        dim = store.load_features(A.embeddings_dir(root, p)).shape[1]
        if dim != want:
            raise SampleError(f"--model {ref}: version {mv.version} conditions on {want}-d "
                              f"instance features, {A.embeddings_dir(root, p)} holds {dim}-d ones: set embed.* as "
                              f"when it was trained (generator {mv.tags.get(GENERATOR_TAG, '?')})")
    return model


def _trained(p: Params, root: Path, model: str | None):
    """The generator of ``p`` (checked against the artifacts it was made from), or a registered version."""
    from ganops.models import load_model

    gdir = A.generator_dir(root, p)
    if model is not None:
        return _registered(p, root, model)
    if not (gdir / "model.pt").exists():
        raise SampleError(f"no {p.train.family} generator for these parameters ({gdir} is empty): train it with "
                          f"`ganops stage train --set train.family={p.train.family}` and the same --set options")
    trained = load_model(gdir / "model.pt", kind="generator")
    _check_upstream(gdir, p, root)
    return trained


def sample(p: Params, root: Path, n: int, seed: int, instance: Path | None = None,
           label: int | None = None, model: str | None = None) -> np.ndarray:
    """``n`` samples from the trained generator of ``p`` (its EMA weights when kept), or from a registered
    version (``model``: ``champion`` or a version number)."""
    trained = _trained(p, root, model)
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
    from ganops.data import store

    features = labels = None
    if c.instance:
        features = store.load_features(A.embeddings_dir(root, p))
    if c.label:  # class-conditional IC-GAN: the drawn instances' labels, or instances of --label
        labels = store.load_labels(A.dataset_dir(root, p))
    try:
        y, h, _ = trained.data_conditions(n, seed, features, labels, label)
    except ValueError as exc:
        raise SampleError(f"--label {label}: {exc}") from None
    return trained.generate(n, seed=seed, labels=y, features=h)


@dataclass(frozen=True)
class InstanceSamples:
    """An IC-GAN's samples conditioned on every instance of a dataset, in the dataset's order."""
    instances: np.ndarray     # uint8 N×C×H×W: the instances as G's frame (its side and channels)
    samples: np.ndarray       # uint8 (N·per_instance)×C×H×W: instance i's samples are rows i·k … i·k + k − 1
    labels: np.ndarray        # int64 N: the instances' classes in the training's numbering (by name), -1: none
    sources: list[str]        # where each instance came from (a path under the folder, or 'digits/all/17')
    per_instance: int


def load_instances(spec: str, p: Params, root: Path, channels: int, resolution: int,
                   data_root: str | None = None, limit: int | None = None, skip_corrupt: bool = False,
                   download: bool | None = None) -> RawImages:
    """The images of ``spec`` (a source name of data.dataset, or a folder of images: an image_folder),
    prepared as the dataset stage prepares them, at G's side and channels. A folder is read in its sorted
    paths' order; ``data_root`` is a downloadable source's cache (default: data.root when ``spec`` is the
    training dataset, else data/raw); ``limit`` keeps the first ``limit`` images; ``skip_corrupt``: a folder's
    unreadable files are skipped (logged) instead of refused; ``download``: fetch a named source's missing files
    (default data.download)."""
    from ganops.core.params import DATASETS, DataParams
    from ganops.data.sources import load_source
    from ganops.data.store import frame

    folder = Path(spec).expanduser()
    if spec in DATASETS and spec != "image_folder":
        name = spec
        where = data_root or (p.data.root if p.data.dataset == spec else DataParams().root)
    elif folder.is_dir():
        name, where = "image_folder", str(folder)
    else:
        sources = ", ".join(d for d in DATASETS if d != "image_folder")
        where = folder.resolve()
        what = "a file, not a folder" if where.is_file() else "no such folder"
        raise SampleError(f"--instances {spec}: neither a dataset ({sources}) nor a folder of images ({where}: "
                          f"{what})")
    q = DataParams(dataset=name, root=where, resolution=resolution, channels=channels,
                   download=p.data.download if download is None else download,
                   skip_corrupt=skip_corrupt)
    try:
        raw = load_source(q, root)
    except UserError as exc:    # the source speaks of data.* keys; here they are these flags
        said = str(exc).replace("set data.skip_corrupt=true", "pass --skip-corrupt").replace(
            "set data.root", "set --instances-root")
        raise SampleError(f"--instances {spec}: {said}") from None
    if not len(raw.images):
        raise SampleError(f"--instances {spec}: no images")
    keep = slice(None, limit)
    images = frame(raw.images[keep], resolution, channels)     # as the dataset stage holds its images
    return RawImages(images, raw.labels[keep], raw.splits[keep], raw.sources[keep], raw.class_names, raw.report)


def sample_instances(p: Params, root: Path, spec: str, per_instance: int = 1, seed: int = 0,
                     label: int | None = None, model: str | None = None, data_root: str | None = None,
                     limit: int | None = None, skip_corrupt: bool = False,
                     download: bool | None = None) -> InstanceSamples:
    """``per_instance`` samples of the IC-GAN of ``p`` (or a registered version) for each instance of
    ``spec`` (see ``load_instances``), embedded with the encoder G was trained with. A class-conditional
    IC-GAN takes each instance's own label, or ``label`` for all (the class swap)."""
    if per_instance < 1:
        raise SampleError(f"--per-instance {per_instance}: the samples per instance must be ≥ 1")
    trained = _trained(p, root, model)
    c = trained.conditions
    if not c.instance:
        raise SampleError(f"--instances needs an IC-GAN generator; this is {trained.describe()}")
    if label is not None and not c.label:
        raise SampleError(f"--label needs a class-conditional IC-GAN (train.class_conditional=true); this is "
                          f"{trained.describe()}")
    if label is not None and not 0 <= label < c.n_classes:
        raise SampleError(f"--label {label}: the model knows labels 0..{c.n_classes - 1}")
    raw = load_instances(spec, p, root, trained.cfg.channels, trained.cfg.resolution, data_root, limit,
                         skip_corrupt, download)
    own = _in_training_labels(raw, spec, p, root)
    labels = None
    if c.label:
        labels = np.full(len(raw.images), label) if label is not None else own
        if label is None and not ((own >= 0) & (own < c.n_classes)).all():
            raise SampleError(f"--instances {spec}: this IC-GAN is class-conditional and not every instance has "
                              "a class of its training data (matched by class name): pass --label to give them one")
    from ganops.embed.api import embed_as_dataset

    h = embed_as_dataset(raw.images, p, root)
    rep = lambda a: None if a is None else np.repeat(a, per_instance, axis=0)  # noqa: E731
    samples = trained.generate(len(h) * per_instance, seed=seed, labels=rep(labels), features=rep(h))
    return InstanceSamples(raw.images, samples, own, list(raw.sources), per_instance)


def _in_training_labels(raw: RawImages, spec: str, p: Params, root: Path) -> np.ndarray:
    """The instances' labels as the training dataset numbers its classes, matched by class name (a folder's
    class 7/ is the training's class "7" whatever its position); -1 where there is no such class. Without
    names on both sides, only the training dataset itself keeps its labels."""
    from ganops.data.store import SUMMARY, load_summary

    ds = A.dataset_dir(root, p)
    names = load_summary(ds).get("class_names") if (ds / SUMMARY).is_file() else None
    known = raw.labels >= 0
    if names and raw.class_names:
        ids = {name: i for i, name in enumerate(names)}
        table = np.array([ids.get(name, -1) for name in raw.class_names], np.int64)
        safe = np.clip(raw.labels, 0, len(table) - 1)
        return np.where(known & (raw.labels < len(table)), table[safe], -1)
    return raw.labels.copy() if spec == p.data.dataset else np.full(len(raw.labels), -1, np.int64)
