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


def test_an_icgan_samples_on_another_datasets_instances_in_their_order(project, tmp_path):
    from sklearn.datasets import load_digits

    from ganops.commands.sample import load_image, sample_instances
    from ganops.core import params as P

    _ganops(project, "run", "--until", "neighbors")
    _ganops(project, "stage", "train")
    folder = tmp_path / "mine"
    folder.mkdir()
    for i, name in enumerate(["c.png", "a.png", "b.png"]):      # the order is the sorted paths', not the writing's
        img = np.zeros((24, 24), np.uint8)
        img[4:20, 4 + 5 * i:8 + 5 * i] = 255
        Image.fromarray(img).save(folder / name)
    out = tmp_path / "grid.png"
    proc = _ganops(project, "sample", "--instances", str(folder), "--per-instance", "4", "--out", str(out), "--npy")
    assert "3 instances × 4 samples" in proc.stdout
    samples = np.load(out.with_suffix(".npy"))
    assert samples.shape == (12, 1, 16, 16) and samples.dtype == np.uint8
    with Image.open(out) as im:
        assert im.format == "PNG"

    p = P.load(project / "params.yaml", FAST)
    got = sample_instances(p, project, str(folder), per_instance=4)
    assert got.sources == ["a.png", "b.png", "c.png"]                # relative to the folder
    for i, name in enumerate(("a.png", "b.png", "c.png")):        # prepared as the dataset's images are
        assert np.array_equal(got.instances[i], load_image(folder / name, 1, 16))
    assert np.array_equal(got.samples, samples)                   # Python and the CLI: the same samples
    assert not np.array_equal(sample_instances(p, project, str(folder), per_instance=4, seed=1).samples, samples)

    digits = sample_instances(p, project, "digits", limit=7)     # a dataset by name, in its own order
    assert digits.samples.shape == (7, 1, 16, 16)
    assert digits.labels.tolist() == load_digits().target[:7].tolist()

    proc = _ganops(project, "sample", "--instances", str(tmp_path / "nowhere"), check=False)
    assert proc.returncode == 2 and "neither a dataset" in proc.stderr and "nowhere" in proc.stderr
    proc = _ganops(project, "sample", "--instances", "digits", "--n", "5", check=False)
    assert proc.returncode == 2 and "--n does not apply with --instances" in proc.stderr
    proc = _ganops(project, "sample", "--instances", "digits", "--label", "2", check=False)
    assert proc.returncode == 2 and "class-conditional IC-GAN" in proc.stderr


def test_cgan_trains_and_samples_by_label(project, tmp_path):
    sets = [*FAST, "train.family=cgan"]
    _ganops(project, "stage", "train", sets=sets)
    out = tmp_path / "three.png"
    _ganops(project, "sample", "--n", "4", "--out", str(out), "--label", "3", "--npy", sets=sets)
    assert np.load(out.with_suffix(".npy")).shape == (4, 1, 16, 16)
    proc = _ganops(project, "sample", "--label", "10", sets=sets, check=False)
    assert proc.returncode == 2 and "0..9" in proc.stderr
    proc = _ganops(project, "sample", "--instances", "digits", sets=sets, check=False)
    assert proc.returncode == 2 and "--instances needs an IC-GAN" in proc.stderr
    proc = _ganops(project, "sample", "--label", "3", "--seed", "-2", sets=sets, check=False)
    assert proc.returncode == 2 and "--seed -2: a noise seed is an integer ≥ 0" in proc.stderr
