"""Starting a training stage on several processes with torchrun, from any door that runs a stage (``ganops
stage … --nproc N``, ``ganops run``, ``dvc repro``, Python): the ``distributed:`` section says how many
processes on how many nodes and where they meet; this process becomes torchrun's agent (its own
``torch.distributed.run``, not a home-made pool), the ranks run ``ganops stage <name>`` on the same
parameters, and a failed rank comes back as one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import yaml

from ganops.core.distributed import CONTEXT_ENV, ERRORS_DIR_ENV, LAUNCHER_ENV, DistributedError, World, launched
from ganops.core.errors import Interrupted, Terminated
from ganops.core.params import Params

log = logging.getLogger(__name__)



def wanted(p: Params) -> bool:
    """True where these parameters ask for more than one process and none was launched yet."""
    d = p.distributed
    return d.nproc_per_node * d.nnodes > 1 and launched() is None


def torchrun_args(p: Params, stage_args: list[str], module: str = "ganops") -> list[str]:
    """torchrun's command line (without ``torchrun``) running ``python -m <module> <stage_args>`` per rank."""
    d = p.distributed
    args = ["--nproc-per-node", str(d.nproc_per_node), "--nnodes", str(d.nnodes), "--max-restarts", "0"]
    if d.nnodes == 1 and not d.rdzv_endpoint:
        args.append("--standalone")         # one node: a free local port, no endpoint to set
    else:
        if not d.rdzv_endpoint:
            raise DistributedError(f"distributed.nnodes={d.nnodes}: the nodes meet at distributed.rdzv_endpoint "
                                   "(host:port of one of them, reachable from all); set it")
        # the nodes wait for each other at most distributed.timeout_s, as a collective does
        args += ["--rdzv-backend", "c10d", "--rdzv-endpoint", d.rdzv_endpoint, "--rdzv-id", d.rdzv_id,
                 "--rdzv-conf", f"join_timeout={int(d.timeout_s)},read_timeout={int(d.timeout_s)}"]
    return [*args, "-m", module, *stage_args]


