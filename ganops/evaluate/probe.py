"""The DCGAN paper's representation claim: a linear classifier on the trained discriminator's features.

A logistic regression is fitted on the training images' features and scored on the held-out images,
for D's last convolutional features (before its logit) beside the same probe on raw pixels and on the
pipeline's encoder: D learnt something beyond pixels when its probe beats the pixel probe. scikit-learn's
LogisticRegression (lbfgs, standardised inputs) is the probe the field uses for linear evaluation.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ganops.train.sampling import to_float


@torch.no_grad()
def discriminator_features(D, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """D's last feature map (C×4×4 at every resolution), flattened, for uint8 images."""
    dev = next(D.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        x = to_float(torch.from_numpy(np.array(images[s:s + batch_size])).to(dev))  # a copy: memmaps are read-only
        out.append(D.features(x).float().flatten(1).cpu().numpy())
    return np.concatenate(out)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 seed: int = 0, max_iter: int = 500) -> float:
    """Held-out accuracy of a logistic regression fitted on the training features."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    keep, keep_t = train_y >= 0, test_y >= 0
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=0.1, random_state=seed))
    with warnings.catch_warnings():     # an unconverged probe is still a probe; the figure says how good
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(train_x[keep], np.float32), train_y[keep])
    return float((clf.predict(np.asarray(test_x[keep_t], np.float32)) == test_y[keep_t]).mean())
