"""The embeddings' extraction on torchrun's ranks, for real (2 gloo ranks on CPU through `--nproc`): each rank
extracts its shards' features with rank 0's encoder, rank 0 joins them; a rank killed mid-extraction stops every
rank with one line, and the rerun, on any number of ranks, keeps the pieces already written. A file of its own
(not test_ranks.py) so that the test workers share the rank tests' time."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, rank_pid

from ganops.data import store

# two ranks on two cores: one thread each
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
FAST = ["device=cpu"]
# 1,617 training images: 33 pieces of features, one image a batch
PIECES = ["data.resolution=32", "data.shard_rows=50", "embed.extract_batch_size=1", "tracking.enabled=false"]


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _ganops(root: Path, *args: str, sets=(), timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ganops", *args, *_sets([*FAST, *sets])], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The digits dataset in shards of 50 (1,617 training images: 33 pieces of features)."""
    root = tmp_path_factory.mktemp("extraction")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    _ganops(root, "stage", "dataset", "-q", sets=PIECES)
    return root


def _copy(project: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(project, dest, ignore=shutil.ignore_patterns(".locks", ".checkpoints", "mlflow.db",
                                                                               "mlartifacts")))


SIMCLR = ["embed.encoder=simclr", "embed.epochs=1", "embed.min_steps=0", "embed.batch_size=64"]


def _features(root: Path, encoder: str) -> np.ndarray:
    return np.asarray(store.load_features(root / "data/embeddings/digits" / encoder))


def test_the_ranks_share_the_extraction_shard_by_shard_and_write_what_one_process_writes(project, tmp_path):
    one, two = _copy(project, tmp_path / "one"), _copy(project, tmp_path / "two")
    _ganops(one, "stage", "embeddings", "-q", sets=[*PIECES, "embed.encoder=pixels"])
    _ganops(two, "stage", "embeddings", "-q", "--nproc", "2", sets=[*PIECES, "embed.encoder=pixels"])
    assert json.loads((two / "data/embeddings/digits/pixels/meta.json").read_text())["world_size"] == 2
    assert _features(one, "pixels").tobytes() == _features(two, "pixels").tobytes()
    assert not list((two / "data/.checkpoints").rglob("*.npy"))        # the pieces went with success


def test_a_rank_killed_mid_extraction_keeps_the_pieces_finished_and_the_rerun_does_the_rest(project, tmp_path):
    reference = _copy(project, tmp_path / "reference")
    _ganops(reference, "stage", "embeddings", "-q", "--nproc", "2", sets=[*PIECES, *SIMCLR])

    root = _copy(project, tmp_path / "killed")
    cmd = [sys.executable, "-m", "ganops", "stage", "embeddings", "-q", "--nproc", "2",
           *_sets([*FAST, *PIECES, *SIMCLR])]
    launcher = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    victim = rank_pid(launcher.pid, 1, deadline)
    pieces = root / "data/.checkpoints"
    while time.time() < deadline and not list(pieces.rglob("pieces/00001.npy")):     # rank 1's first piece
        time.sleep(0.01)
    os.kill(victim, signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 2 and "rank 1 was killed by SIGKILL" in err, err[-2000:]
    kept = sorted(p.name for p in pieces.rglob("pieces/*.npy"))
    assert 1 <= len(kept) < 33 and "00001.npy" in kept, kept
    assert not (root / "data/embeddings/digits/simclr/meta.json").exists()

    again = _ganops(root, "stage", "embeddings", sets=[*PIECES, *SIMCLR])       # one process now
    assert f"({len(kept)} kept from a run that stopped)" in again.stderr, again.stderr[-2000:]
    resumed, whole = _features(root, "simclr"), _features(reference, "simclr")
    for name in kept:            # the kept pieces are the killed ranks' bytes, not extracted again
        i = int(name[:5])
        assert resumed[i * 50:(i + 1) * 50].tobytes() == whole[i * 50:(i + 1) * 50].tobytes(), name
    np.testing.assert_allclose(resumed, whole, atol=1e-5)      # the rest: one process's rounding, same encoder


