"""Faults caused for real: a killed `dvc repro`, a twin run, a file size limit (EFBIG), a read-only
tree, a truncated array, a killed run's MLflow record. Nothing is lost, mixed or left behind, and
each failure is one line that names the path."""

import functools
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CLI_ENV, REPO, fast_overrides, ganops_args, one_line_error, run_ganops, wait_for_checkpoint

from ganops.core import artifacts as A
from ganops.core import params as P

FAST = fast_overrides(**{"embed.encoder": "pixels"})
ENV = CLI_ENV
GENERATOR = "data/generator/digits/pixels/k5/icgan"


_ganops = functools.partial(run_ganops, sets=FAST)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in (root / "data").rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """dataset → embeddings → neighbors, once; tests copy it."""
    root = tmp_path_factory.mktemp("prepared")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    _ganops(root, "run", "--until", "neighbors")
    return root


@pytest.fixture
def project(prepared, tmp_path) -> Path:
    root = tmp_path / "p"
    shutil.copytree(prepared, root, ignore=shutil.ignore_patterns(".locks"))
    return root


def _start_training(root: Path, sets: list[str]) -> subprocess.Popen:
    # Ctrl-C live, as in a terminal, even when the test runner itself was started with SIGINT ignored (a
    # background job of a non-interactive shell): an ignored SIGINT is inherited and Python keeps it ignored
    return subprocess.Popen(ganops_args("stage", "train", sets=sets), cwd=root, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_a_killed_dvc_repro_keeps_the_previous_model(project):
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(REPO / "ganops", project / "ganops", ignore=shutil.ignore_patterns("__pycache__"))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=project, env=ENV, check=True)
    long = [*FAST, "train.steps=4000", "train.checkpoint_every=20"]
    _ganops(project, "stage", "train")                       # a model built by the CLI, not in DVC's cache
    model = project / GENERATOR / "model.pt"
    before = model.read_bytes()
    raw = P.apply_overrides(P.read_yaml(project / "params.yaml"), long)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    # --single-item: the stage alone (its upstream, built by the CLI, is not in DVC's lock and would rerun first)
    proc = subprocess.Popen(["dvc", "repro", "--single-item", "train_icgan"], cwd=project, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    wait_for_checkpoint(project, "icgan", proc, timeout=300)
    _kill(proc)                                              # dvc and the stage it runs
    assert model.read_bytes() == before                      # the previous model is intact
    assert json.loads((project / GENERATOR / "meta.json").read_text())["metrics"]["steps"] == 60


def test_a_twin_run_is_refused_with_its_pid_and_a_different_run_proceeds(project):
    long = [*FAST, "train.steps=1000000", "train.checkpoint_every=20"]   # still running when we are done
    first = _start_training(project, long)
    try:
        wait_for_checkpoint(project, "icgan", first)
        twin = _ganops(project, "stage", "train", sets=long, check=False)
        line = one_line_error(twin)
        assert "already running" in line and f"pid {first.pid}" in line
        for other in ([*FAST, "train.lr_g=0.0001"], FAST):   # other lr, other steps: other runs, they proceed
            assert _ganops(project, "stage", "train", sets=other).returncode == 0
        meta = json.loads((project / GENERATOR / "meta.json").read_text())
        assert meta["params"]["train"]["steps"] == 60
        assert len(list((project / "data/.checkpoints/train").glob("digits-icgan-*"))) == 1   # only the first's
        assert first.poll() is None                                                        # undisturbed
    finally:
        _kill(first)


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_failed_write_is_one_line_and_leaves_no_temporary(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    sets = [*FAST, "tracking.enabled=false"]
    # the one shard of 300 16×16 images is 77 kB: a 40 kB limit makes its write fail half way
    proc = _ganops(root, "stage", "dataset", sets=sets, check=False, preexec_fn=_limit_file_size(40_000))
    line = one_line_error(proc)
    assert "images/00000.npy" in line and "size limit" in line     # the shard being written
    assert _leftovers(root) == []
    assert not (root / "data/dataset/digits/meta.json").exists()
    # a temporary left by a writer that died (a real, finished process) is cleaned by the next run
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = root / "data/dataset/digits" / f".images.npy.tmp-{dead.pid}"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half")
    _ganops(root, "stage", "dataset", sets=sets)
    assert _leftovers(root) == [] and (root / "data/dataset/digits/meta.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (a mount namespace)")
def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path):
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    # data/ on a 32 kB file system: images.npy (77 kB) fills it half way through
    mount = 'mount -t tmpfs -o size=32k tmpfs "$0" && "$@"; rc=$?; find "$0" -name "*.tmp-*"; exit $rc'
    cmd = ["unshare", "-m", "sh", "-c", mount, str(root / "data"),
           *ganops_args("stage", "dataset", sets=[*FAST, "tracking.enabled=false"])]
    proc = subprocess.run(cmd, cwd=root, env=ENV, capture_output=True, text=True)
    line = one_line_error(proc)
    assert "images/00000.npy" in line and "disk is full" in line
    assert proc.stdout.strip() == ""           # no temporary left on the full file system


def _read_only(path: Path, cmd: list[str]) -> list[str]:
    """Run ``cmd`` with ``path`` on a read-only mount (root), or read-only by permissions (other users)."""
    if os.geteuid() == 0:
        return ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(path), *cmd]
    subprocess.run(["chmod", "-R", "a-w", str(path)], check=True)
    return cmd


