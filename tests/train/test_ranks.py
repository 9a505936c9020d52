"""Training on several processes for real: torchrun with 2 gloo ranks on CPU, through the library, the
`--nproc` door and torchrun's own door. The same global batch trains the same networks; rank 0 alone writes;
a killed rank stops every rank with one line and the rerun resumes bit-exactly; a NaN or an allocation that fails on
one rank stops every rank."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, rank_pid

from ganops.data import store
from ganops.models.transfer_nets import PatchConfig, PatchDiscriminator, ResnetConfig, ResnetGenerator

RANKS = Path(__file__).with_name("ranks.py")
# two ranks on two cores: one thread each
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TINY_TRANSFER = ["transfer.steps=4", "transfer.batch_size=8", "transfer.g_filters=4", "transfer.d_filters=4",
                 "transfer.n_blocks=1", "transfer.pool_size=0", "transfer.grid_size=4",
                 "transfer.source.resolution=16", "transfer.target.resolution=16"]
# no augmentation: each rank draws its own (the same global batch still trains, but not the same bytes)
TINY_GAN = ["train.steps=4", "train.batch_size=8", "train.g_filters=8", "train.d_filters=8", "train.grid_size=4",
            "train.augment=none"]


def _torchrun(nproc: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, check=False)


def _library(tmp: Path, family: str, sets: list[str], nproc: int | None) -> dict:
    out = tmp / f"{family}-{nproc}-{len(list(tmp.iterdir()))}.pt"
    if nproc is None:       # no launcher at all: a world of one, as ganops always trained
        proc = subprocess.run([sys.executable, str(RANKS), family, str(out), *sets], env=ENV, capture_output=True,
                              text=True, timeout=240, check=False)
    else:
        proc = _torchrun(nproc, str(RANKS), family, str(out), *sets)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


def test_two_ranks_train_what_one_process_trains_at_the_same_global_batch(tmp_path):
    # CycleGAN has no batch statistics (instance norm); without its pool of fakes nothing is drawn per rank
    one, two = (_library(tmp_path, "cyclegan", TINY_TRANSFER, n) for n in (None, 2))
    assert two["world"] == 2 and two["ranks"][0] == two["ranks"][1]       # both ranks hold the same weights
    assert two["comm_seconds"] > 0 and one["comm_seconds"] == 0
    for a, b in zip(one["history"], two["history"]):   # the logged losses are the global batch's
        assert a["step"] == b["step"]
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k
    # The networks compute the same function. (A conv bias in front of an instance norm has no effect and a
    # zero gradient; Adam turns the rounding noise of that zero into lr-sized steps, so compare what counts.)
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for name in ("G_ab", "G_ba", "D_a", "D_b"):
        net, cfg = (ResnetGenerator, ResnetConfig) if name.startswith("G") else (PatchDiscriminator, PatchConfig)
        outs = []
        for run in (one, two):
            m = net(cfg.from_dict(run["configs"][name]))
            m.load_state_dict(run["states"][name])
            outs.append(m.eval()(x))
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5, msg=name)


def _trained(run: dict) -> dict[str, torch.Tensor]:
    """The trained weights (a batch norm's running statistics are each rank's own)."""
    return {f"{n}.{k}": v for n, s in run["states"].items() for k, v in s.items()
            if v.is_floating_point() and ".running_" not in k}


def test_with_batch_norm_each_rank_normalises_its_share_and_the_ranks_agree(tmp_path):
    # DCGAN normalises with batch statistics: each rank over its own share, so 2 ranks are not one process
    # normalising the whole batch, but exactly one process normalising each share apart
    two = _library(tmp_path, "dcgan", TINY_GAN, 2)
    assert two["ranks"][0] == two["ranks"][1]             # the averaged gradients keep the ranks identical
    ghost = _library(tmp_path, "dcgan", [*TINY_GAN, "--ghost=2"], None)
    plain = _library(tmp_path, "dcgan", TINY_GAN, None)
    a, b, c = _trained(two), _trained(ghost), _trained(plain)
    # atol 1e-5: the self-conditioned DCGAN's mode-seeking term averages the ranks' pair means, which rounds
    # apart from one process's mean by ~1e-6 after 4 steps; each rank's own term instead is 2e-3 off
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5, msg=k)
    assert max((a[k] - c[k]).abs().max().item() for k in a) > 1e-4   # the whole batch's statistics differ
    # torchrun with one process (a process group of one) trains exactly what a plain process trains
    one = _library(tmp_path, "dcgan", TINY_GAN, 1)
    for name, state in plain["states"].items():
        for k, v in state.items():
            assert torch.equal(one["states"][name][k], v), f"{name}.{k}"


# ---------------------------------------------------------------- the stage doors

FAST = ["data.limit=300", "data.resolution=16", "train.family=dcgan", "train.g_filters=8", "train.d_filters=8",
        "train.batch_size=16", "train.grid_size=16", "train.sample_every=1000", "train.d_steps=1", "device=cpu"]


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


def _ganops(root: Path, *args: str, sets=(), check=True, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ganops", *args, *_sets([*FAST, *sets])], cwd=root, env=ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ranks")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    _ganops(root, "stage", "dataset", "-q")
    return root


def _copy(project: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(project, dest, ignore=shutil.ignore_patterns(".locks", "generator", ".checkpoints",
                                                                               "mlflow.db", "mlartifacts")))


def _weights(root: Path) -> dict[str, torch.Tensor]:
    w = torch.load(root / "data/generator/digits/dcgan/model.pt", weights_only=True)
    return {f"{n}.{k}": v for n, s in w["networks"].items() for k, v in s.items()}


def test_nproc_trains_on_two_ranks_and_rank_0_alone_writes_and_logs(project, tmp_path):
    root = _copy(project, tmp_path / "a")
    proc = _ganops(root, "stage", "train", "--nproc", "2", sets=["train.steps=8", "train.checkpoint_every=4"])
    assert proc.stdout.strip() == "train: data/generator/digits/dcgan"           # one result line
    meta = json.loads((root / "data/generator/digits/dcgan/meta.json").read_text())
    assert meta["world_size"] == 2 and "distributed" not in meta["params"]      # outside the identity
    con = sqlite3.connect(root / "mlflow.db")
    runs = con.execute("select run_uuid from runs where status = 'FINISHED'").fetchall()
    assert len(runs) == 1                                                        # one run for all ranks
    tags = dict(con.execute("select key, value from tags where run_uuid = ?", runs[0]))
    assert tags["ganops.world_size"] == "2" and tags["ganops.backend"] == "gloo"
    steps = [s for (s,) in con.execute("select step from metrics where key = 'd_loss' and run_uuid = ?", runs[0])]
    assert sorted(steps) == sorted(set(steps))                                   # logged once, not per rank
    assert not (root / "data/.checkpoints").exists() or not any((root / "data/.checkpoints").rglob("*.pt"))

    # torchrun's own door trains the same bytes
    other = _copy(project, tmp_path / "b")
    direct = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "ganops", "stage", "train", "-q",
                             *_sets([*FAST, "train.steps=8", "train.checkpoint_every=4"])],
                            cwd=other, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert direct.returncode == 0, direct.stderr[-3000:]
    a, b = _weights(root), _weights(other)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_encoders_and_the_evaluator_train_on_two_ranks_too(project, tmp_path):
    root = _copy(project, tmp_path / "encoders")
    sets = ["embed.encoder=simclr", "embed.epochs=1", "embed.min_steps=4", "embed.batch_size=32",
            "evaluator.epochs=1", "evaluator.min_steps=0", "evaluator.batch_size=32", "tracking.enabled=false"]
    _ganops(root, "stage", "embeddings", "-q", "--nproc", "2", sets=sets)     # SimCLR: negatives from both ranks
    _ganops(root, "stage", "evaluator", "-q", "--nproc", "2", sets=sets)
    for artifact in ("embeddings/digits/simclr", "evaluator/digits"):
        meta = json.loads((root / "data" / artifact / "meta.json").read_text())
        assert meta["world_size"] == 2, artifact
    features = np.asarray(store.load_features(root / "data/embeddings/digits/simclr"))
    assert features.shape[0] == json.loads((root / "data/dataset/digits/meta.json").read_text())["metrics"]["n_train"]
    assert np.isfinite(features).all()


def _kill_rank_after_a_checkpoint(root: Path, sets: list[str], rank: int,
                                  command=("stage", "train")) -> tuple[subprocess.Popen, str, float]:
    """Start `ganops stage train --nproc 2`, SIGKILL one rank once a checkpoint exists; (launcher, its stderr,
    seconds from the kill to the launcher's exit)."""
    cmd = [sys.executable, "-m", "ganops", *command, "-q", "--nproc", "2", *_sets([*FAST, *sets])]
    launcher = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    victim = rank_pid(launcher.pid, rank, deadline)
    ckpts = root / "data/.checkpoints"
    while time.time() < deadline and not list(ckpts.rglob("train.pt")):
        time.sleep(0.1)
    assert list(ckpts.rglob("train.pt")), "no checkpoint was written"
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    return launcher, err, time.time() - killed_at


LONG = ["train.steps=300", "train.checkpoint_every=20", "tracking.enabled=false"]


def test_a_killed_rank_stops_every_rank_and_the_rerun_resumes_bit_exactly(project, tmp_path):
    reference = _copy(project, tmp_path / "reference")
    _ganops(reference, "stage", "train", "-q", "--nproc", "2", sets=LONG)

    root = _copy(project, tmp_path / "killed")
    launcher, err, seconds = _kill_rank_after_a_checkpoint(root, LONG, rank=1)
    assert seconds < 30                                  # every rank stopped, no collective left hanging
    assert launcher.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganops: error: rank 1 was killed by SIGKILL"), err
    assert "resume" in lines[0] and not (root / "data/generator/digits/dcgan/meta.json").exists()
    step = int(torch.load(next((root / "data/.checkpoints").rglob("train.pt")), weights_only=True)["step"])
    assert 20 <= step < 300

    again = _ganops(root, "stage", "train", "--nproc", "2", sets=LONG)
    assert f"resuming from step {step} of 300" in again.stderr
    a, b = _weights(root), _weights(reference)
    assert all(torch.equal(a[k], b[k]) for k in b)       # as if never killed


def test_a_two_rank_checkpoint_resumes_on_one_process_and_says_so(project, tmp_path):
    root = _copy(project, tmp_path / "p")
    tracked = [s for s in LONG if not s.startswith("tracking.")]
    launcher, _, _ = _kill_rank_after_a_checkpoint(root, tracked, rank=0, command=("run", "--until", "train"))
    assert launcher.returncode == 2
    # rank 0 held the stage's MLflow run: the launcher ends it and the pipeline's run, none stays RUNNING
    con = sqlite3.connect(root / "mlflow.db")
    status = dict(con.execute("select name, status from runs"))
    assert status["pipeline (cli)"] == "FAILED" and status["train dcgan"] == "KILLED", status
    done = _ganops(root, "stage", "train", sets=tracked)      # one process now
    assert "made on 2 process(es), this run has 1" in done.stderr and "same global batch of 16" in done.stderr
    step = int(done.stderr.split("resuming from step ")[1].split()[0])
    meta = json.loads((root / "data/generator/digits/dcgan/meta.json").read_text())
    assert meta["metrics"]["steps"] == 300
    # the artifact says which world sizes trained it, each from the step it took over
    assert meta["worlds"] == [{"from_step": 0, "world_size": 2}, {"from_step": step, "world_size": 1}]
    assert meta["world_size"] == 1
    tags = dict(sqlite3.connect(root / "mlflow.db").execute(
        "select t.key, t.value from tags t join runs r on r.run_uuid = t.run_uuid where r.name = 'train dcgan' "
        "and r.status = 'FINISHED'"))
    assert tags["ganops.world_size"] == "1"          # the continued run says how it ended


def test_a_nan_on_the_ranks_stops_them_all_at_one_step_with_one_line(project, tmp_path):
    root = _copy(project, tmp_path / "nan")
    t0 = time.time()
    proc = _ganops(root, "stage", "train", "-q", "--nproc", "2", check=False,
                   sets=["train.steps=50", "train.lr_d=1e38", "train.lr_g=1e38", "tracking.enabled=false"])
    assert proc.returncode == 2 and time.time() - t0 < 120
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganops: error: non-finite loss at step "), proc.stderr


RANK_1_MEMORY = """
import os, resource
if os.environ.get("RANK") == "1":   # the data segment of rank 1 alone is capped: its allocations fail past it
    resource.setrlimit(resource.RLIMIT_DATA, (1_500_000_000, 1_500_000_000))
"""


def test_out_of_memory_mid_step_on_one_rank_stops_every_rank_with_one_line(project, tmp_path):
    root = _copy(project, tmp_path / "oom")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RANK_1_MEMORY)   # runs first in every rank torchrun starts
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [ENV.get("PYTHONPATH")])])}
    # about 2.5 GB a step per rank: the check before the first step lets it through (the machine has it), rank
    # 1's allocator then fails in the middle of the step
    big = ["train.steps=3", "train.batch_size=4096", "train.g_filters=64", "train.d_filters=64",
           "tracking.enabled=false"]
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "ganops", "stage", "train", "-q", "--nproc", "2",
                           *_sets([*FAST, *big])], cwd=root, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2 and time.time() - t0 < 90
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganops: error: rank 1: out of memory at step 1 on cpu"), proc.stderr
    assert "train.batch_size=4096 (the global batch, 2048 per process)" in lines[0]
    assert not (root / "data/generator/digits/dcgan").exists()


