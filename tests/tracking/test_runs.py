"""MLflow runs on a real local store (SQLite): a stage run logs every parameter and who ran it, stages of
one pipeline nest under one parent that fails with them, a run left RUNNING by a process that is gone is
marked KILLED (a real process, really ended), and tracking off records nothing."""

import socket
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from ganops.core.params import Params
from ganops.tracking.runs import RunContext, mark_dead_runs, pipeline_run, stage_run
from ganops.tracking.store import tracking_uri


def params(**tracking) -> Params:
    return Params.model_validate({"tracking": tracking})


def _client(p, root) -> MlflowClient:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(p, root))
    return MlflowClient()


def test_a_stage_run_logs_every_parameter_and_who_ran_it(tmp_path):
    p = params()
    assert tracking_uri(p, tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    with stage_run(p, tmp_path, "dataset", RunContext("cli", tags=(("dvc.stage", "dataset"),))) as run:
        run.metrics({"n_images": 12, "flag": True, "name": "x"})        # only numbers are metrics
        run_id = run.run_id
    r = _client(p, tmp_path).get_run(run_id)
    assert r.info.status == "FINISHED" and r.data.metrics == {"n_images": 12.0}
    assert r.data.params["data.dataset"] == "digits" and r.data.params["neighbors.k"] == "10"
    assert set(r.data.params) == set(p.flat())
    tags = r.data.tags
    assert tags["ganops.stage"] == "dataset" and tags["ganops.door"] == "cli" and tags["dvc.stage"] == "dataset"
    assert tags["ganops.host"] == socket.gethostname() and tags["ganops.pid"].isdigit()
    assert run.url.startswith("http://localhost:5000/#/experiments/")


def test_stages_of_one_pipeline_share_a_parent_that_fails_with_them(tmp_path):
    p = params()
    with pipeline_run(p, tmp_path, RunContext("cli")) as ctx:
        with stage_run(p, tmp_path, "dataset", ctx) as first:
            pass
        with pytest.raises(RuntimeError, match="boom"), stage_run(p, tmp_path, "embeddings", ctx) as second:
            raise RuntimeError("boom")
    client = _client(p, tmp_path)
    a, b = client.get_run(first.run_id), client.get_run(second.run_id)
    parent = a.data.tags["mlflow.parentRunId"]
    assert b.data.tags["mlflow.parentRunId"] == parent
    assert b.info.status == "FAILED" and client.get_run(parent).info.status == "FAILED"


def test_a_run_whose_process_is_gone_is_marked_killed_and_a_live_one_is_left(tmp_path):
    p = params()
    code = ("import sys, time; from pathlib import Path; from ganops.core.params import Params; "
            "from ganops.tracking.runs import stage_run\n"
            "with stage_run(Params(), Path(sys.argv[1]), 'train') as run:\n"
            "    print(run.run_id, flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        dead_id = proc.stdout.readline().strip()
        with stage_run(p, tmp_path, "dataset") as live:
            client = _client(p, tmp_path)
            experiment = client.get_run(dead_id).info.experiment_id
            assert mark_dead_runs(client, experiment) == []           # its process is still there
            proc.kill()
            proc.wait(timeout=30)
            assert mark_dead_runs(client, experiment) == [dead_id]    # gone: KILLED, and only it
            assert client.get_run(live.run_id).info.status == "RUNNING"
        assert client.get_run(dead_id).info.status == "KILLED"
    finally:
        proc.kill()


def test_tracking_off_records_nothing(tmp_path):
    p = params(enabled=False)
    with stage_run(p, tmp_path, "dataset") as run:
        run.metrics({"n": 1})
        run.artifact(tmp_path / "missing.png")
        assert not run.enabled and run.run_id is None
    assert not (tmp_path / "mlflow.db").exists()