def run_stage_on_ranks(name: str, p: Params, root: Path, domain: str | None, context: str | None) -> None:
    """Run stage ``name`` under torchrun with ``p`` (written to a file the ranks read, with the user's
    ``--set`` items repeated so the hints they print name them). Raises one DistributedError, naming the
    first rank that failed and why, when any rank fails; every other rank is stopped by torchrun."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    with tempfile.TemporaryDirectory(prefix="ganops-launch-") as tmp:
        params = Path(tmp) / "params.yaml"
        params.write_text(yaml.safe_dump(p.model_dump(), sort_keys=False))
        quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
        stage_args = ["stage", name, "--params", str(params), "--root", str(Path(root).resolve()),
                      *(["--domain", domain] if domain else []), *(["-q"] if quiet else []),
                      *(arg for item in p.overrides for arg in ("--set", item))]
        args = get_args_parser().parse_args(torchrun_args(p, stage_args))
        log.info("%s: launching %d process(es) per node on %d node(s) with torchrun (distributed.*)",
                 name, p.distributed.nproc_per_node, p.distributed.nnodes)
        errors = Path(tmp) / "errors"
        errors.mkdir()
        env = {LAUNCHER_ENV: "1", ERRORS_DIR_ENV: str(errors), **({CONTEXT_ENV: context} if context else {})}
        if "OMP_NUM_THREADS" not in os.environ:   # the machine's cores shared by its ranks (torchrun would say 1)
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // p.distributed.nproc_per_node))
        with _quiet_agent(), _environment(env):
            try:
                run(args)
            except ChildFailedError as exc:
                codes = {f.exitcode for f in exc.failures.values()}
                if Interrupted.exit_code in codes:                  # Ctrl-C reached the ranks
                    raise Interrupted(_interrupted(errors)) from None
                if Terminated.exit_code in codes:                   # SIGTERM: the ranks checkpointed and stopped
                    raise Terminated(_interrupted(errors)) from None
                raise DistributedError(_cause(exc, errors)) from None
            except SignalException as exc:   # a stop sent to this process: torchrun passed it to the ranks
                stop = Terminated if exc.sigval == signal.SIGTERM else Interrupted
                raise stop(_interrupted(errors)) from None
            except KeyboardInterrupt:        # Ctrl-C
                raise Interrupted(_interrupted(errors)) from None
            except Exception as exc:   # the rendezvous could not form: one line, not torchrun's trace
                if "rendezvous" not in type(exc).__module__ + type(exc).__name__.lower():
                    raise
                raise DistributedError(
                    f"the nodes could not meet at distributed.rdzv_endpoint={p.distributed.rdzv_endpoint or '(local)'} "
                    f"within distributed.timeout_s={p.distributed.timeout_s:g} "
                    f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}); "
                    f"check that the host is reachable from every node and the same command runs on all "
                    f"distributed.nnodes={p.distributed.nnodes}") from None


def check(name: str, p: Params) -> None:
    """What every rank would refuse, refused once before launching: a global batch the ranks cannot share."""
    world = p.distributed.nproc_per_node * p.distributed.nnodes
    key, batch = {"train": ("train.batch_size", p.train.batch_size),
                  "transfer": ("transfer.batch_size", p.transfer.batch_size),
                  "embeddings": ("embed.batch_size", p.embed.batch_size),
                  "evaluator": (p.user_key("evaluator.batch_size"), p.evaluator.batch_size),
                  "classifier": ("transfer.source_classifier.batch_size", p.transfer.source_classifier.batch_size),
                  }[name]
    World(size=world).check_batch(batch, key)    # the ranks' own check, once before they start


def _interrupted(errors: Path) -> str:
    import json

    with contextlib.suppress(OSError, ValueError):
        return json.loads((errors / "rank0.json").read_text())["message"]
    return "interrupted; rerun the same command to resume from the last checkpoint"


def _cause(exc, errors: Path) -> str:
    """The failure that explains the others, in one line: a rank killed from outside (torchrun stops the rest
    with SIGTERM), else the lowest rank's own message (one that only lost a peer last), else how the first
    failed rank exited."""
    import json

    for rank, f in sorted(exc.failures.items()):
        if f.exitcode < 0 and -f.exitcode != signal.SIGTERM:
            oom = (" (the kernel's out-of-memory killer ends a process with SIGKILL: if nobody killed it, see dmesg "
                   "or the pod's events and lower the batch size)") if -f.exitcode == signal.SIGKILL else ""
            return (f"rank {rank} was killed by {f.signal_name()} (pid {f.pid}){oom}; every rank was stopped. Rerun "
                    "the same command to resume from the last checkpoint")
    told = {}
    for path in errors.glob("rank*.json"):
        with contextlib.suppress(OSError, ValueError):
            told[int(path.stem[4:])] = json.loads(path.read_text())["message"]
    for lost in (False, True):
        for rank in sorted(told):
            if ("lost another rank" in told[rank]) == lost:
                return told[rank]
    rank, f = exc.get_first_failure()
    how = f"was stopped by {f.signal_name()}" if f.exitcode < 0 else f"exited with status {f.exitcode}"
    return f"rank {rank} {how} (pid {f.pid}) before saying why; every rank was stopped"


@contextlib.contextmanager
def _quiet_agent():
    """torchrun's agent logs every worker's exit with a traceback-sized summary; the one line we raise says it."""
    names = ["torch.distributed.elastic", "torch.distributed.run",
             *(n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed."))]
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    # the agent turns SIGTERM into an exception; restore the handlers it leaves behind
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        for s, h in handlers.items():
            signal.signal(s, h)
        sys.stdout.flush()


@contextlib.contextmanager
def _environment(extra: dict[str, str]):
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
