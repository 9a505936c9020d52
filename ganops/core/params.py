"""Typed parameters: the one schema of params.yaml, the CLI's ``--set`` and Dagster's run config.

A wrong value or an unknown key fails here, before any work, with a message that names the key,
the value and what is allowed.
"""

from __future__ import annotations

import difflib
import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ganops.catalog.augments import AUGMENTS, check_policy
from ganops.catalog.encoders import ENCODER_SPECS, ENCODERS
from ganops.catalog.families import FAMILY_NAMES, RESOLUTIONS, TRANSFER_NAMES
from ganops.catalog.losses import LOSS_NAMES, LOSSES
from ganops.core.errors import UserError

DATASETS = ("digits", "mnist", "fashion_mnist", "usps", "svhn", "cifar10", "celeba", "image_folder")
DEVICES = ("auto", "cpu", "cuda", "mps")
DOMAINS = ("source", "target")   # the two sides of a domain transfer (transfer.source, transfer.target)


class ParamsError(UserError, ValueError):
    """A parameter is wrong: the message names the key, the value and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    # Keys that were renamed: the old spelling still works, with a warning that names the new one.
    RENAMED: ClassVar[dict[str, str]] = {}
    SECTION: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        if isinstance(v, str) and "kind" in cls.model_fields:   # a section with a kind takes it alone: `augment: ada`
            return {"kind": v}
        if not isinstance(v, dict):
            return v
        v = dict(v)
        for old, new in cls.RENAMED.items():
            if old in v:
                _renamed_read(f"{cls.SECTION}.{old}", f"{cls.SECTION}.{new}", both=new in v)
                v[new] = v.pop(old)
        # A subsection given in part keeps its field's own defaults for the rest: `--set
        # transfer.target.limit=5` without a params file must not turn the target (mnist) into the class
        # default (digits), nor `transfer.source_evaluator.lr` reset its 30 epochs to 8.
        for name, field in cls.model_fields.items():
            default = field.default
            if isinstance(default, BaseModel) and isinstance(v.get(name), dict):
                v[name] = {**default.model_dump(exclude_unset=True), **v[name]}
        return v

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, v: Any, info: Any) -> Any:
        # pydantic's lax mode reads `true` as 1: `--set neighbors.k=true` must be an error, not k=1
        field = cls.model_fields[info.field_name]
        if isinstance(v, bool) and field.annotation in (int, float, int | None, float | None):
            raise ValueError(f"a number, not the boolean {str(v).lower()}")
        return v


class DataParams(_Section):
    dataset: Literal[DATASETS] = Field("digits", description="source name")
    root: str = Field("data/raw", description="cache of downloadable datasets, or the image folder")
    resolution: int = Field(16, ge=8, le=1024, description="square side in pixels after resizing (16 keeps every "
                            "pixel of the bundled 8×8 digits; 32 suits MNIST and CIFAR-10, 64 or more photos)")
    channels: Literal[0, 1, 3] = Field(0, description="1 or 3 to convert; 0 keeps the source's")
    split: Literal["available", "train", "test", "all"] = Field(
        "available", description="available: every split whose files are present (all when downloading)"
    )
    limit: int | None = Field(None, ge=1, description="keep this many images: a seeded sample (seed) stratified by "
                              "label, each class in proportion to its share (uniform when unlabelled), in their "
                              "original order")
    download: bool = Field(True, description="download missing files when the network allows")
    skip_corrupt: bool = Field(False, description="image_folder: skip unreadable files (reported)")
    grid_size: int = Field(64, ge=1, le=1024, description="images in the sample grid PNG")
    holdout: float = Field(0.1, ge=0, lt=1, description="share of images held out of all training (seeded, "
                           "stratified by label): the evaluation's unseen real images")
    shard_rows: int = Field(100_000, ge=1, description="images per shard of the dataset artifact: a dataset this "
                            "size or smaller is one images.npy; a larger one the folder images/ of shards, each "
                            "written, resumed and read on its own")


class GeneratorDataParams(DataParams):
    """data.*: the generator families' dataset. Their networks take only the sides in RESOLUTIONS, refused here
    rather than after the dataset, embeddings and neighborhoods were built at a side training cannot use (the
    transfer domains keep any side: CycleGAN takes MNIST's 28, DTN refuses what its networks cannot build)."""
    resolution: Literal[RESOLUTIONS] = Field(16, description=DataParams.model_fields["resolution"].description)


class EmbedParams(_Section):
    encoder: Literal[ENCODERS] = Field(
        "simclr", description="; ".join(f"{s.name}: {s.about}" for s in ENCODER_SPECS.values()))
    dim: int = Field(128, ge=2, le=4096, description="feature size of trained encoders")
    epochs: int = Field(10, ge=1, description="training epochs of trained encoders (SimCLR on MNIST levels off by ~12)")
    min_steps: int = Field(200, ge=0, description="trained encoders make at least this many updates, in whole "
                           "epochs: a small dataset's epoch is a handful of batches (0: embed.epochs alone)")
    batch_size: int = Field(64, ge=2, description="training batch size (small batches, more updates: SimCLR's "
                            "purity@10 on digits 0.966 at 64 against 0.942 at 256, in the same time)")
    lr: float = Field(2e-3, gt=0, description="learning rate of trained encoders")
    temperature: float = Field(0.2, gt=0, le=10, description="SimCLR NT-Xent temperature")
    extract_batch_size: int = Field(512, ge=1, description="batch size of feature extraction")
    image_size: int = Field(224, ge=32, description="input side for pretrained encoders (resnet50, swav)")


class NeighborsParams(_Section):
    k: int = Field(10, ge=1, description="neighbors per instance, the instance itself excluded")
    index: Literal["exact", "ivf", "ivfpq", "hnsw", "factory"] = Field(
        "exact", description="exact; ivf (IVF-Flat); ivfpq (IVF with product-quantised codes, re-ranked exactly: the "
        "index for millions); hnsw; factory (neighbors.index_factory, FAISS's own index description)")
    query_batch: int = Field(4096, ge=1, description="queries per FAISS search call (bounds memory)")
    nlist: int = Field(0, ge=0, description="ivf, ivfpq: number of lists; 0 picks 4·sqrt(N) (ivf), sqrt(N) (ivfpq)")
    nprobe: int = Field(16, ge=1, description="ivf, ivfpq, factory with IVF: lists visited per query")
    train_per_list: int = Field(0, ge=0, le=256, description="ivf, ivfpq: k-means training points per list, a seeded "
                                "sample; 0 picks 256 for ivf (recall at a million 1.0 against 0.886 at 64) and 64 "
                                "for ivfpq (its build 4× faster; recall 0.997 with refine)")

    pq_m: int = Field(0, ge=0, description="ivfpq: sub-quantisers per vector (divides d); 0 picks d/4")
    pq_bits: Literal[4, 8] = Field(4, description="ivfpq: bits per sub-quantiser code: 4 (FAISS's SIMD fast scan) or 8")
    refine: int = Field(10, ge=1, description="ivfpq, factory: candidates per neighbor re-ranked by the similarity "
                        "of the vectors' float16 copy (ivfpq; FAISS's k_factor); 1: the quantised similarity's order")
    index_factory: str = Field("", description="factory: a FAISS index_factory string, e.g. IVF4096,PQ32x4fs,RFlat "
                               "(inner-product metric; nprobe and refine apply where the index has them)")
    hnsw_m: int = Field(32, ge=4, description="hnsw: links per node")
    ef_search: int = Field(128, ge=1, description="hnsw: search depth")
    recall_sample: int = Field(1000, ge=1, description="approximate index: queries checked against exact")
    use_gpu: bool = Field(True, description="use faiss on GPU when one and faiss-gpu are present")
    panel_instances: int = Field(8, ge=1, le=64, description="rows of the neighbor panel PNG")

    @field_validator("train_per_list")
    @classmethod
    def _enough_per_list(cls, v: int) -> int:
        if 0 < v < 39:
            raise ValueError("FAISS's k-means needs at least 39 points per list: 39..256, or 0 for the index's default")
        return v

    @model_validator(mode="after")
    def _factory_string(self) -> NeighborsParams:
        if self.index == "factory" and not self.index_factory.strip():
            raise ValueError("neighbors.index=factory needs neighbors.index_factory: a FAISS index_factory string "
                             "such as IVF4096,PQ32x4fs,RFlat")
        if self.index_factory and self.index != "factory":
            raise ValueError(f"neighbors.index_factory is read only with neighbors.index=factory (now "
                             f"{self.index}): set neighbors.index=factory, or leave index_factory empty")
        return self


def _policy_field(default: str):
    """DiffAugment's transforms, for the generators' and the translators' augment sections alike."""
    return Field(default, description="kind=diffaugment: its transforms, a comma-separated subset of color, "
                 "translation, cutout")


def _translation_field(default: float):
    """DiffAugment's largest shift, for both augment sections (their defaults differ: README, Small datasets)."""
    return Field(default, gt=0, le=0.5, allow_inf_nan=False, description="kind=diffaugment: the largest shift of its "
                 "translation, as a share of the image's side")


def _cutout_field(default: float):
    """DiffAugment's cutout: the side of its square, for both augment sections (their defaults differ)."""
    return Field(default, gt=0, le=1, allow_inf_nan=False, description="kind=diffaugment: the side of the square "
                 "its cutout blanks, as a share of the image's side (the paper's 1/2)")


class AugmentParams(_Section):
    """What the discriminator sees of every image, real and fake (ganops.models.augment)."""
    kind: Literal[tuple(AUGMENTS)] = Field("diffaugment", description="; ".join(f"{k}: {v}" for k, v in AUGMENTS.items()))
    policy: str = _policy_field("translation")
    translation: float = _translation_field(0.0625)
    cutout: float = _cutout_field(0.25)
    ada_target: float = Field(0.6, gt=0, lt=1, allow_inf_nan=False,
                              description="kind=ada: the r_t = E[sign(D(real))] it steers p to")
    ada_kimg: float = Field(100.0, gt=0, allow_inf_nan=False, description="kind=ada: thousands of images over which p "
                            "can go from 0 to 1 (stylegan2-ada: 500 for long runs)")
    ada_interval: int = Field(4, ge=1, description="kind=ada: D updates between adjustments of p")

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return check_policy(v)


class TransferAugmentParams(_Section):
    """What the translators' discriminators see: DiffAugment or nothing. ADA steers by the sign of one real/fake
    logit, and their discriminators give least-squares patches (CycleGAN) or three classes (DTN)."""
    kind: Literal["none", "diffaugment"] = Field("none", description="none or diffaugment (ADA needs a real/fake logit "
                                                 "these discriminators do not give)")
    policy: str = _policy_field("color,translation,cutout")
    translation: float = _translation_field(0.125)
    cutout: float = _cutout_field(0.5)

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str) -> str:
        return check_policy(v)


