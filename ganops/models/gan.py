"""The generator families' shared base (DCGAN, cGAN, IC-GAN): one G, one D, an Adam each, and the
canonical PyTorch DCGAN step: ``train.d_steps`` D updates, then one G update on the fake batch of the
last D update. A subclass says only how it conditions (``uses_labels``, ``uses_neighbors``, ``cbn``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ganops.catalog.families import SPECS
from ganops.catalog.losses import get_loss
from ganops.core import device as devices
from ganops.core.params import TrainParams
from ganops.core.pixels import to_uint8
from ganops.models import clusters
from ganops.models.base import Context, DataInfo, Family, TrainData, check_images
from ganops.models.batches import BatchSampler
from ganops.models.blocks import DConfig, Discriminator, GConfig, Generator, check_resolution
from ganops.models.errors import TrainError
from ganops.models.gan_model import GeneratorModel
from ganops.models.lecam import LeCam
from ganops.neighbors.validity import first, inspect_features, inspect_neighbors


@dataclass
class GANBatch:
    """One step's draws: for each D update the real side (x, y, h) and the fake side's conditions."""
    real: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]
    fake: list[tuple[torch.Tensor | None, torch.Tensor | None]]


class GANFamily(Family):
    loss_names: ClassVar[tuple[str, ...]] = ("d_loss", "g_loss", "d_real", "d_fake")
    ema_names: ClassVar[tuple[str, ...]] = ("G",)
    model = GeneratorModel
    cbn: ClassVar[bool] = False                 # conditional batch norm in G
    self_conditions: ClassVar[bool] = False     # takes train.self_condition (unconditional families)
    # what asks for labels and the way out without them, as the user sets it (None: train.family=<name>)
    labels_key: ClassVar[str | None] = None
    without_labels: ClassVar[str] = "use train.family=dcgan or icgan"
    divergence_hint: ClassVar[str] = ("Lower train.lr_g / train.lr_d, or try train.loss=hinge or "
                                      "train.spectral_norm=true.")

    # ------------------------------------------------------------ what the family reads

    @classmethod
    def uses_labels(cls, tp: TrainParams) -> bool:
        return False

    @classmethod
    def uses_neighbors(cls, tp: TrainParams) -> bool:
        return SPECS[cls.name].needs_neighbors

    @classmethod
    def check(cls, tp: TrainParams, data: TrainData) -> DataInfo:
        n, c, h, w = check_images(data.images)
        res = check_resolution(h, w)
        n_classes = feat_dim = 0
        if cls.uses_labels(tp):
            n_classes = _check_labels(data.labels, n, cls.labels_key or f"train.family={cls.name}", cls.without_labels)
        if cls.uses_neighbors(tp):
            feat_dim = _check_neighbors(data.features, data.neighbors, n, f"train.family={cls.name}")
        if n < 2:
            raise TrainError(f"the dataset has {n} image(s); training needs at least 2")
        return DataInfo(n=n, channels=c, resolution=res, n_classes=n_classes, feat_dim=feat_dim)

    @classmethod
    def network_configs(cls, tp: TrainParams, info: DataInfo, cluster_dim: int = 0) -> tuple[GConfig, DConfig]:
        """``cluster_dim`` > 0: ``info.n_classes`` are clusters of pooled images of that size (self-conditioned)."""
        common = dict(resolution=info.resolution, channels=info.channels, n_classes=info.n_classes,
                      feat_dim=info.feat_dim)
        g = GConfig(filters=tp.g_filters, z_dim=tp.z_dim, cond_dim=tp.h_dim, self_conditioned=cluster_dim > 0,
                    cbn=(cls.cbn or cluster_dim > 0) and (info.n_classes > 0 or info.feat_dim > 0), **common)
        d = DConfig(filters=tp.d_filters, spectral_norm=tp.spectral_norm, cluster_dim=cluster_dim, **common)
        return g, d

    # ------------------------------------------------------------ networks, optimisers, data

    def __init__(self, ctx: Context, data: TrainData, info: DataInfo):
        super().__init__(ctx, data, info)
        tp = self.tp = ctx.p.train
        self.batch = tp.batch_size
        labels, centroids = data.labels, None
        self.self_conditioned = self.self_conditions and tp.self_condition > 0
        if self.self_conditioned:       # k-means clusters of the images stand in for labels (Liu et al. 2020)
            k = clusters.count(tp.self_condition, info.n)
            labels, centroids = clusters.cluster(data.images, k, ctx.p.seed)
            info = self.info = replace(info, n_classes=k)
        g_cfg, d_cfg = self.network_configs(tp, info, 0 if centroids is None else centroids.shape[1])
        self.G, self.D = Generator(g_cfg), Discriminator(d_cfg)     # G first: the init order is the seed's
        if self.self_conditioned:
            self._set_clusters(labels, centroids)
        self.networks = {"G": self.G, "D": self.D}
        self.configs = {"G": g_cfg.to_dict(), "D": d_cfg.to_dict()}
        self.loss = get_loss(tp.loss)
        icgan = self.uses_neighbors(tp)
        self.batches = BatchSampler(data.images, labels, data.features if icgan else None,
                                    data.neighbors if icgan else None, use_labels=info.n_classes > 0,
                                    use_features=icgan, device=ctx.device, rng=ctx.rngs["data"],
                                    share=ctx.share, class_swap=tp.class_swap if icgan else 0.0)
        self._grid = self._grid_inputs()
        # what D sees of every image, real and fake, in D's step and G's (none: the images themselves)
        self.aug = ctx.augment(tp.augment, info.channels, tp.batch_size)
        # MSGAN's term, for IC-GAN: one instance is a narrow condition, whose samples collapse onto one image
        # (make run: icgan recall 0.47 → 0.64); so is a cluster (self-conditioned DCGAN); a label is broad, and
        # cGAN lost precision and recall with it
        self.mode_seeking = tp.mode_seeking if icgan or self.self_conditioned else 0.0
        self.lecam = LeCam(tp.lecam, tp.lecam_decay, ctx.device) if tp.lecam else None
        if tp.augment.kind == "ada":
            self.loss_names = (*type(self).loss_names, "ada_p")

    def _set_clusters(self, assign: np.ndarray, centroids: np.ndarray) -> None:
        """The clusters' frequencies into G (it draws clusters from z at them), the centroids into D."""
        counts = np.bincount(assign, minlength=self.info.n_classes).astype(np.float64)
        with torch.no_grad():
            self.G.cdf.copy_(torch.from_numpy(np.cumsum(counts) / counts.sum()))
            self.D.centroids.copy_(torch.from_numpy(centroids))
        self.assign = assign

    def extra_state(self):
        state = {"augment": self.aug.state()}
        if self.lecam is not None:
            state["lecam"] = self.lecam.state()
        if self.self_conditioned:       # k-means may not repeat bit for bit on another machine or thread count
            state["clusters"] = torch.from_numpy(self.assign.astype(np.int32))
        return state

    def load_extra_state(self, state) -> None:
        if "augment" in state:
            self.aug.load(state["augment"], self.ctx.device)
        if self.lecam is not None and "lecam" in state:
            self.lecam.load(state["lecam"])
        if "clusters" in state:         # D's centroids and G's frequencies came back with their weights
            self.assign = state["clusters"].numpy().astype(np.int64)
            self.batches.labels = torch.as_tensor(self.assign, device=self.batches.labels.device)

    def configure_optimizers(self):
        tp = self.tp
        return ({"G": torch.optim.Adam(self.G.parameters(), lr=tp.lr_g, betas=(tp.beta1, tp.beta2)),
                 "D": torch.optim.Adam(self.D.parameters(), lr=tp.lr_d, betas=(tp.beta1, tp.beta2))}, {})

    def activation_bytes(self) -> int:
        """D's step holds G's graph of the batch (G steps from it) and D's of the real and the fake batch."""
        g, d = (cls.from_dict(self.configs[n]) for cls, n in ((GConfig, "G"), (DConfig, "D")))
        return 4 * (self.batch // self.ctx.world.size) * (g.activations() + 2 * d.activations())

    def noise(self, n: int) -> torch.Tensor:
        """This rank's share of the noise of a global batch of ``n``."""
        z = torch.randn(n, self.tp.z_dim, generator=self.ctx.rngs["noise"])
        return z[self.ctx.share(n)].to(self.ctx.device)

    def next_batch(self) -> GANBatch:
        B, real, fake = self.tp.batch_size, [], []
        for _ in range(self.tp.d_steps):
            real.append(self.batches.real(B))
            fake.append(self._fake_conditions(B))
        if self.mode_seeking:       # G's batch: rows 2m and 2m + 1 share a condition (the mode-seeking pairs)
            fake[-1] = tuple(None if c is None else c[0::2].repeat_interleave(2, dim=0)[:len(c)] for c in fake[-1])
        return GANBatch(real, fake)

    def _fake_conditions(self, n: int):
        """(y, h) of a fake batch; self-conditioned: none, G draws its cluster from z, as it will when sampling."""
        return (None, None) if self.self_conditioned else self.batches.fake_conditions(n)

    # ------------------------------------------------------------ the step

    def train_step(self, batch: GANBatch) -> Mapping[str, torch.Tensor]:
        G, D, A, dev, fmt = self.G, self.D, self.aug, self.ctx.device, self.ctx.memory_format
        opt_g, opt_d = self.optimizers["G"], self.optimizers["D"]
        D.requires_grad_(True)
        for k, ((x, y, h), (yf, hf)) in enumerate(zip(batch.real, batch.fake)):
            z = self.noise(self.batch)
            last = k == len(batch.real) - 1
            if self.self_conditioned:
                if last and self.mode_seeking:      # the mode-seeking pairs share z's first coordinate: its cluster
                    z[1::2, 0] = z[0::2, 0][: len(z) // 2]
                yf = clusters.cluster_of_noise(z, G.cdf)
            with devices.autocast(dev):
                with torch.set_grad_enabled(last):      # only the last fake batch feeds G's update
                    fake = G(z, yf, hf)
                real_logits = D(A(x).contiguous(memory_format=fmt), y, h)
                fake_logits = D(A(fake.detach()), yf, hf)
                r, f = real_logits.float(), fake_logits.float()
                d_loss = self.loss.d(r, f)
                if self.lecam is not None:
                    d_loss = d_loss + self.lecam(r, f)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            A.observe(real_logits, self.ctx.world)
        D.requires_grad_(False)
        with devices.autocast(dev):
            g_loss = self.loss.g(D(A(fake), yf, hf).float())
        if self.mode_seeking:
            g_loss = g_loss + self.mode_seeking * _mode_seeking(fake.float(), z, self.ctx.world)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        out = {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
               "d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
        if "ada_p" in self.loss_names:
            out["ada_p"] = torch.tensor(A.p, device=dev)
        return out

    @torch.no_grad()
    def finish_ema(self, ema: Mapping[str, nn.Module]) -> None:
        """Standing statistics (Brock et al. 2019, BigGAN): the EMA G samples in eval mode, with batch-norm
        statistics that were copied from the live G, whose weights they fit, not the average's. Re-estimate
        them as G's cumulative mean over ``train.standing_stats`` batches of the EMA G's own samples, drawn
        as training draws its fakes (1,000 MNIST images, 1,500 steps, five seeds: cgan's FID lower at nine
        runs of ten, by up to 20%; README, Small datasets). The training's RNGs are restored after."""
        G = ema.get("G")
        norms = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if G is not None else []
        if not self.tp.standing_stats or not norms:
            return
        rngs = {k: r.get_state() for k, r in self.ctx.rngs.items()}
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None                  # a cumulative average over the batches, not an EMA of them
        G.train()
        try:
            for _ in range(self.tp.standing_stats):
                z = self.noise(self.batch)
                y, h = self._fake_conditions(self.batch)
                with devices.autocast(self.ctx.device):
                    G(z, y, h)
        finally:
            G.eval()
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            for k, r in self.ctx.rngs.items():
                r.set_state(rngs[k])

    # ------------------------------------------------------------ the progress grid

    def _grid_inputs(self):
        """Fixed z and conditions of the progress grids (their own generator: training RNG untouched)."""
        tp, info, dev = self.tp, self.info, self.ctx.device
        n = tp.grid_size
        rng = torch.Generator().manual_seed(self.ctx.p.seed + 3)
        z = torch.randn(n, tp.z_dim, generator=rng).to(dev)
        y = h = None
        nrow = max(1, int(math.ceil(math.sqrt(n))))
        if self.uses_neighbors(tp):                     # a row per instance: h_i (and its own label)
            inst = torch.randint(0, info.n, (nrow,), generator=rng)[torch.arange(n) // nrow]
            h = self.batches.features[inst.to(dev)]
            if self.batches.labels is not None:
                y = self.batches.labels[inst.to(dev)]
        elif self.batches.labels is not None and not self.self_conditioned:   # a column per class
            nrow = info.n_classes
            y = (torch.arange(n) % info.n_classes).to(dev)
        return z, y, h, nrow

    def grid(self, nets: Mapping[str, nn.Module]) -> tuple[np.ndarray, int]:
        z, y, h, nrow = self._grid
        with devices.autocast(self.ctx.device):
            out = nets["G"](z, y, h)
        return to_uint8(out), nrow


def _mode_seeking(fake: torch.Tensor, z: torch.Tensor, world, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019) over the pairs (2m, 2m + 1), which share a condition: the inverse of
    the images' mean absolute difference over the noises', small when two noises give two images.

    On several ranks the mean runs over every rank's pairs, as one process's over the global batch: each rank
    returns the global term's value with the gradient of its own pairs' share (the inverse is not linear, so
    averaging each rank's own inverse would train something else)."""
    m = len(fake) // 2
    a, b = fake[0:2 * m:2], fake[1:2 * m:2]
    ratio = ((a - b).abs().mean(dim=(1, 2, 3)) / (z[0:2 * m:2] - z[1:2 * m:2]).abs().mean(dim=1)).mean()
    if not world.grouped:
        return 1.0 / (ratio + eps)
    value = 1.0 / (world.mean(ratio.detach().clone()) + eps)
    return value - value * value * (ratio - ratio.detach())     # d(1/(M + ε)) = -dM / (M + ε)², M the ranks' mean


def _check_labels(labels, n: int, key: str, other: str) -> int:
    if labels is None or len(labels) == 0 or bool(np.all(np.asarray(labels) < 0)):
        raise TrainError(f"{key} needs class labels, but the dataset is unlabelled (every label is -1). "
                         f"Use a labelled dataset (data.dataset), or {other}.")
    labels = np.asarray(labels)
    if len(labels) != n:
        raise TrainError(f"{key}: {len(labels)} labels for {n} images; run `ganops stage dataset` again")
    missing = int((labels < 0).sum())
    if missing:
        raise TrainError(f"{key} needs a label for every image, but {missing} of {n} images have none (-1). "
                         f"Use a fully labelled dataset, or a family that needs no labels.")
    return int(labels.max()) + 1


def _check_neighbors(features, neighbors, n: int, key: str) -> int:
    if features is None or neighbors is None:
        what = "instance embeddings (features.npy)" if features is None else "k-NN neighborhoods (indices.npy)"
        raise TrainError(
            f"{key} needs {what}, and none were given. Run `ganops stage embeddings` and then "
            f"`ganops stage neighbors` (or materialize the neighbors asset) first, or set train.family "
            f"to dcgan or cgan.")
    # memory maps stay memory maps, the features' shards stay shards
    features = features if hasattr(features, "shape") else np.asarray(features)
    neighbors = neighbors if hasattr(neighbors, "shape") else np.asarray(neighbors)
    name = _features_name(features)
    if features.ndim != 2 or features.shape[0] != n:
        raise TrainError(f"{key}: {name} has shape {features.shape} but the dataset has {n} "
                         f"images; the embeddings are stale. Run `ganops stage embeddings` and "
                         f"`ganops stage neighbors` again.")
    if neighbors.ndim != 2 or neighbors.shape[0] != n or neighbors.shape[1] < 1:
        raise TrainError(f"{key}: indices.npy has shape {neighbors.shape} but the dataset has {n} "
                         f"images; the neighborhoods are stale. Run `ganops stage neighbors` again.")
    found = inspect_neighbors(neighbors, n)
    if len(found.out_of_range_rows):
        raise TrainError(f"{key}: indices.npy holds indices outside 0..{n - 1} (rows "
                         f"{first(found.out_of_range_rows)}); run `ganops stage neighbors` again.")
    if len(found.self_rows):
        raise TrainError(f"{key}: indices.npy lists instances among their own neighbors (rows "
                         f"{first(found.self_rows)}); IC-GAN's neighborhoods exclude the instance itself. Run "
                         "`ganops stage neighbors` again.")
    if len(inspect_features(features).non_finite_rows):
        raise TrainError(f"{key}: {name} holds NaN or inf; run `ganops stage embeddings` again.")
    return int(features.shape[1])


def _features_name(features) -> str:
    """How the embeddings artifact holds the features: features.npy, or the folder of its shards."""
    files = getattr(features, "files", None) or []
    return f"{files[0].parent.name}/ ({len(files)} shards)" if len(files) > 1 else "features.npy"
