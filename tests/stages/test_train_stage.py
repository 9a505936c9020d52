"""The train stage through the command line: errors that say what to run, a SIGKILLed run that
resumes from its checkpoint, and `ganops sample` for each way of conditioning."""

import functools
import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI_ENV, REPO, fast_overrides, run_ganops, wait_for_checkpoint
from PIL import Image

FAST = fast_overrides(**{"embed.encoder": "pixels", "tracking.enabled": "false"})
ENV = CLI_ENV


_ganops = functools.partial(run_ganops, sets=FAST)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    _ganops(root, "run", "--until", "dataset")
    return root


def test_icgan_without_neighborhoods_says_which_stage_to_run(project, tmp_path):
    import shutil

    # the dataset alone (another test of this module may have built the neighborhoods already)
    alone = tmp_path / "alone"
    shutil.copytree(project, alone, ignore=shutil.ignore_patterns(".locks", "embeddings", "neighbors", "checkpoints"))
    proc = _ganops(alone, "stage", "train", check=False)
    assert proc.returncode == 2 and "ganops stage neighbors" in proc.stderr and "Traceback" not in proc.stderr


def test_sigkilled_training_resumes_from_its_checkpoint(project):
    import shutil

    _ganops(project, "run", "--until", "neighbors")
    generator = project / "data/generator/digits/pixels/k5/icgan"
    shutil.rmtree(generator, ignore_errors=True)     # another test of this module may have trained one
    sets = [*FAST, "train.steps=600", "train.checkpoint_every=20"]
    cmd = ["ganops", "stage", "train", "-q", *(a for s in sets for a in ("--set", s))]
    proc = subprocess.Popen(cmd, cwd=project, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = wait_for_checkpoint(project, "icgan", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (generator / "meta.json").exists()  # nothing half-written
    import torch

    killed_at = int(torch.load(ckpt, weights_only=True)["step"])
    assert 20 <= killed_at < 600 and killed_at % 20 == 0

    # a run of other parameters (here fewer steps) neither resumes nor is blocked by that checkpoint
    _ganops(project, "stage", "train", sets=FAST)
    assert ckpt.exists() and json.loads((generator / "meta.json").read_text())["metrics"]["steps"] == 60

    done = _ganops(project, "stage", "train", sets=sets, quiet=False)
    assert f"resuming from step {killed_at} of 600" in done.stderr
    meta = json.loads((generator / "meta.json").read_text())
    assert meta["metrics"]["steps"] == 600
    history = json.loads((generator / "history.json").read_text())
    assert [h["step"] for h in history] == list(range(50, 601, 50))  # one history across the kill
    assert not ckpt.exists()  # a finished run leaves no stale checkpoint behind


def test_sample_from_a_users_image_and_the_errors(project, tmp_path):
    _ganops(project, "run", "--until", "neighbors")
    _ganops(project, "stage", "train")
    img = np.zeros((40, 40), np.uint8)
    img[8:32, 18:22] = 255  # a "1"
    Image.fromarray(img).save(tmp_path / "mine.png")
    out = tmp_path / "grid.png"
    _ganops(project, "sample", "--n", "9", "--out", str(out), "--instance", str(tmp_path / "mine.png"), "--npy")
    samples = np.load(out.with_suffix(".npy"))
    assert samples.shape == (9, 1, 16, 16) and samples.dtype == np.uint8 and samples.std() > 0
    with Image.open(out) as im:
        assert im.format == "PNG"
    again = tmp_path / "again.png"
    _ganops(project, "sample", "--n", "9", "--out", str(again), "--instance", str(tmp_path / "mine.png"), "--npy")
    assert np.array_equal(np.load(again.with_suffix(".npy")), samples)  # same seed, same samples

    proc = _ganops(project, "sample", "--label", "3", check=False)
    assert proc.returncode == 2 and "--label needs a class-conditional generator" in proc.stderr
    proc = _ganops(project, "sample", "--instance", str(tmp_path / "nope.png"), check=False)
    assert proc.returncode == 2 and "nope.png" in proc.stderr


def test_cgan_trains_and_samples_by_label(project, tmp_path):
    sets = [*FAST, "train.family=cgan"]
    _ganops(project, "stage", "train", sets=sets)
    out = tmp_path / "three.png"
    _ganops(project, "sample", "--n", "4", "--out", str(out), "--label", "3", "--npy", sets=sets)
    assert np.load(out.with_suffix(".npy")).shape == (4, 1, 16, 16)
    proc = _ganops(project, "sample", "--label", "10", sets=sets, check=False)
    assert proc.returncode == 2 and "0..9" in proc.stderr
    proc = _ganops(project, "sample", "--label", "3", "--seed", "-2", sets=sets, check=False)
    assert proc.returncode == 2 and "--seed -2: a noise seed is an integer ≥ 0" in proc.stderr
