"""How well a domain-transfer model translates (the `evaluate_transfer` stage's measurements).

- Transfer accuracy: the target domain's evaluator (a classifier trained on the target's training
  images) labels the translations of the held-out source images; accuracy against the source labels,
  overall and per class, beside the baseline of the source images themselves put in the target's
  frame (same side, the target's channels), scored by the same classifier.
- FID and KID of the translations against the target's training images in that evaluator's feature
  space, beside the same figures for the held-out target images (the floor) and for the untranslated
  source (where translation starts).
- CycleGAN: the cycle reconstruction error both ways (mean absolute pixel error, 0..1) and label
  preservation of target → source translations, judged by the source's evaluator.
- Pictures: source images beside their translations (and reconstructions).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganops.core.params import Params
from ganops.core.visual import save_grid, side_by_side
from ganops.data.resize import to_channels
from ganops.evaluate import metrics as M
from ganops.evaluate.evaluator import Evaluator
from ganops.models.transfer_model import TranslatorModel
from ganops.tracking.checks import WEAK_JUDGE

PICTURE_ROWS = 48      # held-out images shown in each picture

log = logging.getLogger("ganops.evaluate")


@dataclass
class TransferInputs:
    model: TranslatorModel            # the trained translator, on the evaluation's device
    source: np.ndarray                # held-out source images (uint8) and labels
    source_labels: np.ndarray
    target: np.ndarray                # held-out target images and labels
    target_labels: np.ndarray
    target_features: np.ndarray       # the target evaluator's features of the target's training images
    target_evaluator: Evaluator
    source_evaluator: Evaluator | None   # judges translations back (a reversible family's); None otherwise
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TransferReport:
    metrics: dict[str, float]
    details: dict[str, Any]
    pictures: dict[str, str]


def accuracy(ev: Evaluator, images: np.ndarray, labels: np.ndarray, batch_size: int) -> tuple[float, dict[str, float]]:
    """Share of ``images`` the classifier ``ev`` labels as ``labels`` (unknown labels, -1, left out), and
    the same per class."""
    known = labels >= 0
    if not known.any():
        return float("nan"), {}
    pred = ev.predict(images[known], batch_size)
    right, y = pred == labels[known], labels[known]
    return float(right.mean()), {str(c): float(right[y == c].mean()) for c in np.unique(y).tolist()}


def _cycle_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference on 0..1."""
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() / 255.0)


def transfer_accuracy(model: TranslatorModel, x: TransferInputs, p: Params) -> float:
    """The ranking figure alone (the registry re-scores a champion measured in another space with it)."""
    fake = model.translate(x.source, batch_size=p.evaluate.batch_size)
    return accuracy(x.target_evaluator, fake, x.source_labels, p.evaluate.batch_size)[0]


def evaluate_transfer(x: TransferInputs, p: Params, out: Path) -> TransferReport:
    e = p.evaluate
    bs = e.batch_size
    model = x.model
    fake = model.translate(x.source, batch_size=bs)
    m: dict[str, float] = {"n_source_holdout": len(x.source), "n_target_holdout": len(x.target),
                           "non_finite_weights": model.non_finite_weights()}
    details: dict[str, Any] = {"feature_space": f"target evaluator ({x.target_evaluator.kind})"}
    framed = to_channels(x.source, fake.shape[1])    # the source as it is, in the target's frame
    if x.target_evaluator.head is not None:
        m["transfer_accuracy"], details["transfer_accuracy_per_class"] = accuracy(
            x.target_evaluator, fake, x.source_labels, bs)
        m["baseline_accuracy"], details["baseline_accuracy_per_class"] = accuracy(
            x.target_evaluator, framed, x.source_labels, bs)
        per_class = details["transfer_accuracy_per_class"]
        m["transfer_accuracy_min_class"] = min(per_class.values()) if per_class else float("nan")
        if per_class:
            details["transfer_accuracy_worst_class"] = min(per_class, key=per_class.get)
        m["target_holdout_accuracy"] = accuracy(x.target_evaluator, x.target, x.target_labels, bs)[0]
        if m["target_holdout_accuracy"] < WEAK_JUDGE:
            details["warning"] = (f"the target's evaluator labels only {m['target_holdout_accuracy']:.0%} of the "
                                  "target's own held-out images right: the accuracies above say little about the "
                                  "translations; train it longer (transfer.target_evaluator.epochs)")
            log.warning(details["warning"])
    else:
        details["transfer_accuracy"] = ("the target's evaluator is self-supervised (the target has no labels): "
                                        "no classifier to judge translations")
    real = x.target_features
    fake_f = x.target_evaluator.features(fake, bs)
    kid = lambda f: M.kid(real, f, e.kid_subsets, min(e.kid_subset_size, len(f), len(real)), e.seed)  # noqa: E731
    m["fid_target"] = M.fid(real, fake_f)
    m["kid_target"], m["kid_target_std"] = kid(fake_f)
    m["diversity_ratio_evaluator"] = float(fake_f.std(0).mean() / max(real.std(0).mean(), 1e-12))
    if len(x.target) > 1:
        m["fid_target_holdout"] = M.fid(real, x.target_evaluator.features(x.target, bs))
    m["fid_source_untranslated"] = M.fid(real, x.target_evaluator.features(framed, bs))

    k = min(PICTURE_ROWS, len(x.source))
    pictures = {"translations": "translations.png"}
    if model.reversible:        # CycleGAN: back to the source, both ways
        rec = model.translate(fake, reverse=True, batch_size=bs)
        back = model.translate(x.target, reverse=True, batch_size=bs)
        rec_t = model.translate(back, batch_size=bs)
        m["cycle_error_source"] = _cycle_error(rec, x.source)
        m["cycle_error_target"] = _cycle_error(rec_t, x.target)
        if x.source_evaluator is not None and x.source_evaluator.head is not None:
            m["label_preservation_target_to_source"], details["label_preservation_target_to_source_per_class"] = \
                accuracy(x.source_evaluator, back, x.target_labels, bs)
        if "transfer_accuracy" in m:
            m["label_preservation_source_to_target"] = m["transfer_accuracy"]
        save_grid(side_by_side(x.source[:k], fake[:k], rec[:k]), out / "translations.png", nrow=12)
        kt = min(PICTURE_ROWS, len(x.target))
        save_grid(side_by_side(x.target[:kt], back[:kt], rec_t[:kt]), out / "reverse.png", nrow=12)
        pictures["reverse"] = "reverse.png"
    else:
        save_grid(side_by_side(x.source[:k], fake[:k]), out / "translations.png", nrow=16)
    if x.history:
        from ganops.evaluate.pictures import loss_plot

        loss_plot(x.history, out / "losses.png")
        pictures["losses"] = "losses.png"
    return TransferReport(m, details, pictures)