class TrainParams(_Section):
    RENAMED: ClassVar[dict[str, str]] = {"n_samples": "grid_size"}
    SECTION: ClassVar[str] = "train"
    family: Literal[FAMILY_NAMES] = Field("icgan", description="the GAN family (ganops.catalog.families)")
    class_conditional: bool = Field(False, description="icgan: also condition on the sampled neighbor's label")
    class_swap: float = Field(0.0, ge=0, le=1, description="class-conditional icgan: share of draws whose real image "
                              "and label are a nearest neighbor of the instance among the images of a random class, "
                              "so that the label decides the class and the instance the rest (the class swap)")
    loss: Literal[LOSS_NAMES] = Field("hinge", description=", ".join(f"{k}: {v.about}" for k, v in LOSSES.items()))
    steps: int = Field(600, ge=1, description="generator updates")
    batch_size: int = Field(64, ge=2)
    z_dim: int = Field(100, ge=1, description="noise size")
    g_filters: int = Field(64, ge=4, description="base width of G")
    d_filters: int = Field(64, ge=4, description="base width of D")
    lr_g: float = Field(5e-4, gt=0)
    lr_d: float = Field(5e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    d_steps: int = Field(2, ge=1, description="D updates per G update")
    spectral_norm: bool = Field(False, description="spectral norm on D's layers")
    lecam: float = Field(0.0, ge=0, allow_inf_nan=False, description="weight of LeCam's regulariser of D (Tseng et "
                         "al. 2021): D's logits on real images held near the moving average of its logits on fakes "
                         "and back, for limited data (0: off)")
    lecam_decay: float = Field(0.99, gt=0, lt=1, description="decay of LeCam's moving averages of D's logits")
    mode_seeking: float = Field(0.02, ge=0, allow_inf_nan=False, description="icgan and self-conditioned dcgan: weight of the mode-seeking term "
                                "(Mao et al. 2019, MSGAN): G's batch pairs samples of one condition and is rewarded for "
                                "images that differ as their noise does (0: off)")
    self_condition: int = Field(20, description="dcgan: k-means clusters of the training images that condition "
                                "G and D, G drawing one from its noise at the clusters' frequencies (Liu et al. 2020, "
                                "self-conditioned GAN; 0: off)")
    augment: AugmentParams = Field(AugmentParams(), description="what D sees of real and fake images: augment.* keys "
                                   "(or the kind alone: train.augment=ada)")
    ema: bool = Field(True, description="keep an exponential moving average of G's weights")
    ema_decay: float = Field(0.999, gt=0, lt=1)
    ema_start: int = Field(0, ge=0, description="steps before the EMA starts averaging (it copies G until then)")
    ema_rampup: float = Field(0.077, gt=0, le=1, description="the average's half-life as a share of the steps it "
                              "has averaged so far, until ema_decay's half-life caps it (stylegan2-ada's ema_rampup): "
                              "lower follows G more closely, higher averages longer")
    standing_stats: int = Field(16, ge=0, description="batches of the EMA G's own samples over which its batch-norm "
                                "statistics are estimated at the end of training (standing statistics, Brock et al. "
                                "2019); 0: it keeps the running statistics of the live G, copied step by step")
    h_dim: int = Field(64, ge=1, description="size of G's learned embedding of the condition (label, instance h)")
    grid_size: int = Field(64, ge=1, le=1024, description="images in each sample grid (the progress grids and "
                           "samples.png)")
    checkpoint_every: int = Field(200, ge=1, description="steps between atomic checkpoints")
    log_every: int = Field(50, ge=1, description="steps between loss logs")
    sample_every: int = Field(200, ge=1, description="steps between sample grids")
    warm_start: bool = Field(False, description="start from the registered champion's weights (same family, "
                             "dataset and architecture) instead of a fresh initialisation")

    @model_validator(mode="after")
    def _clusters(self) -> TrainParams:
        if self.self_condition < 0 or self.self_condition == 1:
            raise ValueError(f"train.self_condition={self.self_condition}: the number of clusters is 0 (off) or 2 or "
                             "more (one cluster conditions nothing)")
        return self

    @model_validator(mode="after")
    def _swap_needs_labels(self) -> TrainParams:
        # a swapped draw's real image is of another class than the instance: only a label can say so
        if self.class_swap and not self.class_conditional:
            raise ValueError(f"train.class_swap={self.class_swap} needs train.class_conditional=true (the label "
                             "is what tells G and D the class a swapped pair shows)")
        return self


EVALUATORS = ("auto", "classifier", "simclr")


class EvaluatorParams(_Section):
    kind: Literal[EVALUATORS] = Field("auto", description="network whose features score generators: auto picks "
                                      "classifier when the dataset has labels, simclr otherwise")
    dim: int = Field(128, ge=2, le=4096, description="feature size")
    epochs: int = Field(8, ge=1, description="training epochs")
    min_steps: int = Field(200, ge=0, description="at least this many updates, in whole epochs: a judge of a small "
                           "dataset needs them (1,000 MNIST images: 32 updates read held-out images at 0.61, 160 at 0.96)")
    batch_size: int = Field(256, ge=2)
    lr: float = Field(2e-3, gt=0)
    augment: Literal["mild", "cross_domain"] = Field(
        "mild", description="classifier training views: mild, or cross_domain (also zoomed out, stronger warps) for "
        "a classifier that must read another domain's images (the transfer's f and judge)")


class SourceClassifierParams(_Section):
    """DTN's f: a classifier of the source's labels, frozen while the translator trains. It must also read
    the target's images (f(G(x)) against f(x)), so its views are cross_domain by default."""
    dim: int = Field(128, ge=2, le=4096, description="feature size (the space L_CONST compares in)")
    epochs: int = Field(30, ge=1, description="training epochs")
    batch_size: int = Field(256, ge=2)
    lr: float = Field(2e-3, gt=0)
    augment: Literal["mild", "cross_domain"] = Field(
        "cross_domain", description="training views: cross_domain (also zoomed out, stronger warps, so f reads "
        "the other domain's images too) or mild")

    def as_evaluator(self) -> EvaluatorParams:
        """The same network and training as an evaluator classifier (one trainer for both)."""
        return EvaluatorParams(kind="classifier", min_steps=0, **self.model_dump())


class TransferParams(_Section):
    RENAMED: ClassVar[dict[str, str]] = {"n_samples": "grid_size"}
    SECTION: ClassVar[str] = "transfer"
    """Unpaired translation from a source to a target domain (CycleGAN, DTN): two datasets, each with its
    own data parameters, built by the dataset stage; the loop keys mean what they mean in train."""
    family: Literal[TRANSFER_NAMES] = Field("dtn", description="cyclegan (Zhu et al. 2017) or dtn (Taigman et "
                                            "al. 2016)")
    source: DataParams = Field(DataParams(dataset="digits", resolution=32), description="the source domain's data.* keys")
    target: DataParams = Field(DataParams(dataset="mnist", resolution=32), description="the target domain's data.* keys")
    # Each domain's evaluator judges translations into it, as the papers score them (plain classifiers, mild
    # views). DTN's f is not an evaluator but part of its training: a network of its own (source_classifier),
    # as IC-GAN's encoder is not the generators' evaluator.
    source_evaluator: EvaluatorParams = Field(
        EvaluatorParams(epochs=30), description="the source domain's evaluator, the judge of translations back to "
        "the source (CycleGAN's label check of B→A): evaluator.* keys")
    target_evaluator: EvaluatorParams = Field(
        EvaluatorParams(), description="the target domain's evaluator, the judge of translations (transfer "
        "accuracy, FID/KID space): evaluator.* keys")
    source_classifier: SourceClassifierParams = Field(
        SourceClassifierParams(), description="dtn: f, the frozen classifier of the source's labels that L_CONST "
        "compares in (stage classifier --domain source)")
    steps: int = Field(2000, ge=1, description="training steps (one G and one D update each)")
    batch_size: int = Field(64, ge=1)
    g_filters: int = Field(64, ge=4, description="base width of the generators (CycleGAN ngf; DTN's decoder g)")
    d_filters: int = Field(64, ge=4, description="base width of the discriminators (CycleGAN ndf)")
    n_blocks: int = Field(6, ge=1, description="cyclegan: ResNet blocks in each generator (paper: 6 at 128 px, "
                          "9 at 256)")
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    decay_start: float = Field(0.5, ge=0, le=1, description="share of the steps at the full learning rate, then "
                               "linear decay to 0 (CycleGAN: 100 + 100 epochs)")
    cycle_weight: float = Field(10.0, ge=0, description="cyclegan: λ of the L1 cycle loss")
    identity_weight: float = Field(0.5, ge=0, description="cyclegan: identity loss weight, times λ")
    pool_size: int = Field(50, ge=0, description="cyclegan: fakes kept to show the discriminators (0: none)")
    const_weight: float = Field(15.0, ge=0, description="dtn: α of L_CONST, f(x) against f(G(x)) (paper, digits)")
    tid_weight: float = Field(15.0, ge=0, description="dtn: β of L_TID, G(x) against x on the target (paper, "
                              "digits)")
    tv_weight: float = Field(0.0, ge=0, description="dtn: γ of the total-variation loss (paper, digits: 0)")
    augment: TransferAugmentParams = Field(TransferAugmentParams(), description="what the discriminators see of real "
                                           "and translated images: augment.* keys")
    # Not in either paper, but a DTN's per-class modes move from step to step: the average is the steadier
    # translator (as train.ema is the steadier sampler)
    ema: bool = Field(True, description="translate with an EMA of the generators' weights (neither paper does)")
    ema_decay: float = Field(0.999, gt=0, lt=1)
    ema_start: int = Field(0, ge=0)
    ema_rampup: float = Field(0.077, gt=0, le=1, description="the average's half-life as a share of the steps it "
                              "has averaged so far, until ema_decay's caps it (as train.ema_rampup)")
    grid_size: int = Field(16, ge=1, le=256, description="source images in each progress grid")
    checkpoint_every: int = Field(200, ge=1)
    log_every: int = Field(50, ge=1)
    sample_every: int = Field(200, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _split_evaluator(cls, v: Any) -> Any:
        if isinstance(v, dict) and "evaluator" in v:
            raise ValueError("transfer.evaluator is now three sections: transfer.source_classifier (DTN's f, "
                             "cross_domain views), transfer.target_evaluator (the judge of translations) and "
                             "transfer.source_evaluator (the judge of CycleGAN's translations back); move its keys "
                             "to the one you meant")
        if (isinstance(v, dict) and isinstance(v.get("source_evaluator"), dict) and "source_classifier" not in v
                and v.get("family", "dtn") == "dtn"):
            # a file from before f had keys of its own: its source_evaluator keys no longer reach f
            logging.getLogger("ganops.params").warning(
                "transfer.source_evaluator no longer sets DTN's f: f's keys are transfer.source_classifier.* "
                "(defaults: cross_domain views, 30 epochs); transfer.source_evaluator only judges CycleGAN's "
                "translations back to the source")
        return v

    @model_validator(mode="after")
    def _one_frame(self) -> TransferParams:
        # caught here, not after two datasets and evaluators have been built for nothing
        if self.source.resolution != self.target.resolution:
            raise ValueError(f"transfer.source.resolution={self.source.resolution} and transfer.target.resolution="
                             f"{self.target.resolution} differ; the translators map one square frame to the same "
                             "frame: set both to one side")
        return self


class EvaluateParams(_Section):
    seed: int = Field(0, ge=0, description="seed of every generated sample and subset of the evaluation")
    n_samples: int = Field(2000, ge=10, description="generated images scored against the real training images")
    batch_size: int = Field(500, ge=1, description="images per generator / feature-extractor batch")
    kid_subsets: int = Field(100, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    pr_k: int = Field(3, ge=1, description="k of the k-NN balls of precision and recall")
    dc_k: int = Field(5, ge=1, description="k of the k-NN balls of density and coverage")
    per_label: int = Field(100, ge=1, description="conditional families: samples per requested label")
    instances: int = Field(32, ge=1, description="IC-GAN: instances (seen, and held out) scored one by one")
    per_instance: int = Field(16, ge=2, description="IC-GAN: samples per instance")
    ppl_pairs: int = Field(500, ge=2, description="perceptual path length: latent pairs")
    ppl_epsilon: float = Field(1e-2, gt=0, le=1, description="perceptual path length: step along the path")
    near_copy_quantile: float = Field(0.01, gt=0, lt=1, description="a sample nearer its nearest training image "
                                      "than this quantile of held-out real images' distances is a near-copy")
    probe: bool = Field(True, description="linear probe on the discriminator's features (DCGAN's claim)")
    inception: Literal["auto", "off"] = Field("auto", description="auto: also the Inception FID/KID/IS when the "
                                              "weights are in the torch hub cache")
    promote: bool = Field(True, description="move the registry's `champion` alias to a version that beats it")

    @field_validator("inception", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false (and `on` as true): take them as the words they were
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v
    min_diversity: float = Field(0.2, ge=0, description="promotion gate: samples whose spread in the evaluator's "
                                 "space is below this share of the real images' count as collapsed")


class OnInstancesParams(_Section):
    """on_instances.*: the dataset whose instances an IC-GAN is conditioned on in the `evaluate_on_instances`
    stage (IC-GAN's transfer: Casanova et al. 2021 condition an ImageNet model on COCO's instances)."""
    dataset: str = Field("mnist", min_length=1, description="a source name (digits, mnist, …; not image_folder) or "
                         "a folder of images, read in its sorted paths' order")
    root: str = Field("data/raw", min_length=1, description="download cache of a named source")
    download: bool = Field(True, description="download a named source's missing files when the network allows")
    limit: int | None = Field(2000, ge=1, description="the first this many instances; null: all of them")
    per_instance: int = Field(1, ge=1, description="samples drawn for each instance")
    skip_corrupt: bool = Field(False, description="a folder's unreadable files are skipped (reported), not refused")

    @field_validator("dataset")
    @classmethod
    def _a_source_or_folder(cls, v: str) -> str:
        if v == "image_folder":
            raise ValueError("name the folder itself (on_instances.dataset=/path/to/images), not image_folder")
        return v


class TrackingParams(_Section):
    enabled: bool = True
    uri: str = Field("", description="MLflow tracking URI; empty means sqlite:///<project>/mlflow.db")
    experiment: str = Field("ganops", min_length=1)
    ui_url: str = Field("http://localhost:5000", description="where `make mlflow-ui` serves a local store; "
                                                            "run links in Dagster point there")


class DistributedParams(_Section):
    """How many processes train, where, and how they talk (``ganops.train.distributed``): outside every
    artifact's identity (a batch size is the global batch at any world size), so one experiment runs on a
    laptop, a GPU box or a cluster by changing this section alone."""
    SECTION: ClassVar[str] = "distributed"
    nproc_per_node: int = Field(1, ge=1, description="processes per node (one per GPU); > 1 launches torchrun")
    nnodes: int = Field(1, ge=1, description="nodes; > 1 needs rdzv_endpoint and the same command on every node")
    rdzv_endpoint: str = Field("", description="host:port where the nodes meet (torchrun's c10d rendezvous); "
                               "empty on one node")
    rdzv_id: str = Field("ganops", min_length=1, description="names one training among others at the endpoint")

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if v and not (sep and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("host:port of one node, e.g. node0.example:29400")
        return v
    backend: Literal["auto", "nccl", "gloo"] = Field("auto", description="auto: NCCL on CUDA, gloo on CPU")
    timeout_s: float = Field(300.0, gt=0, description="a collective waiting longer than this fails (a lost rank)")
    sync_batchnorm: bool = Field(False, description="CUDA: batch-norm statistics over the global batch "
                                 "(SyncBatchNorm) instead of each rank's share")
    data_workers: int = Field(4, ge=0, description="processes decoding an image folder in the dataset stage (a "
                              "torch DataLoader's workers); 0 decodes in the stage's own process")


class Params(_Section):
    seed: int = Field(0, ge=0)
    device: Literal[DEVICES] = "auto"
    data: GeneratorDataParams = GeneratorDataParams()
    embed: EmbedParams = EmbedParams()
    neighbors: NeighborsParams = NeighborsParams()
    train: TrainParams = TrainParams()
    transfer: TransferParams = TransferParams()
    evaluator: EvaluatorParams = EvaluatorParams()
    evaluate: EvaluateParams = EvaluateParams()
    on_instances: OnInstancesParams = OnInstancesParams()
    tracking: TrackingParams = TrackingParams()
    distributed: DistributedParams = DistributedParams()
    _role: str | None = PrivateAttr(None)
    _overrides: tuple[str, ...] = PrivateAttr(())   # the user's --set items, for the commands errors suggest

    @field_validator("data", "embed", "neighbors", "train", "transfer", "evaluator", "evaluate", "on_instances",
                     "tracking", "distributed", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any) -> Any:
        return {} if v is None else v

    def flat(self) -> dict[str, Any]:
        """Dotted keys → values, as MLflow params and DVC params name them."""
        return _flatten(self.model_dump())

    def section(self, *names: str) -> dict[str, Any]:
        dump = self.model_dump()
        return {n: dump[n] for n in names}

    def domain(self, role: str) -> Params:
        """These parameters with ``data`` replaced by ``transfer.<role>`` and ``evaluator`` by
        ``transfer.<role>_evaluator``: what the dataset and evaluator stages build for one side of a domain transfer
        (their artifacts live under data/domains/<role>)."""
        if role not in DOMAINS:
            raise ParamsError(f"domain {role!r} is not allowed; expected one of {', '.join(DOMAINS)}")
        q = self.model_copy(update={"data": getattr(self.transfer, role),
                                      "evaluator": getattr(self.transfer, f"{role}_evaluator")})
        q._role = role
        return q

    @property
    def role(self) -> str | None:
        """None for the generator pipeline's dataset; ``source`` or ``target`` for a transfer domain."""
        return self._role

    @property
    def overrides(self) -> tuple[str, ...]:
        """The ``key=value`` overrides these parameters were loaded with (``--set``)."""
        return self._overrides

    def user_key(self, key: str) -> str:
        """A dotted key (or a whole section) as the user sets it: in a domain's view ``data.root`` is
        ``transfer.<role>.root`` and ``evaluator`` is ``transfer.<role>_evaluator``; unchanged outside a domain."""
        section, _, field = key.partition(".")
        if not self._role or section not in ("data", "evaluator"):
            return key
        prefix, model = ((f"transfer.{self._role}", DataParams) if section == "data" else
                         (f"transfer.{self._role}_evaluator", EvaluatorParams))
        if not field:
            return prefix
        return f"{prefix}.{field}" if field.split(".")[0] in model.model_fields else key

    def in_user_terms(self, text: str) -> str:
        """``text`` (an error message) with every ``data.*``/``evaluator.*`` key as :meth:`user_key` names it."""
        if not self._role:
            return text
        return re.sub(r"(?<![\w./])(?:data|evaluator)\.[a-z_]+\b", lambda m: self.user_key(m.group(0)), text)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Params
    for part in path:
        field = model.model_fields.get(str(part)) if model else None
        ann = field.annotation if field else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _allowed(err: dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sym = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return f"a number {sym} {bound}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return err["msg"][0].lower() + err["msg"][1:]


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            model = _model_at(loc[:-1])
            names = sorted(model.model_fields) if model else []
            hint = difflib.get_close_matches(str(loc[-1]), names, n=1)
            did = f" (did you mean '{'.'.join([*map(str, loc[:-1]), hint[0]])}'?)" if hint else ""
            lines.append(f"unknown key '{key}'{did}; allowed keys here: {', '.join(names)}")
        elif isinstance(err.get("input"), dict) and err["type"] == "value_error":   # a rule across a section's keys
            lines.append(f"{key}: {_allowed(err)}")
        else:
            lines.append(f"key '{key}': value {_shown(err.get('input'))} is not allowed; expected {_allowed(err)}")
    if len(lines) == 1:
        return f"invalid parameters: {lines[0]}"
    return "invalid parameters:\n  " + "\n  ".join(lines)


def _shown(value: Any) -> str:
    """A value as the user wrote it in YAML (true, null), not as Python prints it."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip() \
        if isinstance(value, (bool, type(None))) else repr(value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` → (['a', 'b'], value); the value is read as a YAML scalar (10, true, null, text)."""
    if "=" not in text:
        raise ParamsError(f"override {text!r} must look like key=value, e.g. neighbors.k=20")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ParamsError(f"override {text!r}: the key {key!r} is empty or malformed")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ParamsError(f"override {text!r}: value {raw!r} is not a YAML scalar ({exc})") from None
    return key.split("."), value


def _renamed_read(old: str, new: str, both: bool) -> None:
    """An old key spelling read as its new one (``_Section.RENAMED``), with a warning; both at once is refused."""
    if both:
        raise ParamsError(f"{old} and {new} are both set; {old.rpartition('.')[2]} is the old name of "
                          f"{new.rpartition('.')[2]}: keep only {new}")
    logging.getLogger("ganops.params").warning("%s is now %s; reading it as that", old, new)


def _current_key(dotted: str) -> str:
    """A dotted key in its current spelling: ``train.n_samples`` is ``train.grid_size``."""
    section, _, name = dotted.partition(".")
    field = Params.model_fields.get(section)
    model = field.annotation if field is not None else None
    new = getattr(model, "RENAMED", {}).get(name) if isinstance(model, type) else None
    return dotted if new is None else f"{section}.{new}"


def apply_overrides(raw: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``key=value`` overrides (or a {dotted: value} dict) applied; an
    override in a key's old spelling sets its new one."""
    out = yaml.safe_load(yaml.safe_dump(raw)) if raw else {}
    items = list(overrides.items() if isinstance(overrides, dict) else (
        (".".join(k), v) for k, v in map(parse_override, overrides)))
    current = {k: _current_key(k) for k, _ in items}
    for old, new in current.items():
        if new != old:
            _renamed_read(old, new, both=new in current)
    for dotted, value in ((current[k], v) for k, v in items):
        parts = dotted.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if isinstance(child, str) and _kind_section(parts[: i + 1]):   # `augment: ada`, then one of its keys
                child = node[part] = {"kind": child}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ParamsError(f"key '{dotted}': '{where}' is a value, not a section")
            node = child
        if isinstance(value, str) and isinstance(node.get(parts[-1]), dict) and _kind_section(parts):
            node[parts[-1]] = {**node[parts[-1]], "kind": value}   # the kind alone keeps the section's other keys
        else:
            node[parts[-1]] = value
    return out


def _kind_section(parts: list[str]) -> bool:
    """Whether the dotted path names a section with a ``kind`` that a word alone may set (``train.augment=ada``)."""
    model: Any = Params
    for part in parts:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return False
        model = field.annotation
    return isinstance(model, type) and issubclass(model, BaseModel) and "kind" in model.model_fields


def validate(raw: dict[str, Any]) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(f"parameters must be a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc)) from None


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML's last-one-wins on a repeated key would silently drop a value: refuse it instead. LibYAML's parser
    where PyYAML has it: every stage and every Dagster step reads params.yaml."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(f"{key_node.start_mark.name}: key '{key}' appears twice (lines {seen[key]} and "
                                  f"{key_node.start_mark.line + 1}); keep one")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path, required: bool = False) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ParamsError(f"parameters file {path} is a directory; pass --params with a YAML file")
    if not path.exists():
        if required:
            raise ParamsError(f"parameters file {path} does not exist; pass --params with an existing file "
                              "(default: params.yaml in the project root)")
        return {}
    try:
        with open(path) as stream:  # a file stream, so the loader's messages name the file
            raw = yaml.load(stream, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if raw is None:   # an empty file (or only comments): legal, but rarely what the user meant
        logging.getLogger("ganops.params").warning(
            "%s is empty: every parameter takes the schema's default (`ganops params` prints them)", path)
        return {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: must be a mapping of sections (data:, embed:, …)")
    return raw


def load(path: str | Path | None = "params.yaml", overrides: list[str] | dict[str, Any] = (),
         required: bool = False, settings: dict[str, Any] | None = None) -> Params:
    """params.yaml (a missing file is an error when ``required``, else all defaults), then ``settings``
    ({dotted key: value} a front door sets, e.g. Dagster's resources), then the user's overrides (``--set``
    items, Dagster's run config), validated as a whole. Only the user's overrides are kept
    (``Params.overrides``): the commands that errors suggest repeat them."""
    raw = read_yaml(path, required) if path else {}
    if settings:
        raw = apply_overrides(raw, settings)
    if overrides:
        raw = apply_overrides(raw, overrides)
    p = validate(raw)
    p._overrides = tuple(f"{k}={v}" for k, v in overrides.items()) if isinstance(overrides, dict) else tuple(overrides)
    return p
