"""What a person sees while a stage trains: INFO log lines every few percent when stderr is not a
terminal (DVC, Dagster, CI), a bar on a terminal, and a line saying where a resumed run picks up."""

from __future__ import annotations

import io
import logging
import re
import sys

import numpy as np
import pytest
import torch
from conftest import fast_overrides
from torch.nn import functional as F

import ganops.core.params as P
from ganops.embed import embed
from ganops.train import train

torch.set_num_threads(1)

GAN_LINE = re.compile(r"train dcgan: step (\d+)/(\d+) \((\d+)%\)(.*), eta [\dhms]+")
EMBED_LINE = re.compile(r"train simclr: epoch (\d+)/2 \((\d+)%\)(.*), eta [\dhms]+")


def digits(n: int, side: int = 16) -> np.ndarray:
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images[:n].astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8).numpy()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return digits(256)


@pytest.fixture
def stderr(monkeypatch) -> io.StringIO:
    """stderr as a stage sees it under DVC, Dagster or CI: a pipe, not a terminal."""
    fake = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake)
    return fake


@pytest.fixture
def logs(caplog) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="ganops")
    return caplog


def gan_params(steps: int) -> P.Params:
    return P.load(None, fast_overrides(**{"train.family": "dcgan", "train.steps": steps, "train.log_every": 5,
                                          "train.z_dim": 16, "train.ema": "false"}))


def values(rest: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+)=(\S+)", rest)}


def progress_lines(logs, pattern: re.Pattern) -> list[re.Match]:
    records = [r for r in logs.records if r.name == "ganops.core.progress"]
    assert all(r.levelno == logging.INFO for r in records)
    matches = [pattern.fullmatch(r.getMessage()) for r in records]
    assert all(matches), [r.getMessage() for r in records]
    return matches


def test_gan_training_off_a_terminal_logs_progress_every_5_percent_with_losses(images, stderr, logs):
    r = train(gan_params(40), images)
    lines = progress_lines(logs, GAN_LINE)
    steps = [int(m[1]) for m in lines]
    assert steps == list(range(2, 41, 2))                          # 5% of 40 steps, in order, to the end
    assert {int(m[2]) for m in lines} == {40}
    assert [int(m[3]) for m in lines] == [100 * s // 40 for s in steps]
    assert lines[-1][3] == "100"
    by_step = {e["step"]: e for e in r.history}
    for step, m in zip(steps, lines):
        shown = values(m[4])
        if step < 5:                                                # no loss known before the first log step
            assert "d_loss" not in shown
            continue
        known = by_step[step // 5 * 5]                              # the latest logged losses, not fresher
        assert shown["d_loss"] == pytest.approx(known["d_loss"], rel=1e-3)
        assert shown["g_loss"] == pytest.approx(known["g_loss"], rel=1e-3)
        assert re.search(r" [\d.]+ steps/s$", m[4])
    assert values(lines[-1][4])["g_loss"] == pytest.approx(r.final_losses["g_loss"], rel=1e-3)
    assert "\r" not in stderr.getvalue()                            # no bar frames in the log file


def test_resumed_gan_training_says_where_it_resumes_and_counts_from_there(images, stderr, logs, tmp_path):
    ck = tmp_path / "train.pt"
    train(gan_params(20), images, checkpoint_path=ck)
    logs.clear()
    r = train(gan_params(40), images, checkpoint_path=ck)
    assert r.resumed_from == 20
    said = [rec.getMessage() for rec in logs.records if rec.name == "ganops.train.trainer"]
    assert said == [f"train dcgan: resuming from step 20 of 40 (checkpoint {ck})"]
    lines = progress_lines(logs, GAN_LINE)
    assert [int(m[1]) for m in lines] == list(range(22, 41, 2))
    at_20 = {e["step"]: e for e in r.history}[20]                   # the checkpoint's losses, until step 25 logs
    assert values(lines[0][4])["d_loss"] == pytest.approx(at_20["d_loss"], rel=1e-3)


def test_on_a_terminal_a_bar_is_drawn_and_nothing_is_logged(images, monkeypatch, logs):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    train(gan_params(10), images)
    assert not [r for r in logs.records if r.name == "ganops.core.progress"]
    assert re.search(r"train dcgan: 100%.*10/10.*d_loss=[-\d.e]+, g_loss=[-\d.e]+", tty.getvalue())


def test_gan_progress_false_is_silent(images, stderr, logs):
    train(gan_params(10), images, progress=False)
    assert not [r for r in logs.records if r.name == "ganops.core.progress"]


def test_encoder_training_logs_epoch_progress_and_resumes_from_its_checkpoint(images, stderr, logs, tmp_path):
    p = P.Params(seed=0, device="cpu", embed={"encoder": "simclr", "epochs": 2, "min_steps": 0, "batch_size": 64, "dim": 16})
    ck = tmp_path / "embed.pt"

    class Interrupt(Exception):
        pass

    def stop_after_first_epoch(name: str, value: float, step: int) -> None:
        raise Interrupt

    with pytest.raises(Interrupt):
        embed(images, None, p, torch.device("cpu"), checkpoint=ck, log=stop_after_first_epoch)
    first = progress_lines(logs, EMBED_LINE)
    assert [(int(m[1]), int(m[2])) for m in first] == [(1, 12), (1, 25), (1, 37), (1, 50)]  # 4 of 8 batches
    assert "loss" not in values(first[0][3]) and "loss" in values(first[-1][3])
    epoch1_loss = values(first[-1][3])["loss"]

    logs.clear()
    res = embed(images, None, p, torch.device("cpu"), checkpoint=ck)
    said = [rec.getMessage() for rec in logs.records if rec.name == "ganops.train.trainer"]
    assert f"train simclr: resuming from epoch 1 of 2 (checkpoint {ck})" in said
    lines = progress_lines(logs, EMBED_LINE)
    assert [(int(m[1]), int(m[2])) for m in lines] == [(2, 62), (2, 75), (2, 87), (2, 100)]
    assert values(lines[0][3])["loss"] == epoch1_loss               # mid-epoch: the last epoch's loss
    assert values(lines[-1][3])["loss"] == pytest.approx(res.metrics["final_loss"], rel=1e-3)


def test_encoder_training_on_a_terminal_draws_a_bar_per_epoch(images, monkeypatch, logs):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    monkeypatch.setattr(sys, "stderr", tty)
    p = P.Params(seed=0, device="cpu", embed={"encoder": "simclr", "epochs": 2, "min_steps": 0, "batch_size": 64, "dim": 16})
    embed(images, None, p, torch.device("cpu"))
    assert not [r for r in logs.records if r.name == "ganops.core.progress"]
    for epoch in (1, 2):            # (a finished epoch's bar is erased: which frames show depends on timing)
        assert re.search(rf"train simclr epoch {epoch}/2: +\d+%\|.*/4 ", tty.getvalue())
