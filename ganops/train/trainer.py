"""The one trainer: the loop, device, AMP, EMA, checkpoints and exact resume around a family's step, for
every network ganops trains: the generator families (``train.*``), the translators (``transfer.*``), and
the encoders and evaluators (``ganops.embed.training``).

``train(p, images, labels, features, neighbors, ...)`` builds the family of ``train.family``
(``ganops.models``: its networks by name, their optimisers and its ``train_step``), then runs
``train.steps`` steps (a ``Schedule``). It knows nothing of MLflow or Dagster: the family's losses go to
``log(step, metrics)`` every ``log_every`` steps, its progress grid to ``sample_cb(step, images_uint8,
nrow)`` every ``sample_every`` steps (both also at the last step).

One resume policy for every network: a checkpoint of the same parameters and data is resumed exactly;
one made with others is refused with the keys that differ, never silently trained over.

Randomness comes from two seeded ``torch.Generator``s (data sampling, noise) and torch's global
RNG (weight init); all of them, with numpy's and Python's, are checkpointed, so on CPU 2N straight
steps and N steps + resume + N steps give bit-identical weights. On CUDA the step runs under bf16
autocast with channels_last tensors (on the CPU too for the generator families, where it is faster).

On several processes (``ganops.core.distributed``: torchrun and the launchers that set its variables)
the same loop runs on every rank: the batch size is the global batch, each rank steps on its share,
the optimisers average the gradients over the ranks, the losses are averaged before they are checked
and logged (a NaN on any rank stops every rank at the same step with the same message), and rank 0
alone writes checkpoints, logs and grids. A checkpoint holds every rank's random streams and family
state: it resumes bit-exactly at the same world size, and at another one continues the same global
batch and the same data and noise streams.

SIGTERM (a scheduler's preemption, `kill`, a Kubernetes pod's eviction, torchrun passing its own on) is
a request to stop: the ranks agree on it with the losses they reduce, write a checkpoint at the step
they finished and stop with one line, so the rerun loses nothing (on a GPU the losses, and so the
request, reach the host every log_every steps). Ctrl-C stops at once, at the last checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops.core import device as devices
from ganops.core import distributed
from ganops.core.errors import Interrupted, Terminated
from ganops.core.identity import TRAIN_SCHEDULE
from ganops.core.params import Params
from ganops.core.progress import Progress
from ganops.models import Context, Family, TrainData, get_family
from ganops.models.errors import TrainError
from ganops.train import checkpoint as ckpt

LogFn = Callable[[int, dict[str, float]], None]
SampleFn = Callable[[int, np.ndarray, int], None]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """How long a training runs, when it logs, checkpoints and draws its progress grid, and its EMA: a
    section's keys (``train.*``, ``transfer.*``), or set by the caller (the encoders: once an epoch)."""
    steps: int
    log_every: int
    checkpoint_every: int
    sample_every: int
    ema: bool = False
    ema_decay: float = 0.999
    ema_start: int = 0
    ema_rampup: float = 0.077
    section: str | None = None     # whose keys set these (train, transfer), named in hints; None: not the user's
    epoch_steps: int = 0           # > 0: the training counts epochs of this many steps (progress, resume lines)

    @classmethod
    def of(cls, section: str, tp: Any) -> Schedule:
        own = {f.name for f in fields(cls)} - {"section", "epoch_steps"}
        return cls(**{name: getattr(tp, name) for name in own}, section=section)

    def where(self, step: int) -> str:
        """``step 120 of 500``, or ``epoch 3 of 10`` for a training that counts epochs."""
        if self.epoch_steps:
            return f"epoch {step // self.epoch_steps} of {self.steps // self.epoch_steps}"
        return f"step {step} of {self.steps}"

    def key(self, name: str) -> str:
        """``train.steps=500`` as the user would set it, or ``steps 500`` when the user sets no such key."""
        value = getattr(self, name)
        return f"{self.section}.{name}={value}" if self.section else f"{name} {value}"


