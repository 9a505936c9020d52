"""Training on several processes: the launch contract, each rank's share of a global batch, and gradients
averaged over the ranks before every optimiser step.

The launch contract is torch.distributed's own: torchrun (and Kubernetes training operators, and
``srun torchrun`` under Slurm) start one process per rank and set ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE`` and the rendezvous (``MASTER_ADDR``/``MASTER_PORT``); ``init`` joins that group, NCCL on
CUDA and gloo on CPU (``distributed.backend``). A process started without a launcher is a world of one
and trains exactly as it always did: no process group, the same draws, the same bytes.

Why gradients are averaged here instead of in ``DistributedDataParallel``: a GAN step calls its
discriminator on real and fake batches, then again, frozen, inside the generator's loss; the translators
call networks whose weights are not trained at all (DTN's f). DDP's reducer expects every wrapped
parameter to receive a gradient once per forward of its wrapper, so these steps need ``no_sync``
juggling or ``find_unused_parameters`` in every family, and its buffer broadcast replaces each rank's
batch-norm statistics by rank 0's. NVIDIA's stylegan2-ada-pytorch and stylegan3 reduce the gradients
explicitly for the same reasons; so does this module, once, as an optimiser step pre-hook: one flat
``all_reduce`` per optimiser step, whatever the family. (What it gives up is DDP's overlap of that
reduction with the backward pass; the networks here are small enough that the step is compute bound.)

The same parameters mean the same experiment at any world size: a batch size is the global batch, every
rank draws the global batch's indices and noise from the same seeded streams and keeps its share
(``World.share``), so together the ranks see what one process would. With batch norm, each rank
normalises its own share (what one process would get by normalising each share apart), unless
``distributed.sync_batchnorm`` (CUDA) makes the statistics global.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from ganops.core.errors import UserError

log = logging.getLogger(__name__)

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
ERROR_FILE_ENV = "TORCHELASTIC_ERROR_FILE"     # where torchrun reads a worker's failure from (its @record format)
LAUNCHER_ENV = "GANOPS_LAUNCHER"               # set for ranks that ganops's own launcher started
ERRORS_DIR_ENV = "GANOPS_RANK_ERRORS"          # …and where each of them leaves its one-line failure
CONTEXT_ENV = "GANOPS_RUN_CONTEXT"             # …and the door and pipeline run their MLflow run belongs to


class DistributedError(UserError, RuntimeError):
    """The launch environment or the distributed section is wrong, or a rank was lost."""


@dataclass
class World:
    """This process's place among the ranks of one training. A world of one has no process group."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""                          # "": no process group (one process, no launcher)
    sync_batchnorm: bool = False               # batch-norm statistics over the global batch (CUDA)
    comm_seconds: float = field(default=0.0, compare=False)   # time spent averaging gradients and losses

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes artifacts, checkpoints, grids and MLflow runs."""
        return self.rank == 0

    @property
    def grouped(self) -> bool:
        return bool(self.backend)

    def share(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n`` (a multiple of the world size)."""
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def check_batch(self, n: int, key: str) -> None:
        if n % self.size:
            raise DistributedError(f"{key}={n} is the global batch, split evenly over the {self.size} processes "
                                   f"(distributed.nproc_per_node × distributed.nnodes); set it to a multiple of "
                                   f"{self.size}")

    # ------------------------------------------------------------ collectives (no-ops in a world of one)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over the ranks (in place)."""
        if self.grouped:
            t0 = time.perf_counter()
            _dist().all_reduce(t)
            t.div_(self.size)
            self.comm_seconds += time.perf_counter() - t0
        return t

    def broadcast_state(self, modules) -> None:
        """Every rank takes rank 0's weights and buffers (as DDP does at construction)."""
        if not self.grouped:
            return
        for m in modules:
            for t in m.state_dict().values():
                _dist().broadcast(t, 0)

    def gather(self, obj) -> list | None:
        """Every rank's ``obj``, on rank 0 (None elsewhere)."""
        if not self.grouped:
            return [obj]
        out = [None] * self.size if self.main else None
        _dist().gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.grouped:
            _dist().barrier()

    def average_gradients(self, opt: torch.optim.Optimizer) -> None:
        """Make ``opt`` average its parameters' gradients over the ranks just before each step."""
        if self.grouped:
            opt.register_step_pre_hook(self._average)

    def _average(self, opt: torch.optim.Optimizer, args, kwargs) -> None:
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [q.grad for g in opt.param_groups for q in g["params"] if q.grad is not None]
        t0 = time.perf_counter()
        for dtype in sorted({g.dtype for g in grads}, key=str):
            same = [g for g in grads if g.dtype == dtype]
            flat = _flatten_dense_tensors(same)     # one message per dtype, not one per tensor
            _dist().all_reduce(flat)
            flat.div_(self.size)
            for g, avg in zip(same, _unflatten_dense_tensors(flat, same)):
                g.copy_(avg)
        self.comm_seconds += time.perf_counter() - t0


