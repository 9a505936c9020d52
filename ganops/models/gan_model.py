"""What a trained generator (DCGAN, cGAN, IC-GAN) can do: the conditions it takes besides z, samples for
given conditions, the conditions that sample its model of the data, and its preview grid.

``GANFamily.model`` is this class: ``ganops sample``, the evaluation, the Dagster checks and the stages ask
it (``model.conditions.label``, ``model.generate``…) instead of reading G's config themselves. The same
seed and conditions give the same samples on a device, whichever caller asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops.core import device as devices
from ganops.core.pixels import to_uint8
from ganops.models.blocks import DConfig, Discriminator, GConfig, Generator
from ganops.models.trained import Port, TrainedModel

PER_ROW = 8          # samples per row of a generator's grids (the preview and the evaluation's)


@dataclass(frozen=True)
class Conditions:
    """What a generator is conditioned on besides the noise z."""
    n_classes: int = 0       # > 0: a label in 0..n_classes-1 (cGAN, class-conditional IC-GAN)
    feat_dim: int = 0        # > 0: an instance's features h of this size, unit norm (IC-GAN)

    @property
    def label(self) -> bool:
        return self.n_classes > 0

    @property
    def instance(self) -> bool:
        return self.feat_dim > 0


class GeneratorModel(TrainedModel):
    """A trained G (its EMA where kept), built once on ``device`` in eval mode."""

    def __init__(self, weights: dict[str, Any], device: torch.device | str = "cpu", use_ema: bool = True):
        super().__init__(weights, device, use_ema)
        self.cfg = GConfig.from_dict(self.config("G"))
        # a self-conditioned G draws its clusters from z: unconditional to every caller
        self.conditions = Conditions(0 if self.cfg.self_conditioned else self.cfg.n_classes, self.cfg.feat_dim)
        self._G: Generator | None = None

    @property
    def G(self) -> Generator:
        if self._G is None:
            G = Generator(self.cfg)
            G.load_state_dict(self.state("G"))
            self._G = G.to(self.device).eval().requires_grad_(False)
        return self._G

    def discriminator(self) -> Discriminator:
        """The trained D (for fine-tuning, as IC-GAN's users do, and the evaluation's probe), in eval mode."""
        D = Discriminator(DConfig.from_dict(self.config("D")))
        D.load_state_dict(self.state("D", ema=False))
        return D.to(self.device).eval()

    # ------------------------------------------------------------ conditions

    def conditions_for(self, n: int, labels=None, features=None, *, rows: bool = False
                       ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(y, h) as tensors for ``n`` samples from one condition for all or one each, checked against what G
        takes. ``rows``: the ``n`` are a picture's rows, and a class-conditional G given no labels gets class
        r mod n_classes for row r instead of an error."""
        c, y, h = self.conditions, None, None
        what = "rows" if rows else "samples"
        if c.label:
            if labels is None and not rows:
                raise ValueError(f"this generator is class-conditional ({c.n_classes} classes): pass labels (--label)")
            y = np.arange(n) % c.n_classes if labels is None else _each(np.asarray(labels, np.int64), n, "labels", 0, what)
            if y.min() < 0 or y.max() >= c.n_classes:
                raise ValueError(f"labels must lie in 0..{c.n_classes - 1}, got {y.min()}..{y.max()}")
            y = torch.as_tensor(y, dtype=torch.long)
        if c.instance:
            if features is None:
                raise ValueError("this generator is instance-conditional (IC-GAN): pass instance features h "
                                 "(--instance)")
            h = torch.as_tensor(_each(np.asarray(features, np.float32), n, "features", 1, what))
            if h.shape[1] != c.feat_dim:
                raise ValueError(f"features have size {h.shape[1]}, the generator was trained on size {c.feat_dim}")
        return y, h

    def data_conditions(self, n: int, seed: int, features=None, labels=None, label: int | None = None
                        ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Conditions for ``n`` samples from the model of the data G learnt: (labels, h, instances).

        - IC-GAN models p(x) = 1/M Σ_i p(x | h_i): each sample draws its own training instance i uniformly
          (one shared instance would give n variations of one image, not the distribution).
        - Class-conditional IC-GAN with ``label`` y: p(x | y) = Σ_i p(x | h_i, y) p(h_i | y), i.e. instances
          drawn among those of class y, paired with y.
        - cGAN: the requested ``label`` for all, or labels drawn from the training labels' distribution.
        ``features`` / ``labels`` are the training instances' (features.npy rows and dataset labels).
        """
        rng = np.random.default_rng(seed)
        c = self.conditions
        y = h = picks = None
        if c.instance:
            pool = np.arange(len(features))
            if label is not None and c.label:
                pool = np.flatnonzero(np.asarray(labels) == label)
                if pool.size == 0:
                    raise ValueError(f"no training instance has label {label}: cannot draw p(x | y={label})")
            picks = np.sort(rng.choice(pool, n, replace=True)) if n else pool[:0]
            h = np.asarray(features[picks], np.float32)
            if c.label:
                y = np.full(n, label) if label is not None else np.asarray(labels)[picks]
        elif c.label:
            if label is not None:
                y = np.full(n, label)
            else:
                known = np.asarray(labels)[np.asarray(labels) >= 0]
                y = rng.choice(known, n, replace=True)
        return y, h, picks

    # ------------------------------------------------------------ drawing

    @torch.no_grad()
    def render(self, z: torch.Tensor, y: torch.Tensor | None = None, h: torch.Tensor | None = None,
               batch_size: int = 256) -> np.ndarray:
        """G(z, y, h) as uint8 N×C×H×W, in batches on the model's device."""
        G, dev = self.G, self.device
        out = []
        for s in range(0, len(z), batch_size):
            sl = slice(s, s + batch_size)
            with devices.autocast(dev):
                x = G(z[sl].to(dev), None if y is None else y[sl].to(dev), None if h is None else h[sl].to(dev))
            out.append(to_uint8(x))
        cfg = self.cfg
        return np.concatenate(out) if out else np.zeros((0, cfg.channels, cfg.resolution, cfg.resolution), np.uint8)

    def served(self) -> tuple[nn.Module, list[Port], Port]:
        """G(z[, y][, h]) → images in [-1, 1]: z, then the label y and the instance features h it takes."""
        cfg, c = self.cfg, self.conditions
        G = Generator(cfg)
        G.load_state_dict(self.state("G"))
        inputs = [Port("z", "float32", (-1, cfg.z_dim)), *([Port("y", "int64", (-1,))] if c.label else []),
                  *([Port("h", "float32", (-1, cfg.feat_dim))] if c.instance else [])]
        out = Port("images", "float32", (-1, cfg.channels, cfg.resolution, cfg.resolution))
        return _Sampler(G, c).eval(), inputs, out

    def noise(self, n: int, seed: int) -> torch.Tensor:
        return torch.randn(n, self.cfg.z_dim, generator=torch.Generator().manual_seed(seed))

    def generate(self, n: int, *, seed: int = 0, labels=None, features=None, batch_size: int = 256) -> np.ndarray:
        """n samples as uint8 N×C×H×W. ``labels``: one int or n ints (cgan, class-conditional icgan);
        ``features``: one h (d,) or n×d (icgan), L2-normalised as features.npy rows are. Same seed, same
        samples."""
        y, h = self.conditions_for(n, labels, features)
        return self.render(self.noise(n, seed), y, h, batch_size)

    def preview_grid(self, path: Path, grid_size: int, seed: int, images, features=None, labels=None) -> Path:
        """samples.png of the generator artifact: ``grid_size // PER_ROW`` rows of PER_ROW samples, a condition
        per row: seeded training instances (IC-GAN; the row starts with the real instance, and its label
        for the class-conditional variant) or consecutive labels (cGAN)."""
        from ganops.core.visual import save_grid

        n_rows = max(1, grid_size // PER_ROW)
        picks = h = y = None
        if self.conditions.instance:
            picks = np.sort(np.random.default_rng(seed).choice(len(features), min(n_rows, len(features)),
                                                               replace=False))
            n_rows, h = len(picks), np.asarray(features[picks], np.float32)
            if self.conditions.label:
                y = np.asarray(labels)[picks]
        elif self.conditions.label:
            y = np.arange(n_rows) % self.conditions.n_classes
        rep = lambda a: None if a is None else np.repeat(a, PER_ROW, axis=0)  # noqa: E731
        fake = self.generate(n_rows * PER_ROW, seed=seed, labels=rep(y), features=rep(h))
        if picks is None:
            return save_grid(fake, Path(path), nrow=PER_ROW)
        real = np.asarray(images[picks])
        rows = np.concatenate([real[:, None], fake.reshape(n_rows, PER_ROW, *fake.shape[1:])], axis=1)
        return save_grid(rows.reshape(-1, *fake.shape[1:]), Path(path), nrow=PER_ROW + 1)


class _Sampler(nn.Module):
    """G with exactly the inputs it takes, in order (an exported program has no optional inputs)."""

    def __init__(self, G: Generator, conditions: Conditions):
        super().__init__()
        self.G, self.label, self.instance = G, conditions.label, conditions.instance

    def forward(self, z: torch.Tensor, first: torch.Tensor | None = None,
                second: torch.Tensor | None = None) -> torch.Tensor:
        y = first if self.label else None
        h = (second if self.label else first) if self.instance else None
        return self.G(z, y, h)


def _each(a: np.ndarray, n: int, name: str, item_ndim: int, what: str) -> np.ndarray:
    """One condition for all ``n`` (repeated) or one each."""
    a = a[None] if a.ndim == item_ndim else a
    if len(a) == 1:
        a = np.repeat(a, n, axis=0)
    if len(a) != n:
        raise ValueError(f"{name}: {len(a)} conditions for {n} {what}; give 1 or {n}")
    return a
