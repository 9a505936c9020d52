"""What SimCLR and the classifier share: an encoder family of the one trainer (``ganops.train.trainer``).

The trainer keeps the loop, the device and AMP, the checkpoints over every network, optimiser, scheduler
and generator, exact resume and its one policy (a checkpoint made with other parameters or data is
refused, naming what differs), the NaN stop and progress. An encoder family adds what makes an encoder's
training: epochs of shuffled full batches (the ragged last one dropped: BN and the losses want full
batches), AdamW with a linear warmup and a cosine decay by step, and one random stream seeded with ``seed``
for the shuffles and the augmented views. ``fit`` runs it for ``embed.epochs`` epochs (more where that is
fewer than ``embed.min_steps`` updates), logging and checkpointing once an epoch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ganops.core import device as devices
from ganops.core.params import EmbedParams, Params
from ganops.embed.augment import Policy, augment
from ganops.embed.base import MetricLog, to_float
from ganops.models.base import Context, DataInfo, Family, TrainData

logger = logging.getLogger(__name__)

WEIGHT_DECAY = 1e-4
WARMUP_FRACTION = 0.05


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 0 over the remaining steps."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """``lr_at`` as a scheduler the trainer steps and checkpoints: the rate of step t is exactly
    ``lr_at(t, …)`` (a LambdaLR's base·factor would round differently)."""

    def __init__(self, opt: torch.optim.Optimizer, total: int, warmup: int):
        self.total, self.warmup = total, warmup
        super().__init__(opt)

    def get_lr(self) -> list[float]:
        return [lr_at(self.last_epoch, self.total, base, self.warmup) for base in self.base_lrs]


class EncoderFamily(Family):
    """Trains ``encoder`` (and a head on top of it) on the dataset's images, one batch a step."""

    loss_names: ClassVar[tuple[str, ...]] = ("loss",)
    divergence_hint: ClassVar[str] = "Lower embed.lr."
    policy: ClassVar[Policy] = Policy()          # the augmented views

    @classmethod
    def rows(cls, data: TrainData) -> np.ndarray:
        """The images it trains on (all of them; the classifier: the labelled ones)."""
        return np.arange(len(data.images))

    @classmethod
    def check(cls, e: EmbedParams, data: TrainData) -> DataInfo:
        n, c, h, w = data.images.shape
        return DataInfo(n=len(cls.rows(data)), channels=int(c), resolution=int(max(h, w)))

    @classmethod
    def steps_per_epoch(cls, e: EmbedParams, n: int) -> int:
        return max(1, n // min(e.batch_size, n))

    @classmethod
    def epochs(cls, e: EmbedParams, n: int) -> int:
        """``embed.epochs``, raised to reach ``embed.min_steps`` updates: the budget scales with the data, so
        300 images (one batch an epoch) are not ten updates in all."""
        return max(e.epochs, -(-e.min_steps // cls.steps_per_epoch(e, n)))

    def __init__(self, ctx: Context, data: TrainData, info: DataInfo):
        super().__init__(ctx, data, info)
        self.e: EmbedParams = ctx.p.embed
        self.train_rows = self.rows(data)
        self.batch = min(self.e.batch_size, info.n)
        self.per_epoch = self.steps_per_epoch(self.e, info.n)
        # the shuffles and the views: one rng seeded with `seed` (checkpointed by the trainer). On several
        # ranks the shuffles stay one stream (every rank cuts its share of the same batch) and each rank
        # draws its own images' views from a stream of its own.
        self.rng = ctx.rngs.setdefault("views", torch.Generator().manual_seed(ctx.p.seed))
        self.view_rng = self.rng if not ctx.world.grouped else ctx.rngs.setdefault(
            "rank_views", torch.Generator().manual_seed(ctx.rank_seed(ctx.p.seed) + 1))
        self.order: np.ndarray | None = None
        self.drawn = 0                           # batches drawn so far
        self.build(info)

    def build(self, info: DataInfo) -> None:
        """Set ``self.encoder`` and ``self.networks`` (its head too), weights from torch's seeded RNG."""
        raise NotImplementedError

    def loss(self, idx: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        """The batch's loss: ``idx`` its rows, ``x`` its float images in [0, 1] on the device."""
        raise NotImplementedError

    def configure_optimizers(self):
        total = self.epochs(self.e, self.info.n) * self.per_epoch
        warmup = min(total, max(self.per_epoch, int(WARMUP_FRACTION * total)))
        params = [q for net in self.networks.values() for q in net.parameters()]
        # fused: one kernel for all parameters instead of ~10 small ops per tensor (a tenth of a CPU step)
        opt = torch.optim.AdamW(params, lr=self.e.lr, weight_decay=WEIGHT_DECAY,
                                fused=self.ctx.device.type in ("cpu", "cuda"))
        return {"encoder": opt}, {"encoder": WarmupCosine(opt, total, warmup)}

    def next_batch(self) -> tuple[np.ndarray, torch.Tensor]:
        i = self.drawn % self.per_epoch
        if i == 0:
            self.order = self.train_rows[torch.randperm(len(self.train_rows), generator=self.rng).numpy()]
        self.drawn += 1
        batch = self.order[i * self.batch:(i + 1) * self.batch]
        idx = np.sort(batch[self.ctx.share(len(batch))])   # sorted: sequential memory-map reads
        return idx, to_float(self.data.images[idx], self.ctx.device)

    def train_step(self, batch: tuple[np.ndarray, torch.Tensor]) -> Mapping[str, torch.Tensor]:
        idx, x = batch
        opt = self.optimizers["encoder"]
        with devices.autocast(self.ctx.device):
            loss = self.loss(idx, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.detach()}

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """Augmented views of ``x`` under the family's policy, drawn from its rng."""
        return augment(x, self.view_rng, self.policy)

    def in_format(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the trainer's memory format (channels_last on CUDA)."""
        return x.contiguous(memory_format=self.ctx.memory_format)

    def extra_state(self) -> dict[str, Any]:
        order = torch.from_numpy(self.order) if self.order is not None else torch.empty(0, dtype=torch.long)
        return {"drawn": self.drawn, "order": order}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.drawn = int(state["drawn"])
        self.order = state["order"].numpy() if len(state["order"]) else None

    def grid(self, nets):
        raise NotImplementedError("an encoder draws no progress grid")


def fit(family: type[EncoderFamily], data: TrainData, p: Params, device: torch.device,
        checkpoint: Path | None = None, log: MetricLog | None = None,
        on_epoch: Callable[[int, nn.Module], None] | None = None) -> tuple[EncoderFamily, dict[str, Any]]:
    """Train an encoder family for ``embed.epochs`` epochs (at least ``embed.min_steps`` updates) on the one
    trainer: a log line, a metric
    (``<name>_loss`` at the epoch) and a checkpoint every epoch; ``on_epoch(epoch, encoder)`` after each
    (benchmarks). Returns the trained family (networks in eval mode) and its metrics."""
    from ganops.train.trainer import Schedule, Trainer

    e = p.embed
    info = family.check(e, data)
    per_epoch, epochs = family.steps_per_epoch(e, info.n), family.epochs(e, info.n)
    total = epochs * per_epoch
    if epochs > e.epochs:
        # no key names: these settings come from embed.*, evaluator.* or a transfer domain's section
        logger.info("%s: %d epochs instead of the %d set, to make the %d updates its min_steps asks (%d an epoch)",
                    family.name, epochs, e.epochs, e.min_steps, per_epoch)

    def each_epoch(step: int, metrics: dict[str, float]) -> None:
        epoch = step // per_epoch
        logger.info("%s epoch %d/%d: loss %.4f", family.name, epoch, epochs, metrics["loss"])
        if log is not None:
            log(f"{family.name}_loss", metrics["loss"], epoch)
        if on_epoch is not None:
            on_epoch(epoch, trainer.family.encoder)

    schedule = Schedule(steps=total, log_every=per_epoch, checkpoint_every=per_epoch, sample_every=total,
                        epoch_steps=per_epoch)
    trainer = Trainer(p, data, device=device, section="embed", family=family, schedule=schedule,
                      identity_extra=fingerprint(data.images, data.labels))
    res = trainer.run(checkpoint, log=each_epoch)
    fam = trainer.family
    for net in fam.networks.values():
        net.eval()
    history = [{"epoch": h["step"] // per_epoch, "loss": h["loss"]} for h in res.history]
    resumed = (res.resumed_from or 0) // per_epoch
    metrics = {"train_seconds": res.seconds, "epochs": epochs, "final_loss": history[-1]["loss"],
               "seconds_per_epoch": res.seconds / max(1, epochs - resumed), "resumed_from_epoch": resumed,
               "steps": total, "history": history, "worlds": res.worlds}
    return fam, metrics


def fingerprint(images: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """What identifies the images (and labels) beyond their shape, cheaply: a pixel sample's sums (a
    checkpoint of other data is refused even where no upstream hash is known)."""
    n = len(images)
    picks = np.unique(np.linspace(0, n - 1, num=min(n, 64)).astype(np.int64))
    sample = np.asarray(images[picks], dtype=np.uint8)
    return {"data shape": list(images.shape), "data pixel_sample_sum": int(sample.sum(dtype=np.int64)),
            "data pixel_sample_dot": int((sample.reshape(len(picks), -1).astype(np.int64)
                                          * np.arange(1, sample[0].size + 1)).sum()),
            "data labels_sum": None if labels is None else int(np.asarray(labels, np.int64).sum())}
