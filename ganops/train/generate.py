"""Generating images with a trained generator (what ``ganops sample`` and the evaluation call):
unconditional, by label, or by instance h; and the conditions that sample a generator's model of the data.

``weights`` is ``TrainResult.weights()`` or what ``checkpoint.save_weights`` wrote (a path or the
loaded dict): the G config inside rebuilds the network, so no params are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganops import device as devices
from ganops.models.blocks import DConfig, Discriminator, GConfig, Generator
from ganops.pixels import to_uint8
from ganops.train.checkpoint import load_weights, network_config, network_state


def build_generator(weights: dict[str, Any] | str | Path, device: torch.device | str = "cpu",
                    use_ema: bool = True) -> Generator:
    """The trained G (its EMA when present and ``use_ema``), in eval mode on ``device``."""
    w = load_weights(Path(weights)) if isinstance(weights, (str, Path)) else weights
    G = Generator(GConfig.from_dict(network_config(w, "G")))
    G.load_state_dict(network_state(w, "G", ema=use_ema))
    return G.to(torch.device(device)).eval().requires_grad_(False)


def build_discriminator(weights: dict[str, Any] | str | Path, device: torch.device | str = "cpu") -> Discriminator:
    """The trained D (for fine-tuning, as IC-GAN's users do), in eval mode on ``device``."""
    w = load_weights(Path(weights)) if isinstance(weights, (str, Path)) else weights
    D = Discriminator(DConfig.from_dict(network_config(w, "D")))
    D.load_state_dict(network_state(w, "D", ema=False))
    return D.to(torch.device(device)).eval()


def _broadcast(values, n: int, name: str, dtype) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values), dtype=dtype)
    if t.ndim == (0 if name == "label" else 1):
        t = t.unsqueeze(0)
    if t.shape[0] == 1:
        t = t.expand(n, *t.shape[1:])
    if t.shape[0] != n:
        raise ValueError(f"{name}: {t.shape[0]} conditions for {n} samples; give 1 or {n}")
    return t


@torch.no_grad()
def generate(weights: dict[str, Any] | str | Path | Generator, n: int, *, device: torch.device | str = "cpu",
             seed: int = 0, labels=None, features=None, use_ema: bool = True, batch_size: int = 256) -> np.ndarray:
    """n samples as uint8 N×C×H×W. ``labels``: one int or n ints (cgan, class-conditional icgan);
    ``features``: one h (d,) or n×d (icgan), L2-normalised as features.npy rows are. Same seed,
    same samples."""
    G = weights if isinstance(weights, Generator) else build_generator(weights, device, use_ema)
    cfg, dev = G.cfg, next(G.parameters()).device
    if cfg.n_classes and labels is None:
        raise ValueError(f"this generator is class-conditional ({cfg.n_classes} classes): pass labels (--label)")
    if cfg.feat_dim and features is None:
        raise ValueError("this generator is instance-conditional (IC-GAN): pass instance features h (--instance)")
    y = _broadcast(labels, n, "label", torch.long) if cfg.n_classes else None
    if y is not None and (y.min() < 0 or y.max() >= cfg.n_classes):
        raise ValueError(f"labels must lie in 0..{cfg.n_classes - 1}, got {y.min().item()}..{y.max().item()}")
    h = _broadcast(features, n, "features", torch.float32) if cfg.feat_dim else None
    if h is not None and h.shape[1] != cfg.feat_dim:
        raise ValueError(f"features have size {h.shape[1]}, the generator was trained on size {cfg.feat_dim}")
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, cfg.z_dim, generator=gen)
    out = []
    for s in range(0, n, batch_size):
        sl = slice(s, s + batch_size)
        with devices.autocast(dev):
            x = G(z[sl].to(dev), None if y is None else y[sl].to(dev), None if h is None else h[sl].to(dev))
        out.append(to_uint8(x))
    return np.concatenate(out) if out else np.zeros((0, cfg.channels, cfg.resolution, cfg.resolution), np.uint8)


def data_conditions(g_config: dict[str, Any], n: int, seed: int, features=None, labels=None,
                    label: int | None = None) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Conditions for ``n`` samples from the model of the data a generator learnt: (labels, h, instances).

    - IC-GAN models p(x) = 1/M Σ_i p(x | h_i): each sample draws its own training instance i uniformly
      (one shared instance would give n variations of one image, not the distribution).
    - Class-conditional IC-GAN with ``label`` y: p(x | y) = Σ_i p(x | h_i, y) p(h_i | y), i.e. instances
      drawn among those of class y, paired with y.
    - cGAN: the requested ``label`` for all, or labels drawn from the training labels' distribution.
    ``features`` / ``labels`` are the training instances' (features.npy rows and dataset labels).
    """
    rng = np.random.default_rng(seed)
    feat_dim, n_classes = g_config.get("feat_dim"), g_config.get("n_classes")
    y = h = picks = None
    if feat_dim:
        pool = np.arange(len(features))
        if label is not None and n_classes:
            pool = np.flatnonzero(np.asarray(labels) == label)
            if pool.size == 0:
                raise ValueError(f"no training instance has label {label}: cannot draw p(x | y={label})")
        picks = np.sort(rng.choice(pool, n, replace=True)) if n else pool[:0]
        h = np.asarray(features[picks], np.float32)
        if n_classes:
            y = np.full(n, label) if label is not None else np.asarray(labels)[picks]
    elif n_classes:
        if label is not None:
            y = np.full(n, label)
        else:
            known = np.asarray(labels)[np.asarray(labels) >= 0]
            y = rng.choice(known, n, replace=True)
    return y, h, picks
