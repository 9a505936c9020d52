"""The DCGAN paper's representation claim: a linear classifier on the trained discriminator's features.

A logistic regression is fitted on the training images' features and scored on the held-out images,
for D's last convolutional features (before its logit) beside the same probe on raw pixels and on the
pipeline's encoder: D learnt something beyond pixels when its probe beats the pixel probe.

The probe is scikit-learn's LogisticRegression objective (multinomial, L2 with C, standardised inputs),
minimised with torch's L-BFGS in float32: scikit-learn's lbfgs works in float64 and spent half the whole
evaluation's time on the three probes (benchmarks/eval_speed.py); a test checks both agree.
"""

from __future__ import annotations

import numpy as np
import torch

from ganops.core.pixels import to_float


@torch.no_grad()
def discriminator_features(D, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """D's last feature map (C×4×4 at every resolution), flattened, for uint8 images."""
    dev = next(D.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.array(images[s:s + batch_size])).to(dev))  # a copy: memmaps are read-only
        out.append(D.features(x).float().flatten(1).cpu().numpy())
    return np.concatenate(out)


# Training rows of a probe: a seeded sample beyond this. The probe's accuracy levels off long before
# (10 classes, ≤ 4,096 features), while each L-BFGS step reads every row: memory-bound at D's 4,096 dims.
PROBE_ROWS = 3000


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 seed: int = 0, c: float = 0.1, max_iter: int = 100) -> float:
    """Held-out accuracy of a logistic regression fitted on the training features (unlabelled rows skipped)."""
    keep, keep_t = train_y >= 0, test_y >= 0
    if keep.sum() > PROBE_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(keep), PROBE_ROWS, replace=False))
        keep = np.zeros_like(keep)
        keep[rows] = True
    x = torch.as_tensor(np.asarray(train_x, np.float32)[keep])
    xt = torch.as_tensor(np.asarray(test_x, np.float32)[keep_t])
    classes, y = np.unique(train_y[keep], return_inverse=True)
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    x, xt = (x - mean) / std, (xt - mean) / std
    y = torch.as_tensor(y)
    torch.manual_seed(seed)
    w = torch.zeros(x.shape[1], len(classes), requires_grad=True)
    b = torch.zeros(len(classes), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, tolerance_grad=1e-5, tolerance_change=1e-7,
                            history_size=20, line_search_fn="strong_wolfe")
    l2 = 1.0 / (2.0 * c * len(x))      # scikit-learn's ½‖w‖² + C·Σ loss, divided by C·n

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        predicted = classes[(xt @ w + b).argmax(1).numpy()]
    return float((predicted == test_y[keep_t]).mean())
