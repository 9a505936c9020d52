"""`tracking.uri` sends stage runs to a real MLflow tracking server instead of the local SQLite store."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import fast_overrides

from ganops.core import params as P
from ganops.stages import run_stage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{store / 'server.db'}", "--artifacts-destination", str(store / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"mlflow server exited: {proc.stderr.read().decode()[-2000:]}")
                if time.time() > deadline:
                    pytest.fail("mlflow server did not start within 90 s")
                time.sleep(0.5)
        yield url, store
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tracking_uri_points_runs_at_a_server(tmp_path, mlflow_server):
    import mlflow

    url, store = mlflow_server
    project = tmp_path / "project"
    project.mkdir()
    p = P.validate(P.apply_overrides({}, [*fast_overrides(), f"tracking.uri={url}", "tracking.experiment=remote"]))
    result = run_stage("dataset", p, project)

    assert not (project / "mlflow.db").exists()  # nothing went to the local default store
    client = mlflow.MlflowClient(tracking_uri=url)
    run = client.get_run(result.run_id)
    assert run.data.tags["ganops.stage"] == "dataset"
    assert run.data.params["data.limit"] == "300"
    assert run.data.metrics["n_images"] == 300
    assert {a.path for a in client.list_artifacts(result.run_id)} >= {"grid.png", "meta.json"}
    assert any((store / "artifacts").rglob("grid.png"))  # the server stored the artifact
