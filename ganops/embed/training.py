"""What SimCLR and the classifier share: the learning-rate schedule and resumable checkpoints.

A checkpoint holds the model, optimizer, epoch and the augmentation/shuffling generator's state,
plus a fingerprint of the parameters and data it was made with. It is written atomically after
every epoch; a run whose fingerprint matches resumes from it, a run whose fingerprint differs
starts over (the stale checkpoint would describe another training run), and a finished training
deletes it.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops.artifacts import atomic_torch_save
from ganops.device import autocast
from ganops.embed.base import EncoderError, MetricLog, to_float
from ganops.params import Params
from ganops.progress import Progress

logger = logging.getLogger(__name__)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warmup, then cosine decay to 0 over the remaining steps."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def fingerprint(images: np.ndarray, extra: dict[str, Any]) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: params + the data's shape and a pixel sample."""
    n = len(images)
    picks = np.unique(np.linspace(0, n - 1, num=min(n, 64)).astype(np.int64))
    sample = np.asarray(images[picks], dtype=np.uint8)
    return {**extra, "shape": list(images.shape),
            "pixel_sample_sum": int(sample.sum(dtype=np.int64)),
            "pixel_sample_dot": int((sample.reshape(len(picks), -1).astype(np.int64)
                                     * np.arange(1, sample[0].size + 1)).sum())}


def load_checkpoint(path: Path | None, fp: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it was made with fingerprint ``fp``, else None."""
    if path is None or not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        # a truncated or foreign file: start over rather than fail the stage
        logger.warning("ignoring unreadable checkpoint %s (%s); training from scratch", path, e)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fp:
        logger.warning("checkpoint %s was made with other parameters or data; training from scratch", path)
        return None
    return state


def training_state(model: nn.Module, opt: torch.optim.Optimizer, epoch: int, g: torch.Generator,
                   fp: dict[str, Any], history: list[dict[str, float]], seconds: float) -> dict[str, Any]:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
            "generator": g.get_state(), "fingerprint": fp, "history": history, "seconds": seconds}


def restore(state: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, g: torch.Generator) -> None:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    g.set_state(state["generator"])


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def fit(images: np.ndarray, p: Params, device: torch.device, modules: nn.ModuleDict,
        loss_fn: Callable[[np.ndarray, torch.Tensor, torch.Generator], torch.Tensor], name: str,
        fp_extra: dict[str, Any], checkpoint: Path | None = None, log: MetricLog | None = None,
        on_epoch: Callable[[int], None] | None = None, rows: np.ndarray | None = None,
        weight_decay: float = 1e-4, warmup_fraction: float = 0.05) -> dict[str, Any]:
    """The epoch loop both trained encoders share: shuffled full batches, AdamW with warmup + cosine,
    an atomic checkpoint after every epoch, resume when the checkpoint matches, metrics per epoch.

    ``loss_fn(indices, x, generator)`` gets the batch's row indices, its float images in [0, 1] on
    ``device`` and the generator for augmentations. ``rows`` restricts training to some images.
    The caller seeds torch (weight initialisation) before building ``modules``; every random number
    drawn here comes from one generator seeded with ``p.seed``, saved in the checkpoint, so a resumed
    run draws the same shuffles and views as an uninterrupted one. Progress (``ganops.progress``): a bar
    per epoch on a terminal, INFO log lines every 5% of the whole training elsewhere.
    """
    e = p.embed
    rows = np.arange(len(images)) if rows is None else rows
    n = len(rows)
    batch = min(e.batch_size, n)
    steps_per_epoch = max(1, n // batch)        # drop the ragged last batch: BN and the losses want full batches
    total = e.epochs * steps_per_epoch
    warmup = min(total, max(steps_per_epoch, int(warmup_fraction * total)))
    # fused: one kernel for all parameters instead of ~10 small ops per tensor (a tenth of a CPU step).
    opt = torch.optim.AdamW(modules.parameters(), lr=e.lr, weight_decay=weight_decay,
                            fused=device.type in ("cpu", "cuda"))
    g = generator(p.seed)

    fp = fingerprint(images, {"encoder": name, "seed": p.seed, "dim": e.dim, "epochs": e.epochs,
                              "batch_size": e.batch_size, "lr": e.lr, "rows": n, **fp_extra})
    state = load_checkpoint(checkpoint, fp)
    start, history, spent = 0, [], 0.0
    if state is not None:
        restore(state, modules, opt, g)
        start, history, spent = state["epoch"], list(state["history"]), float(state["seconds"])
        logger.info("train %s: resuming from epoch %d of %d (checkpoint %s)", name, start, e.epochs, checkpoint)

    bar = Progress(f"train {name}", total, initial=start * steps_per_epoch)
    if history:                         # a resumed run shows the checkpoint's loss until its first epoch ends
        bar.set_postfix(loss=history[-1]["loss"])
    for epoch in range(start, e.epochs):
        bar.section(f"epoch {epoch + 1}/{e.epochs}", steps_per_epoch)
        t0 = time.perf_counter()
        modules.train()
        order = rows[torch.randperm(n, generator=g).numpy()]
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, e.lr, warmup)
            idx = np.sort(order[i * batch:(i + 1) * batch])       # sorted: sequential reads from a memory map
            x = to_float(images[idx], device)
            with autocast(device):
                loss = loss_fn(idx, x, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().float()
            if i + 1 < steps_per_epoch:     # the epoch's last step is counted below, with the epoch's loss
                bar.update()
        mean_loss = float(loss_sum) / steps_per_epoch
        bar.update(loss=mean_loss)
        if not math.isfinite(mean_loss):
            raise EncoderError(f"{name} training loss became {mean_loss} at epoch {epoch + 1}; "
                               f"lower embed.lr (now {e.lr})")
        seconds = time.perf_counter() - t0
        spent += seconds
        history.append({"epoch": epoch + 1, "loss": mean_loss, "seconds": seconds})
        logger.info("%s epoch %d/%d: loss %.4f (%.1fs)", name, epoch + 1, e.epochs, mean_loss, seconds)
        # Checkpoint before reporting: an interruption inside the callbacks loses nothing.
        if checkpoint is not None and epoch + 1 < e.epochs:
            atomic_torch_save(checkpoint, training_state(modules, opt, epoch + 1, g, fp, history, spent))
        if log is not None:
            log(f"{name}_loss", mean_loss, epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch + 1)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)      # training finished: nothing left to resume
    modules.eval()
    return {"train_seconds": spent, "epochs": e.epochs,
            "final_loss": history[-1]["loss"] if history else float("nan"),
            "seconds_per_epoch": spent / max(1, len(history)), "resumed_from_epoch": start,
            "steps": total, "history": history}


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
