"""Perceptual path length (Karras et al. 2019, StyleGAN): how smoothly images change along the latent
space, as a number — what the DCGAN paper showed with latent walks.

StyleGAN measures the distance with LPIPS (a VGG16 download); offline, the evaluator's features stand
in: d = ‖f(G(slerp(z0, z1, t))) − f(G(slerp(z0, z1, t + ε)))‖² / ε² with f L2-normalised (a scale-free,
cosine-like distance), t ~ U(0, 1), the condition fixed along each path. As in StyleGAN, the mean is
taken between the 1st and 99th percentiles (a few paths crossing a mode boundary dominate otherwise).
"""

from __future__ import annotations

import numpy as np
import torch

from ganops.core import device as devices
from ganops.core.pixels import to_uint8


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows of ``a`` and ``b`` at ``t`` (N×1)."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def path_length(model, features_of, n_pairs: int, epsilon: float, seed: int, labels=None, h=None,
                batch_size: int = 250) -> dict[str, float]:
    """``model``: a ``GeneratorModel``; ``features_of(uint8 images) -> N×d`` is the evaluator;
    ``labels``/``h``: one condition per pair."""
    rng = torch.Generator().manual_seed(seed)
    G, z_dim, dev = model.G, model.cfg.z_dim, model.device
    z0, z1 = torch.randn(n_pairs, z_dim, generator=rng), torch.randn(n_pairs, z_dim, generator=rng)
    t = torch.rand(n_pairs, 1, generator=rng) * (1 - epsilon)
    dists = []
    for s in range(0, n_pairs, batch_size):
        sl = slice(s, s + batch_size)
        za, zb = slerp(z0[sl], z1[sl], t[sl]), slerp(z0[sl], z1[sl], t[sl] + epsilon)
        y = None if labels is None else torch.as_tensor(np.asarray(labels[sl]), dtype=torch.long).repeat(2).to(dev)
        c = None if h is None else torch.as_tensor(np.asarray(h[sl]), dtype=torch.float32).repeat(2, 1).to(dev)
        with devices.autocast(dev):
            x = G(torch.cat([za, zb]).to(dev), y, c)
        f = np.asarray(features_of(to_uint8(x)), np.float64)   # uint8, as every other image the evaluator scores
        f /= np.linalg.norm(f, axis=1, keepdims=True) + 1e-12
        half = len(f) // 2
        dists.append(((f[:half] - f[half:]) ** 2).sum(1) / epsilon ** 2)
    d = np.concatenate(dists)
    lo, hi = np.percentile(d, [1, 99])
    kept = d[(d >= lo) & (d <= hi)]
    return {"ppl_evaluator": float(kept.mean()), "ppl_evaluator_median": float(np.median(d))}