@dataclass
class TrainResult:
    family: str
    configs: dict[str, dict]                       # each network's config, by name
    states: dict[str, dict[str, torch.Tensor]]     # each network's weights, by name
    ema: dict[str, dict[str, torch.Tensor]]        # the EMA of the family's ema_names (empty without)
    steps: int
    final_losses: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None
    seconds: float = 0.0
    checkpoint: Path | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    # the world sizes that trained it, each from the step it took over ([{"from_step": 0, "world_size": 2}, …])
    worlds: list[dict[str, int]] = field(default_factory=list)

    def weights(self) -> dict[str, Any]:
        """What ``ganops.models.weights.save_weights`` writes and ``ganops.models.load_model`` reads."""
        return {"family": self.family, "configs": self.configs, "networks": self.states, "ema": self.ema,
                "steps": self.steps, "final_losses": self.final_losses, "identity": self.identity}


class Trainer:
    """The loop around a family: it builds the family's networks on the device, keeps their EMAs,
    checkpoints everything and runs ``next_batch`` → ``train_step`` once per step."""

    def __init__(self, p: Params, data: TrainData, *, device: torch.device | str | None = None,
                 identity_extra: dict[str, Any] | None = None, section: str = "train",
                 family: type[Family] | None = None, schedule: Schedule | None = None,
                 channels_last: bool | None = None):
        # the family's section: train (generator families), transfer (domain transfer), embed (encoders)
        tp = getattr(p, section)
        self.p, self.section = p, section
        cls = family or get_family(tp.family)
        self.schedule = schedule or Schedule.of(section, tp)
        self.info = cls.check(tp, data)
        self.device = devices.resolve(p.device) if device is None else torch.device(device)
        # channels_last: on CUDA for every family; on the CPU for the generator families, whose steps it makes
        # faster (oneDNN's convolutions; benchmarks/layout_speed.py). The translators and encoders keep the
        # CPU's default layout, in which their figures (DTN's seeds) were measured. ``channels_last`` overrides.
        if channels_last is None:
            channels_last = self.device.type == "cuda" or section == "train"
        self.channels_last = channels_last
        self.world = world = distributed.world()
        rngs = {"data": torch.Generator().manual_seed(p.seed + 1),
                "noise": torch.Generator().manual_seed(p.seed + 2)}
        random.seed(p.seed)
        np.random.seed(p.seed)
        torch.manual_seed(p.seed)                      # weight init draws from the global RNG
        ctx = Context(p, self.device, rngs, channels_last=self.channels_last, world=world)
        self.family = fam = cls(ctx, data, self.info)
        world.check_batch(fam.batch, f"{section}.batch_size")
        self.rngs = rngs
        fmt = ctx.memory_format
        for name, net in fam.networks.items():
            # in place (a network is never a bare batch norm): the family's own references stay valid
            if world.sync_batchnorm and nn.SyncBatchNorm.convert_sync_batchnorm(net) is not net:
                raise TrainError(f"{name}: a bare batch norm cannot be converted in place to SyncBatchNorm")
            net.to(self.device, memory_format=fmt)
        self.ema: dict[str, nn.Module] = {}
        if self.schedule.ema:
            self.ema = {n: copy.deepcopy(fam.networks[n]).requires_grad_(False).eval() for n in fam.ema_names}
        fam.optimizers, fam.schedulers = fam.configure_optimizers()
        for opt in fam.optimizers.values():
            world.average_gradients(opt)
        self.loss_names = fam.loss_names
        self._check_memory(section)

        self.step = 0
        self.worlds = [{"from_step": 0, "world_size": world.size}]
        self.history: list[dict[str, float]] = []
        self.window = [0.0] * (len(self.loss_names) + 1)    # running sums since the last log, then count
        ident = {f"{section}.{k}": v for k, v in tp.model_dump().items() if k not in TRAIN_SCHEDULE}
        ident.update({"seed": p.seed, **{f"data {k}": v for k, v in vars(self.info).items()},
                      **(identity_extra or {})})
        self.identity = json_roundtrip(ident)

    def _check_memory(self, section: str) -> None:
        """Refuse, before the first step, a training that cannot fit: the networks and EMAs are built; a step
        adds their gradients and Adam's two moments (3× the weights) and what the forward passes keep. A
        training past the memory would otherwise be killed by the kernel with no word, minutes in."""
        act = self.family.activation_bytes()
        if act is None:
            return
        weights = sum(q.numel() * q.element_size() for net in self.family.networks.values() for q in net.parameters())
        need, free = 3 * weights + act, devices.free_memory(self.device)
        gib = 2 ** 30
        if need > free / 2 and need <= free:   # it fits, but anything else running may tip it over
            logger.warning("train %s: a step needs about %.1f GiB beyond the networks, of %.1f GiB free on %s",
                           self.family.name, need / gib, free / gib, self.device)
        if need > free:
            tp = getattr(self.p, section)
            raise TrainError(
                f"training {self.family.name} needs about {need / gib:.1f} GiB for a step ({weights / gib:.1f} GiB of "
                f"weights, {act / gib:.1f} GiB of activations) but {free / gib:.1f} GiB is free on {self.device}; "
                f"lower {section}.batch_size={tp.batch_size}{_per_process(self)}, data.resolution={self.info.resolution} or "
                f"{section}.g_filters={tp.g_filters}/{section}.d_filters={tp.d_filters}")

    # ------------------------------------------------------------ the step

    def train_step(self) -> torch.Tensor:
        """One step of the family; its losses stacked in ``loss_names`` order (detached, on the device)."""
        losses = self.family.train_step(self.family.next_batch())
        self.step += 1
        for sched in self.family.schedulers.values():
            sched.step()
        self._update_ema()
        return torch.stack([losses[k].float() for k in self.loss_names])

    @torch.no_grad()
    def _update_ema(self) -> None:
        if not self.ema:
            return
        s = self.schedule
        t = self.step - s.ema_start
        # before ema_start the EMA copies the network; then its half-life grows with the steps averaged
        # (stylegan2-ada's ramp-up), so the average never reaches back to the initialisation
        decay = min(s.ema_decay, 0.5 ** (1.0 / (s.ema_rampup * t))) if t > 0 else 0.0
        for name, ema in self.ema.items():
            net = self.family.networks[name]
            torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1.0 - decay)
            for eb, nb in zip(ema.buffers(), net.buffers()):
                eb.copy_(nb)

    @torch.no_grad()
    def progress_grid(self) -> tuple[np.ndarray, int]:
        """The family's fixed progress grid from its EMAs (or networks), in eval mode."""
        nets = {**self.family.networks, **self.ema}
        modes = {n: m.training for n, m in nets.items()}
        for m in nets.values():
            m.eval()
        try:
            return self.family.grid(nets)
        finally:
            for n, m in nets.items():
                m.train(modes[n])

    # ------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        fam = self.family
        return {"step": self.step, "identity": self.identity, "family": fam.name, "configs": fam.configs,
                "networks": {n: devices.cpu_state_dict(m) for n, m in fam.networks.items()},
                "ema": {n: devices.cpu_state_dict(m) for n, m in self.ema.items()},
                "optimizers": {n: o.state_dict() for n, o in fam.optimizers.items()},
                "schedulers": {n: s.state_dict() for n, s in fam.schedulers.items()},
                "family_state": fam.extra_state(),
                "rng": ckpt.rng_state(self.rngs), "history": self.history, "window": self.window}

    def save_checkpoint(self, path: Path) -> None:
        """Every rank's random streams and family state, gathered; rank 0 writes the file (atomically)."""
        mine = {"rng": ckpt.rng_state(self.rngs), "family_state": self.family.extra_state()}
        ranks = self.world.gather(mine)
        if self.world.main:
            extra = {"ranks": ranks} if self.world.grouped else {}
            ckpt.save(path, {**self.state_dict(), "world_size": self.world.size, "worlds": self.worlds, **extra})

    def load_state_dict(self, s: dict[str, Any]) -> None:
        fam = self.family
        saved = int(s.get("world_size", 1))
        if "ranks" in s:          # rank r continues rank r's streams (r mod the saved world size)
            mine = s["ranks"][self.world.rank % saved]
            s = {**s, "rng": mine["rng"], "family_state": mine["family_state"]}
        for n, m in fam.networks.items():
            m.load_state_dict(s["networks"][n])
        for n, m in self.ema.items():
            m.load_state_dict(s["ema"][n])
        for n, o in fam.optimizers.items():
            o.load_state_dict(s["optimizers"][n])
        for n, sch in fam.schedulers.items():
            sch.load_state_dict(s["schedulers"][n])
        fam.load_extra_state(s["family_state"])
        ckpt.set_rng_state(s["rng"], self.rngs)
        self.step = int(s["step"])
        self.worlds = [dict(w) for w in s.get("worlds", [{"from_step": 0, "world_size": saved}])]
        if self.worlds[-1]["world_size"] != self.world.size:
            self.worlds.append({"from_step": self.step, "world_size": self.world.size})
        self.history = list(s["history"])
        self.window = list(s["window"])

    def result(self, **kw) -> TrainResult:
        last = self.history[-1] if self.history else {}
        fam = self.family
        return TrainResult(family=fam.name, configs=dict(fam.configs),
                           states={n: devices.cpu_state_dict(m) for n, m in fam.networks.items()},
                           ema={n: devices.cpu_state_dict(m) for n, m in self.ema.items()},
                           steps=self.step, final_losses={k: last[k] for k in self.loss_names if k in last},
                           history=list(self.history), identity=self.identity,
                           worlds=[dict(w) for w in self.worlds], **kw)

    def run(self, checkpoint_path: Path | None = None, *, log: LogFn | None = None,
            sample_cb: SampleFn | None = None, progress: bool | None = None,
            init: dict[str, Any] | None = None) -> TrainResult:
        """Run the schedule's steps, resuming from ``checkpoint_path`` when it holds a checkpoint of the
        same parameters and data (and refusing one of others). ``init``: weights (``save_weights``' layout)
        to start the networks and their EMAs from instead of a fresh initialisation (warm start from the
        registry's champion); the optimisers start fresh.

        ``progress``: None shows a bar on a terminal and INFO log lines every 5% elsewhere (see
        ``ganops.core.progress``), True forces the bar, False shows nothing."""
        t0 = time.perf_counter()
        tr, s, world = self, self.schedule, self.world
        if not world.main:               # rank 0 alone logs, draws grids and shows progress
            log = sample_cb = None
            progress = False
        path = Path(checkpoint_path) if checkpoint_path is not None else None
        resumed = None
        if init is not None:
            _warm_start(tr, init)
        if path is not None and path.exists():
            state = ckpt.load(path)
            ckpt.check_identity(path, state.get("identity", {}), tr.identity)
            if state["step"] > s.steps:
                raise TrainError(f"{path} is at step {state['step']}, past {s.key('steps')}; raise "
                                 f"it or delete the checkpoint to train from scratch")
            tr.load_state_dict(state)
            resumed = tr.step
            logger.info("train %s: resuming from %s (checkpoint %s)", tr.family.name, s.where(resumed), path)
            saved = int(state.get("world_size", 1))
            if saved != world.size:
                logger.warning("train %s: the checkpoint was made on %d process(es), this run has %d: the same "
                               "global batch of %d (%d per process) and the same data and noise streams go on; "
                               "the result equals neither world size's uninterrupted run", tr.family.name, saved,
                               world.size, tr.family.batch, tr.family.batch // world.size)
        last_ckpt = resumed
        world.broadcast_state([*tr.family.networks.values(), *tr.ema.values()])   # every rank starts from rank 0's

        bar = Progress(f"train {tr.family.name}", s.steps, initial=tr.step, enabled=progress)
        if tr.history:                      # a resumed run shows the checkpoint's losses until it logs its own
            bar.set_postfix(**_headline(tr, tr.history[-1]))
        tick, tick_step = time.perf_counter(), tr.step
        # The losses stay on the device and are summed there; they reach the host (one sync) every
        # `check_every` steps and at every log/checkpoint boundary. On CPU a sync costs nothing, so every
        # step is checked and a NaN is reported at its exact step; on a GPU, within the last few steps.
        check_every = 1 if tr.device.type == "cpu" else s.log_every
        pending, pending_n = None, 0
        stopped = False
        with _sigterm_request() as term:
            try:
                while tr.step < s.steps:
                    if s.epoch_steps and tr.step % s.epoch_steps == 0:
                        bar.section(f"epoch {tr.step // s.epoch_steps + 1}/{s.steps // s.epoch_steps}", s.epoch_steps)
                    values = tr.train_step()
                    pending = values if pending is None else pending + values
                    pending_n += 1
                    final = tr.step == s.steps
                    boundary = final or tr.step % s.log_every == 0 or (path is not None and tr.step % s.checkpoint_every == 0)
                    if not (boundary or tr.step % check_every == 0):
                        bar.update(1)
                        continue
                    flag = torch.tensor([float(term.requested)], dtype=pending.dtype, device=pending.device)
                    *sums, stop = world.mean(torch.cat([pending, flag])).tolist()   # a request on any rank
                    pending, n_summed = None, pending_n
                    pending_n = 0
                    if not all(map(math.isfinite, sums)):
                        where = (f"the last good checkpoint is {path} (step {last_ckpt})" if last_ckpt is not None
                                 else "no checkpoint had been written yet" + (f" ({s.key('checkpoint_every')})"
                                                                              if path is not None else ""))
                        at = f"step {tr.step}" if n_summed == 1 else f"steps {tr.step - n_summed + 1}..{tr.step}"
                        raise TrainError(
                            f"non-finite loss at {at} ({', '.join(f'{k}={v}' for k, v in zip(tr.loss_names, sums))}); "
                            f"training stopped, {where}. {tr.family.divergence_hint}")
                    for i, v in enumerate(sums):
                        tr.window[i] += v
                    tr.window[-1] += n_summed
                    if path is not None and (tr.step % s.checkpoint_every == 0 or final):
                        if tr.step % s.log_every == 0 or final:
                            _close_window(tr)
                        tr.save_checkpoint(path)
                        last_ckpt = tr.step
                    metrics = None
                    if tr.step % s.log_every == 0 or final:
                        entry = _close_window(tr)
                        now = time.perf_counter()
                        metrics = {**{k: entry[k] for k in tr.loss_names},
                                   "steps_per_s": (tr.step - tick_step) / max(now - tick, 1e-9)}
                        tick, tick_step = now, tr.step
                        bar.set_postfix(**_headline(tr, entry))
                    bar.update(1)       # after this step's losses are known: the last line shows the final ones
                    if metrics is not None and log is not None:
                        log(tr.step, metrics)
                    if sample_cb is not None and (tr.step % s.sample_every == 0 or final):
                        sample_cb(tr.step, *tr.progress_grid())
                    if stop > 0 and not final:
                        if path is not None and last_ckpt != tr.step:
                            tr.save_checkpoint(path)
                            last_ckpt = tr.step
                        stopped = True
                        break
            except KeyboardInterrupt:
                # no checkpoint here: the step under way may be half applied; the last one is whole
                kept = (f"rerun the same command to resume from step {last_ckpt} ({path})" if last_ckpt is not None
                        else "no checkpoint was written yet, so a rerun starts over")
                raise Interrupted(f"interrupted at step {tr.step} of {s.steps}; {kept}") from None
            except Exception as exc:
                if not devices.out_of_memory(exc):
                    raise
                raise TrainError(_out_of_memory(tr, exc, path, last_ckpt)) from None
            finally:
                bar.close()
        if stopped:
            kept = (f"a checkpoint holds it: rerun the same command to resume ({path})" if path is not None
                    else "nothing was checkpointed, so a rerun starts over")
            raise Terminated(f"stopped by SIGTERM after step {tr.step} of {s.steps}; {kept}")
        # on every rank (a SyncBatchNorm EMA reduces over them); the checkpoint keeps the EMAs as they were,
        # so a rerun of a finished run finishes them the same way
        if tr.ema:
            tr.family.finish_ema(tr.ema)
        return tr.result(resumed_from=resumed, seconds=time.perf_counter() - t0, checkpoint=path)


class _Request:
    requested = False


@contextmanager
def _sigterm_request() -> Iterator[_Request]:
    """While training, SIGTERM sets ``requested`` instead of ending the process (the main thread only:
    signal handlers live there; elsewhere SIGTERM keeps its own handling)."""
    req = _Request()
    if threading.current_thread() is not threading.main_thread():
        yield req
        return

    def handler(signum, frame) -> None:
        req.requested = True

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield req
    finally:
        signal.signal(signal.SIGTERM, previous)


def _per_process(tr: Trainer) -> str:
    """`` (the global batch, 2048 per process)`` on several ranks; nothing on one."""
    w = tr.world
    return f" (the global batch, {tr.family.batch // w.size} per process)" if w.grouped else ""


def _out_of_memory(tr: Trainer, exc: BaseException, path: Path | None, last_ckpt: int | None) -> str:
    """One line for an allocation that failed mid-step: where, how much, which keys lower it, what a rerun does."""
    sec, tp = tr.section, getattr(tr.p, tr.section)
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    asked = re.search(r"[Tt]ried to allocate (\d+(?:\.\d+)? ?[KMGT]i?B|(\d+) bytes)", said)
    more = (asked.group(1) if asked and not asked.group(2) else f"{int(asked.group(2)) / 2 ** 20:.1f} MiB" if asked
            else None)
    keys = [f"{sec}.batch_size={tr.family.batch}{_per_process(tr)}", f"data.resolution={tr.info.resolution}"]
    if hasattr(tp, "g_filters"):
        keys.append(f"{sec}.g_filters={tp.g_filters}/{sec}.d_filters={tp.d_filters}")
    kept = (f"a rerun resumes from step {last_ckpt} ({path})" if last_ckpt is not None
            else "no checkpoint had been written yet")
    return (f"out of memory at step {tr.step + 1} on {tr.device}{f' (it asked for {more} more)' if more else ''}; "
            f"lower {', '.join(keys[:-1])} or {keys[-1]}; {kept}")


def json_roundtrip(obj: Any) -> Any:
    return json.loads(ckpt.identity_json(obj))


def _warm_start(tr: Trainer, init: dict[str, Any]) -> None:
    want, have = tr.family.configs, init.get("configs", {})
    if want != have:
        diff = sorted(f"{n}.{k}" for n in set(want) | set(have)
                      for k in set(want.get(n, {})) | set(have.get(n, {}))
                      if want.get(n, {}).get(k) != have.get(n, {}).get(k))
        raise TrainError(f"train.warm_start: the champion's networks differ from these parameters' in {diff}; "
                         "train with the champion's architecture or set train.warm_start=false")
    for n, m in tr.family.networks.items():
        m.load_state_dict(init["networks"][n])
    for n, m in tr.ema.items():
        m.load_state_dict((init.get("ema") or {}).get(n, init["networks"][n]))


def train(p: Params, images=None, labels=None, features=None, neighbors=None, *,
          device: torch.device | str | None = None, checkpoint_path: Path | None = None,
          log: LogFn | None = None, sample_cb: SampleFn | None = None, progress: bool | None = None,
          identity_extra: dict[str, Any] | None = None, init: dict[str, Any] | None = None,
          data: TrainData | None = None, section: str = "train") -> TrainResult:
    """Train the family of ``p.<section>.family`` for ``p.<section>.steps`` steps (``Trainer.run``).
    ``section``: ``train`` for the generator families, ``transfer`` for domain transfer, whose inputs come
    as ``data`` (source and target images, f)."""
    data = data if data is not None else TrainData(images, labels, features, neighbors)
    tr = Trainer(p, data, device=device, identity_extra=identity_extra, section=section)
    return tr.run(checkpoint_path, log=log, sample_cb=sample_cb, progress=progress, init=init)


def _close_window(tr: Trainer) -> dict[str, float]:
    """Turn the running sums into a history entry (idempotent within a step)."""
    if tr.history and tr.history[-1]["step"] == tr.step:
        return tr.history[-1]
    count = max(tr.window[-1], 1.0)
    entry = {"step": tr.step, **{k: tr.window[i] / count for i, k in enumerate(tr.loss_names)}}
    tr.history.append(entry)
    tr.window = [0.0] * (len(tr.loss_names) + 1)
    return entry


def _headline(tr: Trainer, entry: dict[str, float]) -> dict[str, float]:
    """The progress bar's figures: the family's first two losses."""
    return {k: entry[k] for k in tr.loss_names[:2] if k in entry}
