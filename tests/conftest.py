import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = (REPO.parent / "shared" / "data" / "mnist").resolve()

# The venv's console scripts (ganops, dvc, dagster) for subprocesses; no DVC analytics calls.
CLI_ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}

# One torch thread per test process: the suite runs on 2 cores, often two workers at a time.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project directory holding the repository's params.yaml and dvc.yaml."""
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def fast_overrides(**extra: object) -> list[str]:
    """Small, quick settings for end-to-end tests (real stages, tiny budgets)."""
    base = {"data.limit": 300, "data.resolution": 16, "embed.epochs": 1, "embed.min_steps": 0, "embed.batch_size": 64,
            "neighbors.k": 5, "device": "cpu", "train.steps": 60, "train.g_filters": 8, "train.d_filters": 8,
            "train.d_steps": 1,    # not the default 2: the suite's time
            "train.batch_size": 16, "train.checkpoint_every": 20, "train.sample_every": 30, "train.grid_size": 16,
            "evaluator.epochs": 1, "evaluator.min_steps": 0, "evaluator.batch_size": 64, "evaluate.n_samples": 100, "evaluate.batch_size": 100,
            "evaluate.kid_subsets": 10, "evaluate.kid_subset_size": 50, "evaluate.per_label": 10,
            "evaluate.instances": 4, "evaluate.per_instance": 4, "evaluate.ppl_pairs": 20,
            "evaluate.min_diversity": 0.0,     # a 60-step generator is near collapse: let the tests' promote
            # domain transfer: digits → the shared MNIST test split (no download), tiny networks and budgets
            "transfer.source.limit": 300, "transfer.source.resolution": 16, "transfer.target.root": str(SHARED_MNIST),
            "transfer.target.download": False, "transfer.target.limit": 300, "transfer.target.resolution": 16,
            "transfer.steps": 8, "transfer.batch_size": 8, "transfer.g_filters": 8, "transfer.d_filters": 8,
            "transfer.n_blocks": 1, "transfer.pool_size": 5, "transfer.checkpoint_every": 4,
            "transfer.sample_every": 4, "transfer.grid_size": 4, "transfer.source_evaluator.epochs": 1,
            "transfer.source_evaluator.batch_size": 64, "transfer.source_evaluator.min_steps": 0,
            "transfer.target_evaluator.min_steps": 0,
            "transfer.source_classifier.epochs": 1, "transfer.source_classifier.batch_size": 64,
            "transfer.target_evaluator.epochs": 10,     # a judge under 80% may not crown a translator: ~0.97
            "transfer.target_evaluator.batch_size": 64,
            # the IC-GAN on another dataset's instances: the shared MNIST split's first 200 (no download)
            "on_instances.root": str(SHARED_MNIST), "on_instances.download": False, "on_instances.limit": 200}
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def wait_for_checkpoint(root: Path, family: str, proc: subprocess.Popen, timeout: float = 120) -> Path:
    """The training checkpoint a running `ganops stage train` writes (keyed by its run), once it exists."""
    deadline = time.time() + timeout
    while True:
        found = sorted((root / "data/.checkpoints/train").glob(f"digits-{family}-*/train.pt"))
        if found:
            time.sleep(0.3)   # let the rename settle before the caller kills the writer
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"training exited ({proc.returncode}) before a checkpoint: "
                                 f"{proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        if time.time() > deadline:
            raise AssertionError(f"no checkpoint written within {timeout} s")
        time.sleep(0.2)


def ganops_args(*args: str, sets: list[str], quiet: bool = True) -> list[str]:
    """`ganops ARGS [-q] --set K=V …` as a user types it."""
    return ["ganops", *args, *(["-q"] if quiet else []), *(a for s in sets for a in ("--set", s))]


def run_ganops(root: Path, *args: str, sets: list[str], check: bool = True, quiet: bool = True,
               **kw) -> subprocess.CompletedProcess:
    """Run the ganops command line in ``root``; with ``check`` it must succeed."""
    cmd = ganops_args(*args, sets=sets, quiet=quiet)
    proc = subprocess.run(cmd, cwd=root, env=CLI_ENV, capture_output=True, text=True, **kw)
    if check:
        assert proc.returncode == 0, f"{cmd}:\n{proc.stderr[-3000:]}"
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The one ``ganops: error:`` line a failed command printed (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ganops: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def rank_pid(launcher_pid: int, rank: int, deadline: float, poll: float = 0.05) -> int:
    """The pid of torchrun's rank ``rank`` below the launcher process, once it runs ganops (by ``deadline``)."""
    import psutil

    launcher = psutil.Process(launcher_pid)
    while time.time() < deadline:
        for child in launcher.children(recursive=True):
            try:
                if child.environ().get("RANK") == str(rank) and "ganops" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(poll)
    raise AssertionError(f"rank {rank} never started")
