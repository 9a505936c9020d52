"""The dataset stage streams an image folder: decoded by DataLoader workers a chunk at a time into shards,
the same artifact as the folder read whole, unreadable files named, and a killed stage resumed at the first
shard it had not finished. Every file is a real PNG written with PIL."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI_ENV, ganops_args, one_line_error
from PIL import Image

from ganops.core import params as P
from ganops.data import store, writer
from ganops.data.folder import load_folder
from ganops.stages import run_stage


def _folder(root: Path, n: int, side: int = 20, colour_every: int = 5) -> Path:
    """n files in class subfolders a/ b/ c/: grey mostly, every ``colour_every``-th one colour."""
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / "abc"[i % 3] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % colour_every == 0:
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB").save(path)
        else:
            Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8), "L").save(path)
    return root


def _params(root: Path, *extra: str):
    return P.load(None, ["data.dataset=image_folder", f"data.root={root}", "data.resolution=16",
                         "tracking.enabled=false", "device=cpu", *extra])


def test_a_streamed_folder_is_the_folder_read_whole(tmp_path):
    folder = _folder(tmp_path / "imgs", 260)
    p = _params(folder, "data.shard_rows=100", "distributed.data_workers=2")
    out = run_stage("dataset", p, tmp_path).path
    assert sorted(f.name for f in (out / "images").iterdir()) == ["00000.npy", "00001.npy", "00002.npy"]

    whole = load_folder(p.data, tmp_path, p.seed)        # every file decoded in memory, as before
    one = tmp_path / "one"
    one.mkdir()
    q = p.data.model_copy(update={"shard_rows": 100_000})
    writer.write_dataset(one, store.prepare(whole, q, p.seed), q, p.seed)
    np.testing.assert_array_equal(np.asarray(store.load_images(out)), np.asarray(store.load_images(one)))
    np.testing.assert_array_equal(np.asarray(store.load_holdout(out)[0]), np.asarray(store.load_holdout(one)[0]))
    assert store.load_manifest(out).equals(store.load_manifest(one))
    streamed, read_whole = (json.loads((d / "summary.json").read_text()) for d in (out, one))
    assert streamed["metrics"].pop("n_shards") == 3 and read_whole["metrics"].pop("n_shards") == 1
    assert streamed == read_whole
    assert streamed["source_report"]["channels_by_majority"] == {"grey": 208, "colour": 52}
    assert streamed["source_report"]["conversions"] == {"RGB->L": 52}


def test_unreadable_files_are_named_or_skipped(project):
    folder = _folder(project / "imgs", 120)
    for name in ("a/00003.png", "c/00110.png"):
        (folder / name).write_bytes(b"not a png")
    sets = ["data.dataset=image_folder", "data.root=imgs", "data.resolution=16", "data.shard_rows=50",
            "tracking.enabled=false", "device=cpu", "distributed.data_workers=2"]
    proc = subprocess.run(ganops_args("stage", "dataset", sets=sets), cwd=project, env=CLI_ENV, capture_output=True,
                          text=True)
    line = one_line_error(proc)
    assert "2 of 120 files" in line and "data.skip_corrupt=true" in proc.stderr
    assert "a/00003.png" in proc.stderr and "c/00110.png" in proc.stderr
    assert not (project / "data/dataset/image_folder").exists()

    # skipping them goes on from the shards the stopped run finished (those without an unreadable file)
    proc = subprocess.run(ganops_args("stage", "dataset", sets=[*sets, "data.skip_corrupt=true"], quiet=False),
                          cwd=project, env=CLI_ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = re.search(r"resuming the training images at shard (\d) of 3 \((\d) already written", proc.stderr)
    assert resumed and 1 <= int(resumed[2]) < 3, proc.stderr[-2000:]     # the shard with a bad file was redone
    assert not list((project / "data/.checkpoints/dataset").iterdir())       # the scratch went with success
    summary = json.loads((project / "data/dataset/image_folder/summary.json").read_text())
    skipped = summary["source_report"]["skipped"]
    assert skipped["count"] == 2 and sorted(Path(f).name for f in skipped["files"]) == ["00003.png", "00110.png"]
    assert summary["metrics"]["n_images"] == 118 and summary["metrics"]["n_skipped"] == 2
    sources = set(store.load_manifest(project / "data/dataset/image_folder")["source"])
    assert not sources & {"a/00003.png", "c/00110.png"}


def test_a_folder_that_cannot_be_read_leaves_no_scratch(project):
    sets = ["data.dataset=image_folder", "data.root=missing", "tracking.enabled=false", "device=cpu"]
    proc = subprocess.run(ganops_args("stage", "dataset", sets=sets), cwd=project, env=CLI_ENV, capture_output=True,
                          text=True)
    assert "is not a directory" in one_line_error(proc)
    assert not list((project / "data/.checkpoints/dataset").glob("*"))


def test_a_killed_dataset_stage_resumes_at_its_first_unfinished_shard(project):
    """SIGKILL once the first shard is recorded; the rerun keeps that shard's file (its mtime survives the move
    into the artifact) and builds the artifact a clean run builds."""
    folder = _folder(project / "imgs", 1500, side=256, colour_every=10**9)   # ~2 ms a file to decode
    sets = ["data.dataset=image_folder", "data.root=imgs", "data.resolution=16", "data.shard_rows=250",
            "tracking.enabled=false", "device=cpu", "distributed.data_workers=1"]
    proc = subprocess.Popen(ganops_args("stage", "dataset", sets=sets), cwd=project, env=CLI_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    records = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((project / "data").glob(".checkpoints/dataset/*/records/images/00000.json"))
        if found:
            records = found[0].parent
            break
        time.sleep(0.02)
    assert records is not None, "the stage ended before its first shard was recorded"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(records.glob("*.json"))
    assert 1 <= len(done) < 5, "the kill came too late to leave shards to do"
    first = records.parent.parent / "images" / "00000.npy"
    stamp = first.stat().st_mtime_ns

    rerun = subprocess.run(ganops_args("stage", "dataset", sets=sets, quiet=False), cwd=project, env=CLI_ENV,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming the training images at shard {len(done)} of 6 ({len(done)} already written" in rerun.stderr
    out = project / "data/dataset/image_folder"
    assert (out / "images" / "00000.npy").stat().st_mtime_ns == stamp       # decoded once, by the killed run
    assert not records.exists()                                             # the scratch went with success

    clean = project.parent / "clean"
    clean.mkdir()
    p = _params(folder, "data.shard_rows=250")
    fresh = run_stage("dataset", p, clean).path
    np.testing.assert_array_equal(np.asarray(store.load_images(out)), np.asarray(store.load_images(fresh)))
    assert store.load_manifest(out).equals(store.load_manifest(fresh))
    assert (out / "summary.json").read_bytes() == (fresh / "summary.json").read_bytes()


@pytest.mark.parametrize("rows", [1, 7])
def test_shard_sizes_cut_the_same_images(tmp_path, rows):
    """Any shard size (one image a shard included) holds the same images in the same order."""
    folder = _folder(tmp_path / "imgs", 30)
    small = run_stage("dataset", _params(folder, f"data.shard_rows={rows}", "distributed.data_workers=0"),
                      tmp_path / "small").path
    whole = run_stage("dataset", _params(folder), tmp_path / "whole").path
    np.testing.assert_array_equal(np.asarray(store.load_images(small)), np.asarray(store.load_images(whole)))
    assert store.load_manifest(small).equals(store.load_manifest(whole))
