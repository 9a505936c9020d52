"""The whole evaluation of one generator: every metric, and the pictures, into one report.

Every figure names its feature space (``fid_evaluator``; ``fid_inception`` when the Inception weights
are present) so nobody compares an in-pipeline evaluator's FID with a paper's Inception figure.
Generated samples come from the model of the data (``GeneratorModel.data_conditions``: an instance drawn per sample
for IC-GAN, labels from the training distribution for cGAN), seeded by ``evaluate.seed``.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganops.core.params import Params
from ganops.evaluate import conditional, instances, memorisation, overfitting, pictures, ppl, probe
from ganops.evaluate import metrics as M
from ganops.evaluate.evaluator import Evaluator
from ganops.models.gan_model import PER_ROW, GeneratorModel

log = logging.getLogger("ganops.evaluate")

SPACE = "evaluator"


@dataclass
class Inputs:
    """What the evaluation reads (arrays may be memory maps)."""

    model: GeneratorModel                 # the trained generator, on the evaluation's device
    images: np.ndarray                    # training images (what the GAN saw)
    labels: np.ndarray
    held_images: np.ndarray               # held-out images (nobody saw)
    held_labels: np.ndarray
    real_features: np.ndarray             # evaluator features of ``images`` (cached by the evaluator stage)
    held_features: np.ndarray
    evaluator: Evaluator
    history: list[dict[str, Any]] = field(default_factory=list)
    h: np.ndarray | None = None           # IC-GAN: the training instances' embeddings (features.npy)
    neighbors: np.ndarray | None = None   # IC-GAN: A_i (indices.npy)
    embed_held: Any = None                # IC-GAN: images → embeddings with the pipeline's encoder
    inception_weights: Path | None = None
    inception_note: str = ""


@dataclass
class Report:
    metrics: dict[str, float]             # flat numbers: DVC metrics, MLflow metrics, registry tags
    details: dict[str, Any]               # per label, per instance, notes
    pictures: dict[str, str]              # name → file name in the output folder


def evaluate(x: Inputs, p: Params, out: Path, device: torch.device) -> Report:
    e = p.evaluate
    model, c = x.model, x.model.conditions
    feats = lambda imgs: x.evaluator.features(imgs, e.batch_size)  # noqa: E731
    m: dict[str, float] = {"non_finite_weights": model.non_finite_weights(), "n_samples": e.n_samples}
    details: dict[str, Any] = {"feature_space": {"fid_evaluator": f"{x.evaluator.kind} evaluator trained in the "
                                                 "pipeline (data/evaluator); not comparable with Inception figures"}}
    pics: dict[str, str] = {}

    @functools.cache
    def held_h() -> np.ndarray:       # IC-GAN: the held-out images embedded once, by whichever section needs them
        return x.embed_held(np.asarray(x.held_images))

    # -- distribution metrics: samples from the model of the data against the real training images
    y, h, picks = model.data_conditions(e.n_samples, e.seed, x.h, x.labels)
    fake = model.generate(e.n_samples, seed=e.seed, labels=y, features=h, batch_size=e.batch_size)
    fake_f, fake_pred = x.evaluator.features_and_labels(fake, e.batch_size)
    real = x.real_features
    m[f"fid_{SPACE}"] = M.fid(real, fake_f)
    m[f"kid_{SPACE}_mean"], m[f"kid_{SPACE}_std"] = M.kid(real, fake_f, e.kid_subsets, e.kid_subset_size, e.seed)
    details["kid_subset_size_used"] = min(e.kid_subset_size, len(real), len(fake_f))   # capped by the sets
    m.update({f"{k}_{SPACE}": v for k, v in M.prdc(real, fake_f, e.pr_k, e.dc_k).items()})
    # collapse: the samples' spread in feature space against the real images' (1 = as varied as the data)
    m["diversity_ratio_evaluator"] = float(fake_f.std(0).mean() / max(real.std(0).mean(), 1e-12))
    if fake_pred is not None and picks is not None and (x.labels >= 0).any():
        m["instance_label_agreement"] = conditional.instance_label_agreement(fake_pred, x.labels[picks])
    if fake_pred is not None:
        dist = np.bincount(np.searchsorted(x.evaluator.classes, fake_pred), minlength=len(x.evaluator.classes))
        details["predicted_class_share"] = {str(c): float(n / len(fake)) for c, n in zip(x.evaluator.classes, dist)}

    # -- Inception space, only when its weights are in the hub cache
    if x.inception_weights is not None:
        from ganops.evaluate import inception

        m.update(inception.inception_metrics(x.images, fake, x.inception_weights, device,
                                             e.kid_subsets, e.kid_subset_size, e.seed))
        details["feature_space"]["fid_inception"] = f"TF-ported Inception-V3 ({x.inception_weights.name})"
    else:
        details["inception"] = x.inception_note

    # -- conditional families: the evaluator's verdict per requested label
    if c.label and x.evaluator.head is not None:
        summary, per = conditional.per_label_accuracy(model, x.evaluator.classes, e.per_label, e.seed,
                                                      x.evaluator.predict, x.h, x.labels, own=True)
        m["label_accuracy"], m["label_accuracy_min"] = summary["accuracy"], summary["accuracy_min"]
        details["label_accuracy"] = per
        if c.instance:     # class-conditional IC-GAN: the class swap
            summary, per = conditional.per_label_accuracy(model, x.evaluator.classes, e.per_label, e.seed,
                                                          x.evaluator.predict, x.h, x.labels, own=False)
            m["label_accuracy_swapped"] = summary["accuracy"]
            details["label_accuracy_swapped"] = per

    # -- IC-GAN per instance, seen and held out
    if c.instance and x.neighbors is not None:
        rng = np.random.default_rng(e.seed)
        seen = np.sort(rng.choice(len(x.images), min(e.instances, len(x.images)), replace=False))
        cc = c.label
        s = instances.score(model, np.asarray(x.h[seen]), np.asarray(x.images[seen]), np.asarray(x.neighbors[seen]),
                            x.images, e.per_instance, e.seed, feats, x.labels[seen] if cc else None)
        m.update({f"instance_{k}": v for k, v in s.metrics.items()})
        pics["instances"] = pictures.instance_panel(
            out / "instances.png", np.asarray(x.images[seen[:8]]),
            np.asarray(x.images[s.neighbors[:8].ravel()]).reshape(min(8, len(seen)), -1, *x.images.shape[1:]),
            s.fakes[:8]).name
        if len(x.held_images) and x.embed_held is not None:
            held = np.sort(rng.choice(len(x.held_images), min(e.instances, len(x.held_images)), replace=False))
            hh = held_h()[held]
            rows = instances.held_out_neighbors(np.asarray(x.h), hh, x.neighbors.shape[1])
            ok = x.held_labels[held] >= 0
            labels_for = np.where(ok, x.held_labels[held], 0) if cc else None
            s2 = instances.score(model, hh, np.asarray(x.held_images[held]), rows, x.images, e.per_instance,
                                 e.seed + 1, feats, labels_for)
            m.update({f"heldout_instance_{k}": v for k, v in s2.metrics.items()})
            pics["heldout_instances"] = pictures.instance_panel(
                out / "heldout_instances.png", np.asarray(x.held_images[held[:8]]),
                np.asarray(x.images[rows[:8].ravel()]).reshape(min(8, len(held)), -1, *x.images.shape[1:]),
                s2.fakes[:8]).name

    # -- memorisation, in pixel space against the training images
    mem = memorisation.memorisation(x.images, fake, x.held_images, e.near_copy_quantile)
    m.update(mem.metrics)
    order = np.argsort(mem.fake_distance)[:16]
    pics["nearest"] = pictures.nearest_panel(out / "nearest.png", fake[order],
                                             np.asarray(x.images[mem.fake_nearest[order]]), mem.fake_distance[order],
                                             mem.metrics.get("nn_distance_pixels_holdout_median")).name

    # -- smoothness of the latent space, conditions drawn as for the samples
    yp, hp, _ = model.data_conditions(e.ppl_pairs, e.seed + 7, x.h, x.labels)
    m.update(ppl.path_length(model, feats, e.ppl_pairs, e.ppl_epsilon, e.seed, yp, hp, e.batch_size))

    # -- DCGAN's representation claim: a linear probe on D's features, beside pixels (and the encoder)
    if e.probe and (x.labels >= 0).any() and (x.held_labels >= 0).any():
        D = model.discriminator()
        m["probe_discriminator"] = probe.linear_probe(probe.discriminator_features(D, x.images),
                                                      x.labels, probe.discriminator_features(D, x.held_images),
                                                      x.held_labels, e.seed)
        flat = lambda a: np.asarray(a, np.float32).reshape(len(a), -1) / 255.0  # noqa: E731
        m["probe_pixels"] = probe.linear_probe(flat(x.images), x.labels, flat(x.held_images), x.held_labels, e.seed)
        if x.h is not None and x.embed_held is not None:
            m["probe_encoder"] = probe.linear_probe(np.asarray(x.h), x.labels, held_h(), x.held_labels, e.seed)

    # -- D's overfitting signal (ADA's r_t): D on training images against held-out ones and samples
    if len(x.held_images) and (not c.instance or x.embed_held is not None) and (
            not c.label or (x.held_labels >= 0).all()):
        m.update(_d_signal(model, x, fake, y, h, held_h, e.seed))

    # -- pictures a person wants
    cond_rows = model.data_conditions(PER_ROW, e.seed, x.h, x.labels)
    if c.label and not c.instance:     # cGAN: sample_grid's row per class, every class (8 drawn labels miss some)
        grid = pictures.sample_grid(model, out / "samples.png", PER_ROW * c.n_classes, e.seed)
    else:
        grid = pictures.sample_grid(model, out / "samples.png", 64, e.seed, *_per_row(cond_rows, PER_ROW))
    pics["samples"] = grid.name
    pics["latent_walk"] = pictures.latent_walk(model, out / "latent_walk.png", rows=8, steps=10, seed=e.seed,
                                               labels=cond_rows[0], features=cond_rows[1]).name
    if x.evaluator.head is not None:
        made = pictures.latent_arithmetic(model, out / "latent_arithmetic.png", x.evaluator.predict, seed=e.seed,
                                          labels=cond_rows[0][:1] if cond_rows[0] is not None else None,
                                          features=cond_rows[1][:1] if cond_rows[1] is not None else None)
        if made is not None:
            pics["latent_arithmetic"] = made.name
    if x.history:
        pics["losses"] = pictures.loss_plot(x.history, out / "losses.png").name
    return Report({k: float(v) for k, v in m.items()}, details, pics)


def _d_signal(model: GeneratorModel, x: Inputs, fake: np.ndarray, y, h, held_h, seed: int) -> dict[str, float]:
    """``overfitting.signal`` on as many training images as there are held-out ones (at least 1,000 where the
    training set has them), each with its own condition; the samples with theirs."""
    c, D = model.conditions, model.discriminator()
    n = min(len(x.images), max(len(x.held_images), 1000))
    idx = np.sort(np.random.default_rng(seed).choice(len(x.images), n, replace=False))
    held = np.asarray(x.held_images)
    train = overfitting.d_outputs(D, np.asarray(x.images[idx]), x.labels[idx] if c.label else None,
                                  np.asarray(x.h[idx]) if c.instance else None)
    held_out = overfitting.d_outputs(D, held, x.held_labels if c.label else None,
                                     held_h() if c.instance else None)
    generated = overfitting.d_outputs(D, fake, y, h)
    return overfitting.signal(train, held_out, generated)


def _per_row(cond: tuple, per_row: int) -> tuple:
    """Conditions for a sample grid: each row repeats one condition ``per_row`` times."""
    y, h, _ = cond
    return (None if y is None else np.repeat(y, per_row), None if h is None else np.repeat(h, per_row, axis=0))
