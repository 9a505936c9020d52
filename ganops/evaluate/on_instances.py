"""An IC-GAN conditioned on another dataset's instances, scored as the IC-GAN paper scores its transfer
(Casanova et al. 2021: an ImageNet model conditioned on COCO's instances, judged against COCO): the
samples against that dataset's images in the evaluator's space (FID, KID, precision/recall, density/
coverage), and, where the two datasets share class labels, how often a sample keeps its instance's
label in the evaluator's judgement.

``score`` takes arrays (samples from ``ganops.commands.sample.sample_instances`` or any other draw, such
as the model's own p(x) or another family's samples for the rows beside it), so the same figures serve
the benchmark and the evaluation.
"""

from __future__ import annotations

import numpy as np

from ganops.evaluate import metrics as M


def score(evaluator, reference: np.ndarray, samples: np.ndarray, *, instance_labels: np.ndarray | None = None,
          per_instance: int = 1, batch_size: int = 500, kid_subsets: int = 100, kid_subset_size: int = 1000,
          seed: int = 0, pr_k: int = 3, dc_k: int = 5) -> dict[str, float]:
    """Figures of ``samples`` (uint8 N×C×H×W) against ``reference``, the other dataset's images at G's side and
    channels. ``instance_labels`` (one per instance, -1 unknown; sample i belongs to instance i // per_instance):
    ``label_agreement`` over the samples whose instance has a label the evaluator knows."""
    real = evaluator.features(reference, batch_size)
    fake = evaluator.features(samples, batch_size)
    out = {"fid": M.fid(real, fake)}
    mean, std = M.kid(real, fake, kid_subsets, kid_subset_size, seed=seed)
    out.update(kid_mean=mean, kid_std=std, **M.prdc(real, fake, pr_k, dc_k))
    if instance_labels is not None and evaluator.head is not None:
        want = np.repeat(np.asarray(instance_labels), per_instance)
        known = np.isin(want, evaluator.classes)
        if known.any():
            said = evaluator.predict(samples[known], batch_size)
            out["label_agreement"] = float((said == want[known]).mean())
            out["label_agreement_n"] = float(known.sum())
    return out


def named(figures: dict[str, float], prefix: str = "") -> dict[str, float]:
    """``score``'s figures under the names the evaluation gives them, the feature space in each
    (``fid_evaluator``, ``kid_evaluator_mean``); ``prefix`` tells rows apart (``own_``)."""
    out = {}
    for key, value in figures.items():
        if key.startswith("label_agreement"):
            out[prefix + key] = value
        elif key.startswith("kid_"):
            out[f"{prefix}kid_evaluator_{key[4:]}"] = value
        else:
            out[f"{prefix}{key}_evaluator"] = value
    return out
