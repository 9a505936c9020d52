import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = (REPO.parent / "shared" / "data" / "mnist").resolve()

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
    base = {"data.limit": 300, "data.resolution": 16, "embed.epochs": 1, "embed.batch_size": 64,
            "neighbors.k": 5, "device": "cpu", "train.steps": 60, "train.g_filters": 8, "train.d_filters": 8,
            "train.batch_size": 16, "train.checkpoint_every": 20, "train.sample_every": 30, "train.n_samples": 16}
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