def test_the_doors_refuse_what_the_ranks_cannot_do_before_launching(project, tmp_path):
    root = _copy(project, tmp_path / "bad")
    odd = _ganops(root, "stage", "train", "-q", "--nproc", "2", sets=["train.batch_size=15"], check=False)
    assert odd.returncode == 2 and odd.stderr.strip() == (
        "ganops: error: train.batch_size=15 is the global batch, split evenly over the 2 processes "
        "(distributed.nproc_per_node × distributed.nnodes); set it to a multiple of 2")
    # a step that cannot fit in memory is refused on every rank before the first step, in one line
    huge = _ganops(root, "stage", "train", "-q", "--nproc", "2", sets=["train.batch_size=4000000"], check=False)
    lines = [line for line in huge.stderr.splitlines() if line.strip()]
    assert huge.returncode == 2 and len(lines) == 1 and "GiB for a step" in lines[0], huge.stderr
    zero = _ganops(root, "stage", "train", "--nproc", "0", check=False)
    assert zero.returncode == 2 and "--nproc 0" in zero.stderr
    many = _ganops(root, "stage", "train", check=False, sets=["distributed.nnodes=2"])
    assert many.returncode == 2 and "distributed.rdzv_endpoint" in many.stderr and "Traceback" not in many.stderr
    # a stage that trains nothing runs on one process, not under torchrun
    under = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                            "-m", "ganops", "stage", "neighbors", "-q", *_sets(FAST)], cwd=root, env=ENV,
                           capture_output=True, text=True, timeout=120, check=False)
    assert under.returncode != 0 and "the neighbors stage does not train" in under.stderr


def test_ctrl_c_stops_every_rank_with_one_line_and_the_rerun_resumes(project, tmp_path):
    root = _copy(project, tmp_path / "ctrl-c")
    cmd = [sys.executable, "-m", "ganops", "stage", "train", "-q", "--nproc", "2", *_sets([*FAST, *LONG])]
    # a terminal's Ctrl-C: SIGINT to the foreground process group (torchrun puts each rank in its own session)
    launcher = subprocess.Popen(cmd, cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((root / "data/.checkpoints").rglob("train.pt")):
        time.sleep(0.1)
    os.killpg(launcher.pid, signal.SIGINT)
    _, err = launcher.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert launcher.returncode == 130 and len(lines) == 1, err
    assert lines[0].startswith("ganops: interrupted at step ") and "rerun the same command to resume" in lines[0]
    again = _ganops(root, "stage", "train", "--nproc", "2", sets=LONG)
    assert "resuming from step" in again.stderr