def test_training_on_a_read_only_tree_fails_before_the_first_step(project):
    cmd = _read_only(project / "data", ganops_args("stage", "train", sets=[*FAST, "tracking.enabled=false"]))
    try:
        proc = subprocess.run(cmd, cwd=project, env=ENV, capture_output=True, text=True)
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(project / "data")])
    line = one_line_error(proc)
    assert "data/generator" in line and ("read-only" in line or "permission" in line)
    assert "step" not in proc.stderr.replace(line, "")        # no training step ran
    assert not list((project / "data/.checkpoints").glob("train/*/train.pt"))


def test_a_truncated_array_names_its_file_and_the_stage_to_rerun(project):
    features = project / "data/embeddings/digits/pixels/features.npy"
    data = features.read_bytes()
    features.write_bytes(data[: len(data) // 2])
    line = one_line_error(_ganops(project, "stage", "neighbors", check=False))
    assert "data/embeddings/digits/pixels/features.npy" in line and "ganops stage embeddings" in line


def _runs(root: Path) -> dict[str, dict]:
    con = sqlite3.connect(root / "mlflow.db")
    runs = {r: {"status": s} for r, s in con.execute("select run_uuid, status from runs")}
    for run, key, value in con.execute("select run_uuid, key, value from tags"):
        runs[run][key] = value
    for run, key, step in con.execute("select run_uuid, key, step from metrics"):
        runs[run].setdefault("steps", {}).setdefault(key, set()).add(step)
    return runs


def test_a_killed_run_is_marked_killed_and_its_resume_continues_it(project):
    sets = [*FAST, "train.steps=400", "train.checkpoint_every=20", "train.log_every=10"]
    proc = _start_training(project, sets)
    ckpt = wait_for_checkpoint(project, "icgan", proc)
    _kill(proc)
    killed = json.loads((ckpt.parent / "mlflow_run.json").read_text())["run_id"]
    assert _runs(project)[killed]["status"] == "RUNNING"           # what the dead process left
    _ganops(project, "stage", "train", sets=[*FAST, "train.lr_g=0.0001"])  # any later stage notices
    assert _runs(project)[killed]["status"] == "KILLED"
    import torch

    at = int(torch.load(ckpt, weights_only=True)["step"])
    _ganops(project, "stage", "train", sets=sets)
    run = _runs(project)[killed]
    assert run["status"] == "FINISHED" and run["ganops.resumed"] == "true"
    steps = run["steps"]["g_loss"]
    assert min(steps) < at < max(steps) == 400                      # one history across the kill
    assert not [r for r in _runs(project).values() if r["status"] == "RUNNING"]


def test_sample_refuses_a_generator_of_other_parameters_or_embeddings(project):
    _ganops(project, "stage", "train")
    line = one_line_error(_ganops(project, "sample", "--set", "train.lr_g=0.001", check=False))
    assert "train.lr_g" in line and "ganops stage train" in line
    line = one_line_error(_ganops(project, "sample", sets=[*FAST, "embed.encoder=classifier"], check=False))
    assert "no icgan generator for these parameters" in line and "ganops stage train --set train.family=icgan" in line
    # the embeddings are rebuilt (here: their rows permuted) after the generator was trained on them
    emb = project / "data/embeddings/digits/pixels"
    feats = np.load(emb / "features.npy")
    A.atomic_save_npy(emb / "features.npy", feats[::-1].copy())
    meta = json.loads((emb / "meta.json").read_text())
    meta["content_hash"] = A.content_hash(emb)
    A.atomic_write_json(emb / "meta.json", meta)
    line = one_line_error(_ganops(project, "sample", check=False))
    assert "other embeddings" in line and "ganops stage train" in line
    # embeddings rebuilt with other parameters: rebuilding them comes first, then training
    meta["params"]["embed"]["epochs"] += 2
    A.atomic_write_json(emb / "meta.json", meta)
    line = one_line_error(_ganops(project, "sample", check=False))
    assert "embed.epochs" in line and "ganops stage embeddings" in line and "Then train again" in line


def test_a_copied_project_writes_mlflow_artifacts_into_itself(project, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    original = {p for p in (project / "mlartifacts").rglob("*")}
    time.sleep(0.01)
    _ganops(copy, "stage", "neighbors")
    assert {p for p in (project / "mlartifacts").rglob("*")} == original     # the original is untouched
    con = sqlite3.connect(copy / "mlflow.db")
    locations = [r[0] for r in con.execute("select artifact_uri from runs")]
    assert locations and all(loc.startswith((copy / "mlartifacts").as_uri()) for loc in locations)


def test_a_failing_stage_fails_its_pipeline_run(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    one_line_error(_ganops(root, "run", sets=[*FAST, "neighbors.k=300"], check=False))   # k ≥ N: neighbors fails
    runs = _runs(root).values()
    by_stage = {r.get("ganops.stage", "pipeline"): r["status"] for r in runs}
    assert by_stage == {"pipeline": "FAILED", "dataset": "FINISHED", "embeddings": "FINISHED", "neighbors": "FAILED"}


def test_ctrl_c_is_one_line_the_run_killed_and_the_rerun_resumes(project):
    sets = [*FAST, "train.steps=400", "train.checkpoint_every=20", "train.log_every=10"]
    proc = _start_training(project, sets)
    ckpt = wait_for_checkpoint(project, "icgan", proc)
    os.kill(proc.pid, signal.SIGINT)                                  # what Ctrl-C sends
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    line = [x for x in err.splitlines() if x.startswith("ganops: interrupted at step")]
    assert len(line) == 1 and "rerun the same command to resume from step" in line[0], err[-3000:]
    run_id = json.loads((ckpt.parent / "mlflow_run.json").read_text())["run_id"]
    assert _runs(project)[run_id]["status"] == "KILLED"              # stopped by the user, not failed
    import torch

    at = int(torch.load(ckpt, weights_only=True)["step"])
    assert f"resume from step {at} " in line[0]
    done = _ganops(project, "stage", "train", sets=sets, quiet=False)
    assert f"resuming from step {at}" in done.stderr


def test_sigterm_checkpoints_the_step_it_stopped_at_and_the_rerun_resumes_there(project):
    # what a scheduler's preemption or `kill` sends: nothing after the last finished step is lost
    import torch

    sets = [*FAST, "train.steps=600", "train.checkpoint_every=100", "train.log_every=10"]
    proc = _start_training(project, sets)
    ckpt = wait_for_checkpoint(project, "icgan", proc)                # step 100's
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 143 and "Traceback" not in err, err[-3000:]        # the shell's code for SIGTERM
    line = [x for x in err.splitlines() if x.startswith("ganops: stopped by SIGTERM after step")]
    assert len(line) == 1 and "rerun the same command to resume" in line[0], err[-3000:]
    at = int(torch.load(ckpt, weights_only=True)["step"])
    assert 100 < at < 600 and f"after step {at} of 600" in line[0]     # written on the way out, at that step
    ckpt = ckpt.parent
    run_id = json.loads((ckpt / "mlflow_run.json").read_text())["run_id"]
    assert _runs(project)[run_id]["status"] == "KILLED"
    done = _ganops(project, "stage", "train", sets=sets, quiet=False)
    assert f"resuming from step {at}" in done.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has the CUDA device it asks for")
def test_a_device_this_machine_lacks_is_refused_before_any_work(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    for stage in ("dataset", "train"):
        line = one_line_error(run_ganops(tmp_path, "stage", stage, sets=[*FAST, "device=cuda"], check=False))
        assert "device=cuda" in line and "device=auto or device=cpu" in line
    assert not (tmp_path / "data").exists()                           # the dataset stage did nothing either


def test_a_truncated_model_names_its_file_and_the_stage_that_rebuilds_it(project):
    _ganops(project, "stage", "train")
    model = project / GENERATOR / "model.pt"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 3])
    line = one_line_error(_ganops(project, "sample", "--out", str(project / "s.png"), check=False))
    assert f"{GENERATOR}/model.pt cannot be read (truncated or corrupt" in line and "ganops stage train" in line
    assert not (project / "s.png").exists()
    _ganops(project, "stage", "train")                                # the hint works: rebuilt, then sampled
    _ganops(project, "sample", "--out", str(project / "s.png"))
    assert (project / "s.png").exists()


def test_a_file_size_limit_under_mlflow_db_is_one_line_and_leaves_a_working_store(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    # a new store cut short by the limit: one line, and no half-migrated mlflow.db that every later run trips on
    line = one_line_error(_ganops(root, "stage", "dataset", check=False, preexec_fn=_limit_file_size(200_000)))
    assert "cannot create the MLflow store" in line and "ulimit -f" in line
    assert sorted(p.name for p in root.iterdir()) == ["params.yaml"]
    _ganops(root, "stage", "dataset")
    db = root / "mlflow.db"
    # the limit reached while a stage logs into the store that exists: one line, the store rolled back
    limit = _limit_file_size(db.stat().st_size)
    finished = [r for r in _runs(root).values() if r["status"] == "FINISHED"]
    line = one_line_error(_ganops(root, "stage", "dataset", check=False, preexec_fn=limit))
    assert f"MLflow store sqlite:///{db} failed" in line and "disk I/O error" in line and "ulimit -f" in line
    assert not (root / "mlflow.db-journal").exists()
    assert [r for r in _runs(root).values() if r["status"] == "FINISHED"] == finished   # no empty run passed off
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    _ganops(root, "stage", "dataset")                                 # the same command works once the limit is gone


def test_a_training_that_cannot_fit_in_memory_is_refused_before_its_first_step(project):
    import psutil

    # 256 px at a batch of 16,384: about 580 GiB of activations for a DCGAN step
    if psutil.virtual_memory().available > 400 * 2 ** 30:
        pytest.skip("this machine could hold it")
    sets = [*FAST, "data.resolution=256", "train.family=dcgan", "train.g_filters=32", "train.d_filters=32",
            "train.batch_size=16384"]
    _ganops(project, "stage", "dataset", sets=sets)
    line = one_line_error(_ganops(project, "stage", "train", sets=sets, check=False))
    assert "training dcgan needs about" in line and "GiB is free on cpu" in line
    assert "train.batch_size=16384" in line and "data.resolution=256" in line
    train = [r for r in _runs(project).values() if r.get("ganops.stage") == "train"]
    assert [r["status"] for r in train] == ["FAILED"]                 # not left RUNNING
    assert not (project / "data/generator/digits/dcgan").exists()


def test_the_dagster_sensor_reports_a_corrupt_artifact_as_a_failed_check_and_the_rest_as_usual(project):
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams
    from pipelines.sensors import artifacts_on_disk

    _ganops(project, "stage", "train", sets=[*FAST, "train.family=dcgan"])
    (project / "data/generator/digits/dcgan/model.pt").write_bytes(b"")
    (project / "params.yaml").write_text(yaml.safe_dump(P.apply_overrides(P.read_yaml(project / "params.yaml"), FAST)))
    resources = {**defs.resources, "params": GanopsParams(project_root=str(project))}
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources) as ctx:
        events = artifacts_on_disk(ctx).asset_events
    reported = {e.asset_key.to_user_string() for e in events if isinstance(e, dg.AssetMaterialization)}
    assert {"dataset", "embeddings", "neighbors", "generator/dcgan"} <= reported
    verdicts = {(e.asset_key.to_user_string(), e.check_name): e for e in events
                if isinstance(e, dg.AssetCheckEvaluation)}
    broken = verdicts[("generator/dcgan", "generator_healthy")]
    assert not broken.passed and "model.pt cannot be read (truncated or corrupt" in broken.description
    assert verdicts[("dataset", "dataset_not_empty")].passed
