"""The three front doors — `ganops` CLI, `dvc repro`, Dagster — run the same stages to the same artifacts."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from conftest import REPO, fast_overrides

from ganops import params as P

FAST = fast_overrides(**{"embed.encoder": "pixels"})
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "DVC_NO_ANALYTICS": "1"}


def _write_params(root: Path, overrides: list[str]) -> None:
    raw = P.apply_overrides(P.read_yaml(REPO / "params.yaml"), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _make_project(root: Path, overrides: list[str] = FAST) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    # dvc.yaml's code deps point at the package, so the project carries a copy of it.
    shutil.copytree(REPO / "ganops", root / "ganops", ignore=shutil.ignore_patterns("__pycache__"))
    _write_params(root, overrides)
    return root


def _sh(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _hashes(root: Path, k: int = 5) -> dict[str, str]:
    base = root / "data"
    dirs = {"dataset": base / "dataset/digits", "embeddings": base / "embeddings/digits/pixels",
            "neighbors": base / f"neighbors/digits/pixels/k{k}", "train": base / "generator/digits/icgan"}
    return {name: json.loads((d / "meta.json").read_text())["content_hash"] for name, d in dirs.items()}


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory) -> Path:
    root = _make_project(tmp_path_factory.mktemp("cli"))
    _sh(["ganops", "run", "-q"], root)
    return root


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory) -> tuple[Path, str]:
    root = _make_project(tmp_path_factory.mktemp("dvc"))
    _sh(["git", "init", "-q"], root)
    _sh(["dvc", "init", "-q"], root)
    first = _sh(["dvc", "repro"], root)
    return root, first.stdout


@pytest.fixture(scope="module")
def dagster_result(tmp_path_factory):
    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams

    root = _make_project(tmp_path_factory.mktemp("dagster"))
    resources = {**defs.resources, "params": GanopsParams(project_root=str(root))}
    graph = defs.resolve_asset_graph()
    assets = [defs.get_assets_def(k) for k in graph.get_all_asset_keys()]
    checks = list(defs.asset_checks)
    result = dg.materialize([*assets, *checks], resources=resources)
    return root, result


def test_cli_runs_the_chain_and_tracks_it_in_mlflow(cli_project):
    meta = json.loads((cli_project / "data/neighbors/digits/pixels/k5/meta.json").read_text())
    assert meta["params"]["neighbors"]["k"] == 5 and meta["upstream"].keys() == {"dataset", "embeddings"}
    metrics = json.loads((cli_project / "metrics/neighbors.json").read_text())
    assert 0.5 < metrics["purity"] <= 1.0
    con = sqlite3.connect(cli_project / "mlflow.db")
    stages = sorted(r[0] for r in con.execute("select value from tags where key='ganops.stage'"))
    assert stages == ["dataset", "embeddings", "neighbors", "train"]
    params = dict(con.execute("select key, value from params"))
    assert params["data.dataset"] == "digits" and params["neighbors.k"] == "5"
    assert {r[0] for r in con.execute("select key from metrics")} >= {"purity", "n_images"}
    logged = {p.name for p in (cli_project / "mlartifacts").rglob("*") if p.is_file()}
    assert {"grid.png", "panel.png", "meta.json", "samples.png", "MLmodel"} <= logged
    versions = con.execute("select name, version from model_versions").fetchall()
    assert versions == [("ganops-digits-icgan", 1)]


def test_same_parameters_give_the_same_artifacts_through_every_door(cli_project, dvc_project, dagster_result):
    dvc_root, _ = dvc_project
    dag_root, result = dagster_result
    assert result.success
    assert _hashes(cli_project) == _hashes(dvc_root) == _hashes(dag_root)


def test_dvc_second_repro_does_nothing_and_k_change_reruns_only_neighbors(dvc_project):
    root, first = dvc_project
    for stage in ("dataset", "embeddings", "neighbors", "train"):
        assert f"Running stage '{stage}'" in first
    second = _sh(["dvc", "repro"], root).stdout
    assert "Running stage" not in second
    _write_params(root, [*FAST, "neighbors.k=7"])
    third = _sh(["dvc", "repro"], root).stdout
    assert "Running stage 'neighbors'" in third
    assert "Running stage 'dataset'" not in third and "Running stage 'embeddings'" not in third
    assert (root / "data/neighbors/digits/pixels/k7/indices.npy").exists()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["neighbors"]["params"]["params.yaml"]["neighbors"]["k"] == 7
    metrics = json.loads(_sh(["dvc", "metrics", "show", "--json"], root).stdout)
    assert "metrics/neighbors.json" in json.dumps(metrics)


def test_dagster_metadata_and_checks(dagster_result):
    _, result = dagster_result
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    assert set(mats) == {"dataset", "embeddings", "neighborhoods", "generator"}
    ds_meta = mats["dataset"].materialization.metadata
    nb_meta = mats["neighborhoods"].materialization.metadata
    assert ds_meta["n_images"].value == 300
    assert "data:image/png;base64," in ds_meta["sample_grid"].value
    assert "data:image/png;base64," in nb_meta["neighbor_panel"].value
    assert 0.5 < nb_meta["purity"].value <= 1.0 and "mlflow_run_id" in nb_meta
    g_meta = mats["generator"].materialization.metadata
    assert g_meta["steps"].value == 60 and "final_g_loss" in g_meta
    assert "data:image/png;base64," in g_meta["sample_grid"].value
    assert g_meta["mlflow_run"].value.startswith("http://localhost:5000/#/experiments/")
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 and all(c.passed for c in checks), [c.description for c in checks]


def test_definitions_load_as_dagster_dev_loads_them():
    proc = subprocess.run(["dagster", "definitions", "validate"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_cli_errors_are_clear(tmp_path):
    root = _make_project(tmp_path / "p")
    proc = subprocess.run(["ganops", "stage", "neighbors"], cwd=root, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2 and "ganops stage dataset" in proc.stderr
    proc = subprocess.run(["ganops", "stage", "dataset", "--set", "data.datset=mnist"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "data.datset" in proc.stderr and "Traceback" not in proc.stderr
    _sh(["ganops", "run", "-q", "--until", "embeddings"], root)
    proc = subprocess.run(["ganops", "stage", "neighbors", "--set", "neighbors.k=300"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "neighbors.k" in proc.stderr and "300" in proc.stderr
    proc = subprocess.run(["ganops", "stage", "embeddings", "--set", "data.resolution=24"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "data.resolution" in proc.stderr and "ganops stage dataset" in proc.stderr


def test_dagster_cli_materializes_a_selection_with_run_config(tmp_path):
    """`dagster asset materialize --select …` as a user types it (the selection parser must load)."""
    root = _make_project(tmp_path / "p")
    config = {"resources": {"params": {"config": {"overrides": ["neighbors.k=3"]}}}}
    proc = subprocess.run(["dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select", "*",
                           "--config-json", json.dumps(config)], cwd=root, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0 and "RUN_SUCCESS" in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert (root / "data/neighbors/digits/pixels/k3/indices.npy").exists()
