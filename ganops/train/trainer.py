"""The one generic GAN trainer: every family's training step, checkpoints, exact resume, EMA, AMP.

``train(p, images, labels, features, neighbors, ...)`` builds the family's networks, then runs
``train.steps`` generator updates, each after ``train.d_steps`` discriminator updates, as the
canonical PyTorch DCGAN loop does: the fake batch of the last D update also feeds the G update.
Adam(lr, (β1, β2)) for both. It knows nothing of MLflow or Dagster: metrics go to ``log(step,
metrics)`` every ``log_every`` steps, sample grids to ``sample_cb(step, images_uint8, nrow)`` every
``sample_every`` steps (both also at the last step).

Randomness comes from two seeded ``torch.Generator``s (data sampling, noise) and torch's global
RNG (weight init); all of them, with numpy's and Python's, are checkpointed, so on CPU 2N straight
steps and N steps + resume + N steps give bit-identical weights. On CUDA the step runs under bf16
autocast with channels_last tensors.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganops import device as devices
from ganops.losses import get_loss
from ganops.models import get_family
from ganops.models.blocks import Discriminator, Generator
from ganops.models.errors import TrainError
from ganops.params import Params
from ganops.progress import Progress
from ganops.train import checkpoint as ckpt
from ganops.train.sampling import Sampler, to_uint8

LogFn = Callable[[int, dict[str, float]], None]
SampleFn = Callable[[int, np.ndarray, int], None]

# keys of train params that do not change the weights (a resumed run may change them)
_SCHEDULE_KEYS = {"steps", "log_every", "sample_every", "checkpoint_every", "n_samples"}
_METRICS = ("d_loss", "g_loss", "d_real", "d_fake")

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    family: str
    g_config: dict
    d_config: dict
    g_state: dict[str, torch.Tensor]
    d_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None
    steps: int
    final_losses: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None
    seconds: float = 0.0
    checkpoint: Path | None = None
    identity: dict[str, Any] = field(default_factory=dict)

    def weights(self) -> dict[str, Any]:
        """What ``checkpoint.save_weights`` writes and ``sample.generate`` reads."""
        return {"family": self.family, "g_config": self.g_config, "d_config": self.d_config,
                "g": self.g_state, "d": self.d_state, "ema": self.ema_state, "steps": self.steps,
                "final_losses": self.final_losses, "identity": self.identity}


class Trainer:
    def __init__(self, p: Params, images, labels=None, features=None, neighbors=None, *,
                 device: torch.device | str | None = None, identity_extra: dict[str, Any] | None = None):
        tp = p.train
        self.p, self.tp = p, tp
        self.family = get_family(tp.family)
        self.info = self.family.check(tp, images, labels, features, neighbors)
        self.device = devices.resolve(p.device) if device is None else torch.device(device)
        self.loss = get_loss(tp.loss)
        self.g_cfg, self.d_cfg = self.family.configs(tp, self.info)

        random.seed(p.seed)
        np.random.seed(p.seed)
        torch.manual_seed(p.seed)
        self.G = Generator(self.g_cfg).to(self.device)
        self.D = Discriminator(self.d_cfg).to(self.device)
        self.ema = None
        if tp.ema:
            self.ema = Generator(self.g_cfg).to(self.device)
            self.ema.load_state_dict(self.G.state_dict())
            self.ema.requires_grad_(False).eval()
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            for m in (self.G, self.D, self.ema):
                if m is not None:
                    m.to(memory_format=torch.channels_last)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=tp.lr_g, betas=(tp.beta1, tp.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=tp.lr_d, betas=(tp.beta1, tp.beta2))

        self.gens = {"data": torch.Generator().manual_seed(p.seed + 1),
                     "noise": torch.Generator().manual_seed(p.seed + 2)}
        icgan = self.family.uses_neighbors(tp)
        self.sampler = Sampler(images, labels, features if icgan else None, neighbors if icgan else None,
                               use_labels=self.info.n_classes > 0, use_features=icgan,
                               device=self.device, generator=self.gens["data"])
        self._grid = self._grid_inputs()

        self.step = 0
        self.history: list[dict[str, float]] = []
        self.window = [0.0] * (len(_METRICS) + 1)       # running sums since the last log, then count
        ident = {f"train.{k}": v for k, v in tp.model_dump().items() if k not in _SCHEDULE_KEYS}
        ident.update({"seed": p.seed, **{f"data {k}": v for k, v in vars(self.info).items()},
                      **(identity_extra or {})})
        self.identity = json_roundtrip(ident)

    # ------------------------------------------------------------ inputs

    def noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.tp.z_dim, generator=self.gens["noise"]).to(self.device)

    def _grid_inputs(self):
        """Fixed z and conditions of the sample grids (their own generator: training RNG untouched)."""
        n, info = self.tp.n_samples, self.info
        gen = torch.Generator().manual_seed(self.p.seed + 3)
        z = torch.randn(n, self.tp.z_dim, generator=gen).to(self.device)
        y = h = None
        nrow = max(1, int(math.ceil(math.sqrt(n))))
        if self.family.uses_neighbors(self.tp):        # a row per instance: h_i (and its own label)
            inst = torch.randint(0, info.n, (nrow,), generator=gen)[torch.arange(n) // nrow]
            h = self.sampler.features[inst.to(self.device)]
            if self.sampler.labels is not None:
                y = self.sampler.labels[inst.to(self.device)]
        elif self.sampler.labels is not None:           # a column per class
            nrow = info.n_classes
            y = (torch.arange(n) % info.n_classes).to(self.device)
        return z, y, h, nrow

    # ------------------------------------------------------------ the step

    def train_step(self) -> torch.Tensor:
        """``d_steps`` D updates then one G update; returns [d_loss, g_loss, D(real), D(fake)] (detached)."""
        tp, G, D, B = self.tp, self.G, self.D, self.tp.batch_size
        cl = torch.channels_last if self.channels_last else torch.contiguous_format
        D.requires_grad_(True)
        for k in range(tp.d_steps):
            x, y, h = self.sampler.real(B)
            yf, hf = self.sampler.fake_conditions(B)
            z = self.noise(B)
            last = k == tp.d_steps - 1
            with devices.autocast(self.device):
                with torch.set_grad_enabled(last):
                    fake = G(z, yf, hf)
                real_logits = D(x.contiguous(memory_format=cl), y, h)
                fake_logits = D(fake.detach(), yf, hf)
                d_loss = self.loss.d(real_logits.float(), fake_logits.float())
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        D.requires_grad_(False)
        with devices.autocast(self.device):
            g_loss = self.loss.g(D(fake, yf, hf).float())
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self.step += 1
        self._update_ema()
        return torch.stack([d_loss.detach(), g_loss.detach(),
                            real_logits.detach().float().mean(), fake_logits.detach().float().mean()])

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        t = self.step - self.tp.ema_start
        # before ema_start the EMA copies G; then the decay warms up as (1+t)/(10+t) (no init bias)
        decay = min(self.tp.ema_decay, (1 + t) / (10 + t)) if t > 0 else 0.0
        ema_p, g_p = list(self.ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema_p, g_p, 1.0 - decay)
        for eb, gb in zip(self.ema.buffers(), self.G.buffers()):
            eb.copy_(gb)

    @torch.no_grad()
    def samples(self) -> tuple[np.ndarray, int]:
        """The fixed sample grid from the EMA (or G), in eval mode: uint8 images and images per row."""
        net = self.ema if self.ema is not None else self.G
        was_training = net.training
        net.eval()
        z, y, h, nrow = self._grid
        with devices.autocast(self.device):
            out = net(z, y, h)
        net.train(was_training)
        return to_uint8(out), nrow

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "identity": self.identity, "family": self.family.name,
                "g_config": self.g_cfg.to_dict(), "d_config": self.d_cfg.to_dict(),
                "g": devices.cpu_state_dict(self.G), "d": devices.cpu_state_dict(self.D),
                "ema": devices.cpu_state_dict(self.ema) if self.ema is not None else None,
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "rng": ckpt.rng_state(self.gens), "history": self.history, "window": self.window}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.G.load_state_dict(s["g"])
        self.D.load_state_dict(s["d"])
        if self.ema is not None:
            self.ema.load_state_dict(s["ema"])
        self.opt_g.load_state_dict(s["opt_g"])
        self.opt_d.load_state_dict(s["opt_d"])
        ckpt.set_rng_state(s["rng"], self.gens)
        self.step = int(s["step"])
        self.history = list(s["history"])
        self.window = list(s["window"])

    def result(self, **kw) -> TrainResult:
        last = self.history[-1] if self.history else {}
        return TrainResult(family=self.family.name, g_config=self.g_cfg.to_dict(), d_config=self.d_cfg.to_dict(),
                           g_state=devices.cpu_state_dict(self.G), d_state=devices.cpu_state_dict(self.D),
                           ema_state=devices.cpu_state_dict(self.ema) if self.ema is not None else None,
                           steps=self.step, final_losses={k: last[k] for k in _METRICS if k in last},
                           history=list(self.history), identity=self.identity, **kw)


def json_roundtrip(obj: Any) -> Any:
    return json.loads(ckpt.identity_json(obj))


def _warm_start(tr: Trainer, init: dict[str, Any]) -> None:
    want, have = tr.g_cfg.to_dict(), init.get("g_config", {})
    if want != have or tr.d_cfg.to_dict() != init.get("d_config", {}):
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise TrainError(f"train.warm_start: the champion's networks differ from these parameters' in {diff}; "
                         "train with the champion's architecture or set train.warm_start=false")
    tr.G.load_state_dict(init["g"])
    tr.D.load_state_dict(init["d"])
    if tr.ema is not None:
        tr.ema.load_state_dict(init["ema"] if init.get("ema") is not None else init["g"])


def train(p: Params, images, labels=None, features=None, neighbors=None, *,
          device: torch.device | str | None = None, checkpoint_path: Path | None = None,
          log: LogFn | None = None, sample_cb: SampleFn | None = None, progress: bool | None = None,
          identity_extra: dict[str, Any] | None = None, init: dict[str, Any] | None = None) -> TrainResult:
    """Train ``p.train.family`` for ``p.train.steps`` G updates, resuming from ``checkpoint_path`` when
    it holds a checkpoint of the same parameters and data (and refusing one of others).

    ``init``: weights (``save_weights``' layout) to start G, D and the EMA from instead of a fresh
    initialisation (warm start from the registry's champion); the optimisers start fresh.

    ``progress``: None shows a bar on a terminal and INFO log lines every 5% elsewhere (see
    ``ganops.progress``), True forces the bar, False shows nothing."""
    t0 = time.perf_counter()
    tr = Trainer(p, images, labels, features, neighbors, device=device, identity_extra=identity_extra)
    tp = tr.tp
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    resumed = None
    if init is not None:
        _warm_start(tr, init)
    if path is not None and path.exists():
        state = ckpt.load(path)
        ckpt.check_identity(path, state.get("identity", {}), tr.identity)
        if state["step"] > tp.steps:
            raise TrainError(f"{path} is at step {state['step']}, past train.steps={tp.steps}; raise "
                             f"train.steps or delete the checkpoint to train from scratch")
        tr.load_state_dict(state)
        resumed = tr.step
        logger.info("train %s: resuming from step %d of %d (checkpoint %s)", tp.family, resumed, tp.steps, path)
    last_ckpt = resumed

    bar = Progress(f"train {tp.family}", tp.steps, initial=tr.step, enabled=progress)
    if tr.history:                      # a resumed run shows the checkpoint's losses until it logs its own
        bar.set_postfix(d_loss=tr.history[-1]["d_loss"], g_loss=tr.history[-1]["g_loss"])
    tick, tick_step = time.perf_counter(), tr.step
    # The losses stay on the device and are summed there; they reach the host (one sync) every
    # `check_every` steps and at every log/checkpoint boundary. On CPU a sync costs nothing, so every
    # step is checked and a NaN is reported at its exact step; on a GPU, within the last few steps.
    check_every = 1 if tr.device.type == "cpu" else tp.log_every
    pending, pending_n = None, 0
    try:
        while tr.step < tp.steps:
            values = tr.train_step()
            pending = values if pending is None else pending + values
            pending_n += 1
            final = tr.step == tp.steps
            boundary = final or tr.step % tp.log_every == 0 or (path is not None and tr.step % tp.checkpoint_every == 0)
            if not (boundary or tr.step % check_every == 0):
                bar.update(1)
                continue
            sums, pending, n_summed = pending.tolist(), None, pending_n
            pending_n = 0
            if not all(map(math.isfinite, sums)):
                where = (f"the last good checkpoint is {path} (step {last_ckpt})" if last_ckpt is not None
                         else "no checkpoint had been written yet" + (f" (train.checkpoint_every={tp.checkpoint_every})"
                                                                      if path is not None else ""))
                at = f"step {tr.step}" if n_summed == 1 else f"steps {tr.step - n_summed + 1}..{tr.step}"
                raise TrainError(
                    f"non-finite loss at {at} (d_loss={sums[0]}, g_loss={sums[1]}); training "
                    f"stopped, {where}. Lower train.lr_g / train.lr_d, or try train.loss=hinge or "
                    f"train.spectral_norm=true.")
            for i, v in enumerate(sums):
                tr.window[i] += v
            tr.window[-1] += n_summed
            if path is not None and (tr.step % tp.checkpoint_every == 0 or final):
                if tr.step % tp.log_every == 0 or final:
                    _close_window(tr)
                ckpt.save(path, tr.state_dict())
                last_ckpt = tr.step
            if tr.step % tp.log_every == 0 or final:
                entry = _close_window(tr)
                now = time.perf_counter()
                metrics = {**{k: entry[k] for k in _METRICS},
                           "steps_per_s": (tr.step - tick_step) / max(now - tick, 1e-9)}
                tick, tick_step = now, tr.step
                bar.set_postfix(d_loss=entry["d_loss"], g_loss=entry["g_loss"])
                if log is not None:
                    log(tr.step, metrics)
            bar.update(1)       # after this step's losses are known: the last line shows the final ones
            if sample_cb is not None and (tr.step % tp.sample_every == 0 or final):
                sample_cb(tr.step, *tr.samples())
    finally:
        bar.close()
    return tr.result(resumed_from=resumed, seconds=time.perf_counter() - t0, checkpoint=path)


def _close_window(tr: Trainer) -> dict[str, float]:
    """Turn the running sums into a history entry (idempotent within a step)."""
    if tr.history and tr.history[-1]["step"] == tr.step:
        return tr.history[-1]
    count = max(tr.window[-1], 1.0)
    entry = {"step": tr.step, **{k: tr.window[i] / count for i, k in enumerate(_METRICS)}}
    tr.history.append(entry)
    tr.window = [0.0] * (len(_METRICS) + 1)
    return entry