_WORLD = World()


def _dist():
    """torch.distributed, imported where a process group is used: the launcher's contract (``launched``,
    ``report_failure``) needs no torch, so the command line refuses bad input without waiting for it."""
    import torch.distributed

    return torch.distributed


def world() -> World:
    """The world this process trains in (a world of one until ``init`` joins a group)."""
    return _WORLD


def launched(environ=os.environ) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) as a launcher set them: torchrun and Kubernetes training operators
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), or a Slurm step started by ``srun`` without torchrun
    (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, with ``MASTER_ADDR`` set by the job). None
    without a launcher."""
    if "WORLD_SIZE" in environ and "RANK" in environ:
        try:
            return (int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", "0")))
        except ValueError:
            raise DistributedError(f"RANK={environ['RANK']!r}, WORLD_SIZE={environ['WORLD_SIZE']!r}: the launcher's "
                                   "variables must be integers") from None
    if "SLURM_STEP_ID" in environ and "MASTER_ADDR" in environ and "SLURM_PROCID" in environ:
        return (int(environ["SLURM_PROCID"]), int(environ.get("SLURM_NTASKS", "1")),
                int(environ.get("SLURM_LOCALID", "0")))
    return None


def init(backend: str, device: torch.device, timeout_s: float, sync_batchnorm: bool = False) -> World:
    """Join the process group the launcher set up (once per process); a world of one without a launcher.
    ``backend``: auto (NCCL on CUDA, gloo elsewhere), nccl or gloo."""
    global _WORLD
    env = launched()
    if env is None or _WORLD.grouped:
        return _WORLD
    rank, size, local = env
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise DistributedError(f"distributed.backend=nccl needs CUDA, but this training runs on {device}; "
                               "set distributed.backend=gloo (or auto)")
    os.environ.setdefault("RANK", str(rank))             # srun without torchrun: what init_process_group reads
    os.environ.setdefault("WORLD_SIZE", str(size))
    os.environ.setdefault("MASTER_PORT", "29500")
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(local)
    try:
        _dist().init_process_group(backend, timeout=dt.timedelta(seconds=timeout_s))
    except Exception as exc:   # noqa: BLE001 (a rendezvous that cannot form: one line, the endpoint named)
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise DistributedError(f"rank {rank} of {size} could not join the process group at {where} "
                               f"({backend}): {type(exc).__name__}: {exc}") from None
    _WORLD = World(rank, size, local, backend, sync_batchnorm=sync_batchnorm and device.type == "cuda")
    if rank:                          # one rank speaks: rank 0 (the others' lines would repeat its)
        logging.getLogger("ganops").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
    if sync_batchnorm and device.type != "cuda":
        log.warning("distributed.sync_batchnorm=true applies on CUDA only; on %s each rank normalises its share",
                    device)
    log.info("distributed: rank %d of %d (%s), global batches split %d ways", rank, size, backend, size)
    return _WORLD


def shutdown() -> None:
    global _WORLD
    if _dist().is_initialized():
        _dist().destroy_process_group()
    _WORLD = World()


_LOST = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "timed out", "Timed out",
         "NCCL communicator was aborted", "ProcessGroupNCCL", "ProcessGroupGloo")


def lost_peer(exc: BaseException) -> str | None:
    """One line for an error of a collective whose peer is gone (killed, crashed, or silent past
    ``distributed.timeout_s``), on a rank of a process group; None for any other error (a bug's traceback)."""
    if not _WORLD.grouped:
        return None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, _dist().DistError) or (isinstance(exc, RuntimeError) and any(m in str(exc) for m in _LOST)):
        return (f"rank {_WORLD.rank} lost another rank in the middle of a collective ({text[:160]}); every rank "
                f"stops. Rerun the same command to resume from the last checkpoint")
    return None


def report_failure(message: str, environ=os.environ) -> bool:
    """Under torchrun: leave this rank's one-line failure where the launcher reads a worker's error (its
    ``@record`` file format), so torchrun's summary and ``ganops --nproc`` name it. False without one."""
    paths = [environ[ERROR_FILE_ENV]] if environ.get(ERROR_FILE_ENV) else []
    if environ.get(ERRORS_DIR_ENV):   # ganops's launcher reads every rank's, whichever torchrun saw fail first
        rank = (launched(environ) or (0, 1, 0))[0]
        paths.append(os.path.join(environ[ERRORS_DIR_ENV], f"rank{rank}.json"))
    written = False
    for path in paths:
        try:
            with open(path, "w") as fh:
                json.dump({"message": message, "timestamp": int(time.time())}, fh)
            written = True
        except OSError:
            pass
    return written
