"""The three front doors — `ganops` CLI, `dvc repro`, Dagster — run the same stages to the same
bytes, see each other's work, and depend on exactly what each artifact is made from."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from conftest import REPO, fast_overrides

from ganops.core import params as P

FAST = fast_overrides(**{"embed.encoder": "pixels"})
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "DVC_NO_ANALYTICS": "1"}
GENERATORS = {"dcgan": "generator/digits/dcgan", "cgan": "generator/digits/cgan",
              "icgan": "generator/digits/pixels/k5/icgan"}
# the domain transfer's artifacts (digits → the shared MNIST split in the tests' parameters)
TRANSFER = {"source/dataset": "domains/source/dataset/digits", "source/evaluator": "domains/source/evaluator/digits",
            "source/classifier": "domains/source/classifier/digits",
            "target/dataset": "domains/target/dataset/mnist", "target/evaluator": "domains/target/evaluator/mnist",
            **{f"{kind}/{f}": f"{folder}/digits-to-mnist/{f}" for f in ("dtn", "cyclegan")
               for kind, folder in (("translator", "transfer"), ("transfer_evaluation", "evaluation"))}}
ARTIFACT_ASSETS = {"dataset", "embeddings", "neighbors", "evaluator",
                   *(f"{kind}/{f}" for kind in ("generator", "evaluation") for f in GENERATORS), *TRANSFER,
                   "evaluation_on_instances/icgan"}


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


def _dirs(root: Path, families=("icgan",)) -> dict[str, Path]:
    base = root / "data"
    dirs = {"dataset": base / "dataset/digits", "embeddings": base / "embeddings/digits/pixels",
            "neighbors": base / "neighbors/digits/pixels/k5", "evaluator": base / "evaluator/digits"}
    return {**dirs, **{f: base / GENERATORS[f] for f in families},
            **{f"evaluation {f}": base / GENERATORS[f].replace("generator/", "evaluation/", 1) for f in families}}


def _metas(root: Path, families=("icgan",)) -> dict[str, bytes]:
    return {name: (d / "meta.json").read_bytes() for name, d in _dirs(root, families).items()}


def _transfer_metas(root: Path) -> dict[str, bytes]:
    return {key: (root / "data" / rel / "meta.json").read_bytes() for key, rel in TRANSFER.items()}


def _dagster_materialize(root: Path, selection: list[str] | None = None):
    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams
    from pipelines.schedules import WHOLE       # every asset but the partitioned *_shards ones

    resources = {**defs.resources, "params": GanopsParams(project_root=str(root))}
    graph = defs.resolve_asset_graph()
    assets = [defs.get_assets_def(k) for k in graph.get_all_asset_keys()]
    checks = list(defs.asset_checks)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([*assets, *checks], resources=resources, instance=instance, selection=selection or WHOLE)
    return result, instance


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
    root = _make_project(tmp_path_factory.mktemp("dagster"))
    result, instance = _dagster_materialize(root)
    return root, result, instance


def test_cli_runs_the_chain_as_one_pipeline_run_in_mlflow(cli_project):
    meta = json.loads((cli_project / "data/neighbors/digits/pixels/k5/meta.json").read_text())
    assert meta["params"]["neighbors"]["k"] == 5 and meta["upstream"].keys() == {"dataset", "embeddings"}
    metrics = json.loads((cli_project / "metrics/neighbors.json").read_text())
    assert 0.5 < metrics["purity"] <= 1.0
    con = sqlite3.connect(cli_project / "mlflow.db")
    tags = {}
    for run, key, value in con.execute("select run_uuid, key, value from tags"):
        tags.setdefault(run, {})[key] = value
    parents = [r for r, t in tags.items() if "ganops.pipeline" in t]
    assert len(parents) == 1 and tags[parents[0]]["ganops.door"] == "cli"
    children = {t["ganops.stage"]: t for t in tags.values() if "ganops.stage" in t}
    assert sorted(children) == ["dataset", "embeddings", "evaluate", "evaluator", "neighbors", "train"]
    assert all(t["mlflow.parentRunId"] == parents[0] and t["ganops.door"] == "cli" for t in children.values())
    assert all(t.get("mlflow.source.git.commit") is None or len(t["mlflow.source.git.commit"]) == 40
               for t in children.values())
    statuses = {s for (s,) in con.execute("select status from runs")}
    assert statuses == {"FINISHED"}
    names = {n for (n,) in con.execute("select name from runs")}   # the run list tells stages and families apart
    assert names == {"pipeline (cli)", "dataset", "embeddings pixels", "neighbors pixels k5", "train icgan",
                     "evaluator", "evaluate icgan"}
    exp_tags = dict(con.execute("select key, value from experiment_tags"))
    assert exp_tags["mlflow.experimentKind"] == "custom_model_development"  # the model-training view
    content = json.loads((cli_project / "data/neighbors/digits/pixels/k5/meta.json").read_text())["content_hash"]
    tagged = [r for r, t in tags.items() if t.get("ganops.content_hash") == content]
    assert len(tagged) == 1 and tags[tagged[0]]["ganops.stage"] == "neighbors"   # the artifact finds its run
    inputs = con.execute("select name, digest from datasets").fetchall()
    assert ("digits", meta["upstream"]["dataset"][:20]) in inputs  # the dataset artifact, by content hash
    params = dict(con.execute("select key, value from params"))
    assert params["data.dataset"] == "digits" and params["neighbors.k"] == "5"
    logged = {p.name for p in (cli_project / "mlartifacts").rglob("*") if p.is_file()}
    assert {"grid.png", "panel.png", "meta.json", "samples.png", "MLmodel"} <= logged
    # the evaluation registered the trained generator; the first healthy version becomes the champion
    versions = con.execute("select name, version from model_versions").fetchall()
    assert versions == [("ganops-digits-icgan", 1)]
    decision = dict(con.execute("select key, value from model_version_tags where key like 'ganops.decision%'"))
    aliases = con.execute("select name, alias, version from registered_model_aliases").fetchall()
    assert aliases == [("ganops-digits-icgan", "champion", 1)]
    assert decision["ganops.decision"] == "promoted" and decision["ganops.decision_reason"] == "no champion yet"


def test_same_parameters_give_the_same_bytes_through_every_door(cli_project, dvc_project, dagster_result):
    dvc_root, _ = dvc_project
    dag_root, result, _ = dagster_result
    assert result.success
    assert _metas(cli_project) == _metas(dvc_root, ("icgan",)) == _metas(dag_root, ("icgan",))
    assert _metas(dvc_root, tuple(GENERATORS)) == _metas(dag_root, tuple(GENERATORS))
    for meta in _metas(dag_root, tuple(GENERATORS)).values():
        assert not {"argv", "created", "timings_s"} & set(json.loads(meta))
    # the domain transfer too: both domains, both translators and their evaluations, byte for byte
    assert _transfer_metas(dvc_root) == _transfer_metas(dag_root)
    on = "data/evaluation/on_instances/digits/pixels/k5/icgan/meta.json"    # the IC-GAN on MNIST's instances
    assert (dvc_root / on).read_bytes() == (dag_root / on).read_bytes()


def test_a_dagster_run_after_dvc_repro_leaves_dvc_up_to_date(dvc_project):
    root, _ = dvc_project
    _sh(["dvc", "repro"], root)      # up to date at the parameters now in params.yaml (another test changes them)
    result, _ = _dagster_materialize(root)
    assert result.success
    status = _sh(["dvc", "status"], root).stdout
    assert "up to date" in status, status


def test_dvc_second_repro_does_nothing_and_k_reruns_only_what_reads_the_neighborhoods(dvc_project):
    root, first = dvc_project
    for stage in ("dataset", "embeddings", "neighbors", "train_dcgan", "train_cgan", "train_icgan"):
        assert f"Running stage '{stage}'" in first
    second = _sh(["dvc", "repro"], root).stdout
    assert "Running stage" not in second
    # k and DTN's α changed at once (one repro, not two: the suite's time): each reruns only what reads it
    _write_params(root, [*FAST, "neighbors.k=7", "transfer.const_weight=10"])
    third = _sh(["dvc", "repro"], root).stdout
    ran = {s for s in ("dataset", "embeddings", "neighbors", "train_dcgan", "train_cgan", "train_icgan")
           if f"Running stage '{s}'" in third}
    assert ran == {"neighbors", "train_icgan"}, third  # a DCGAN or cGAN generator does not read them
    # a translator reads no neighborhoods, and CycleGAN has no L_CONST: of the transfer, the DTN alone reruns
    assert {s for s in re.findall(r"Running stage '(\w+)'", third) if "transfer" in s} == {
        "transfer_dtn", "evaluate_transfer_dtn"}, third
    assert (root / "data/generator/digits/pixels/k7/icgan/model.pt").exists()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["neighbors"]["params"]["params.yaml"]["neighbors"]["k"] == 7
    shown = _sh(["dvc", "metrics", "show"], root)       # the leaderboard: a row per evaluation, fit for a terminal
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()[1:] if line.strip()}
    assert set(rows) == {f"metrics/leaderboard/{name}.json" for name in
                         ("dcgan", "cgan", "icgan", "on_instances_icgan", "transfer_dtn", "transfer_cyclegan")}
    assert max(map(len, shown.stdout.splitlines())) <= 120 and "WARNING" not in shown.stderr
    every = json.loads(_sh(["dvc", "metrics", "show", "--json", "metrics/train_dcgan.json"], root).stdout)
    assert "final_g_loss" in json.dumps(every)                # a stage's every figure, on asking for its file
    plots = _sh(["dvc", "plots", "show", "--json"], root).stdout
    assert "g_loss" in plots and "d_loss" in plots
    _write_params(root, FAST)
    _sh(["dvc", "repro"], root)


def test_a_failed_dvc_repro_keeps_the_last_good_run_up_to_date(dvc_project):
    # DVC deletes a stage's outputs before running it unless they persist: a bad value, refused before any
    # work, would otherwise cost the finished translator its metrics and, once fixed, a full retraining
    root, _ = dvc_project
    params = root / "params.yaml"
    good = params.read_text()
    bad = yaml.safe_load(good)
    bad["transfer"]["lr"] = -1
    params.write_text(yaml.safe_dump(bad, sort_keys=False))
    try:
        proc = subprocess.run(["dvc", "repro", "transfer_dtn"], cwd=root, env=ENV, capture_output=True, text=True)
        assert proc.returncode != 0 and "transfer.lr" in proc.stdout + proc.stderr
    finally:
        params.write_text(good)
    assert (root / "metrics/transfer_dtn.json").exists()
    status = _sh(["dvc", "status", "transfer_dtn"], root).stdout
    assert "up to date" in status, status


def test_dagster_sees_what_dvc_built_with_the_same_versions(dvc_project):
    from dagster._core.definitions.data_version import StaleStatus
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams
    from pipelines.sensors import artifacts_on_disk

    root, _ = dvc_project
    instance = dg.DagsterInstance.ephemeral()
    resources = {**defs.resources, "params": GanopsParams(project_root=str(root))}
    graph = defs.resolve_asset_graph()

    checked: list[dg.AssetCheckEvaluation] = []

    def tick() -> list[dg.AssetMaterialization]:
        """One sensor evaluation, its events recorded as the sensor daemon records them; the materializations."""
        with dg.build_sensor_context(instance=instance, resources=resources) as ctx:
            events = artifacts_on_disk(ctx).asset_events
        for event in events:
            instance.report_runless_asset_event(event)
        checked[:] = [e for e in events if isinstance(e, dg.AssetCheckEvaluation)]
        return [e for e in events if isinstance(e, dg.AssetMaterialization)]

    def status() -> dict:   # of the assets that are artifacts on disk (champion/* and leaderboard are not)
        resolver = get_stale_status_resolver(instance, [defs.get_assets_def(k) for k in graph.get_all_asset_keys()])
        return {k.to_user_string(): resolver.get_status(k) for k in graph.get_all_asset_keys()
                if k.to_user_string() in ARTIFACT_ASSETS}

    # the dataset as an older version of the code left it: same bytes, another code version
    dataset_meta = root / "data/dataset/digits/meta.json"
    current = dataset_meta.read_bytes()
    dataset_meta.write_text(json.dumps({**json.loads(current), "code_version": "0" * 16}))
    try:
        reported = {e.asset_key.to_user_string(): e for e in tick()}
        champions = {f"champion/{f}" for f in GENERATORS}
        assert set(reported) == ARTIFACT_ASSETS | champions | {"leaderboard"}
        # what a Dagster run shows: the pictures, the MLflow run, the logged and the registered model …
        shown = {k: e.metadata for k, e in reported.items()}
        assert "data:image/png;base64," in shown["dataset"]["dataset_grid"].value
        assert "data:image/png;base64," in shown["neighbors"]["neighbor_panel"].value
        assert "data:image/png;base64," in shown["generator/icgan"]["preview_grid"].value
        assert shown["generator/icgan"]["logged_model"].value.startswith("m-")
        assert "workflowType=machine_learning" in shown["generator/icgan"]["mlflow_run"].value
        assert shown["evaluation/icgan"]["registered_model"].value == "ganops-digits-icgan"
        assert "data:image/png;base64," in shown["evaluation/icgan"]["latent_walk"].value
        assert shown["transfer_evaluation/dtn"]["promoted"].value is True
        # … the champions the CLI's evaluation crowned, the leaderboard …
        from ganops.tracking import registry

        for f in GENERATORS:
            alias = registry.champion(P.load(root / "params.yaml", [f"train.family={f}"]), root)
            assert shown[f"champion/{f}"]["registered_model"].value == f"ganops-digits-{f}"
            assert shown[f"champion/{f}"]["champion_version"].value == str(alias.version)
        assert shown["leaderboard"]["families"].value == 3
        # … and every check of the reported assets, evaluated on what is on disk
        # (recorded as the UI reads them: the check is no longer "Not evaluated")
        from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

        key = dg.AssetCheckKey(dg.AssetKey("neighbors"), "neighbors_not_collapsed")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        results = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in checked}
        assert set(results) == {("dataset", "dataset_not_empty"), ("embeddings", "features_finite_unit_norm"),
                                ("neighbors", "neighbors_in_range_not_self"), ("neighbors", "neighbors_not_collapsed"),
                                *((f"generator/{f}", "generator_healthy") for f in GENERATORS),
                                *((f"evaluation/{f}", "promotion_gate") for f in GENERATORS)}
        assert all(results.values()), results
        for name, directory in _dirs(root, tuple(GENERATORS)).items():
            key = name
            key = f"generator/{key}" if key in GENERATORS else key.replace("evaluation ", "evaluation/")
            content_hash = json.loads((directory / "meta.json").read_text())["content_hash"]
            assert reported[key].tags["dagster/data_version"] == content_hash
        for key, rel in TRANSFER.items():
            meta = json.loads((root / "data" / rel / "meta.json").read_text())
            assert reported[key].tags["dagster/data_version"] == meta["content_hash"]
        assert status()["dataset"] == StaleStatus.STALE     # built by other code: Dagster says so, as DVC would
    finally:
        dataset_meta.write_bytes(current)                   # …then rebuilt by this code (same bytes)
    assert [e.asset_key.to_user_string() for e in tick()] == ["dataset"]
    assert [(e.asset_key.to_user_string(), e.check_name, e.passed) for e in checked] == [
        ("dataset", "dataset_not_empty", True)]
    assert set(status().values()) == {StaleStatus.FRESH}, status()
    assert tick() == []                                     # nothing new on disk


def test_dagster_metadata_and_checks(dagster_result):
    _, result, _ = dagster_result
    mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    families = ("dcgan", "cgan", "icgan")
    assert set(mats) == {"dataset", "embeddings", "neighbors", "evaluator", "leaderboard", *TRANSFER,
                         *(f"{kind}/{f}" for kind in ("generator", "evaluation", "champion") for f in families),
                         "evaluation_on_instances/icgan"}
    o_meta = mats["evaluation_on_instances/icgan"].materialization.metadata    # on the shared MNIST's instances
    assert o_meta["n_instances"].value == 200 and 0 <= o_meta["label_agreement"].value <= 1
    assert "own_fid_evaluator" in o_meta and "data:image/png;base64," in o_meta["instances"].value
    assert o_meta["registered_model"].value == "ganops-digits-icgan" and o_meta["model_version"].value == "1"
    t_meta = mats["transfer_evaluation/dtn"].materialization.metadata
    assert 0 <= t_meta["transfer_accuracy"].value <= 1 and "baseline_accuracy" in t_meta
    assert t_meta["registered_model"].value == "ganops-digits-to-mnist-dtn" and t_meta["promoted"].value is True
    assert "data:image/png;base64," in mats["translator/cyclegan"].materialization.metadata["preview_grid"].value
    ds_meta = mats["dataset"].materialization.metadata
    nb_meta = mats["neighbors"].materialization.metadata
    assert ds_meta["n_images"].value == 300
    assert "data:image/png;base64," in ds_meta["dataset_grid"].value
    assert "data:image/png;base64," in nb_meta["neighbor_panel"].value
    assert 0.5 < nb_meta["purity"].value <= 1.0 and "mlflow_run_id" in nb_meta
    g_meta = mats["generator/icgan"].materialization.metadata
    assert g_meta["steps"].value == 60 and "final_g_loss" in g_meta
    assert "data:image/png;base64," in g_meta["preview_grid"].value
    assert g_meta["mlflow_run"].value.startswith("http://localhost:5000/#/experiments/")
    assert g_meta["logged_model"].value.startswith("m-")
    e_meta = mats["evaluation/icgan"].materialization.metadata
    assert e_meta["registered_model"].value == "ganops-digits-icgan" and e_meta["model_version"].value == "1"
    assert "fid_evaluator" in e_meta and "data:image/png;base64," in e_meta["latent_walk"].value
    board = mats["leaderboard"].materialization.metadata
    assert board["families"].value == 3 and "| family |" in board["leaderboard"].value
    assert "fid_on_instances" in board["leaderboard"].value
    for f in families:   # each family's first healthy version becomes its champion
        c_meta = mats[f"champion/{f}"].materialization.metadata
        assert c_meta["promoted"].value is True and c_meta["reason"].value == "no champion yet"
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 10 and all(c.passed for c in checks), [c.description for c in checks]


def test_dagster_records_data_and_code_versions_and_logs(dagster_result):
    root, result, instance = dagster_result
    from ganops.core.lineage import code_version

    mats = {m.asset_key.to_user_string(): m.materialization for m in result.get_asset_materialization_events()}
    for name, directory in _dirs(root, ()).items():
        key = name
        assert mats[key].tags["dagster/data_version"] == json.loads((directory / "meta.json").read_text())[
            "content_hash"]
        assert mats[key].tags["dagster/code_version"] == code_version(name)
    logs = [e.message for e in instance.all_logs(result.run_id) if e.user_message]
    assert any("train icgan: step 60/60 (100%)" in m for m in logs)  # the library's progress lines
    # one MLflow parent run for the Dagster run, tagged with its id, the stages nested
    con = sqlite3.connect(root / "mlflow.db")
    parents = con.execute("select run_uuid from tags where key='ganops.pipeline'").fetchall()
    assert len(parents) == 1
    tagged = con.execute("select count(*) from tags where key='dagster.run_id' and value=?", (result.run_id,))
    assert tagged.fetchone()[0] >= 7


def test_definitions_load_as_dagster_dev_loads_them():
    proc = subprocess.run(["dagster", "definitions", "validate"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr
    # dg, Dagster's project CLI, finds the same definitions from pyproject.toml's [tool.dg]
    proc = subprocess.run(["dg", "list", "defs", "--json"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    defs = json.loads(proc.stdout)
    assert {"translator/dtn", "transfer_evaluation/cyclegan", "generator/dcgan"} <= {
        a["asset_key"] for a in defs["assets"]}
    assert {"transfer", "retrain"} <= {j["name"] for j in defs["jobs"]}


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
    proc = subprocess.run(["ganops", "stage", "embeddings", "--set", "data.resolution=32"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "data.resolution" in proc.stderr and "ganops stage dataset" in proc.stderr


def test_dvc_exp_run_and_dagster_selection_in_one_environment(tmp_path):
    """`dvc exp run -S` (DVC's hydra parser) and `dagster asset materialize --select` (Dagster's antlr
    parser) both work in the environment the project installs."""
    root = _make_project(tmp_path / "p")
    _sh(["git", "init", "-q"], root)
    _sh(["dvc", "init", "-q"], root)
    _sh(["git", "add", "-A"], root)
    _sh(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], root)
    exp = _sh(["dvc", "exp", "run", "--set-param", "neighbors.k=3", "neighbors"], root)
    assert "Ran experiment" in exp.stdout + exp.stderr
    assert (root / "data/neighbors/digits/pixels/k3/indices.npy").exists()
    config = {"resources": {"params": {"config": {"overrides": ["neighbors.k=4"]}}}}
    proc = subprocess.run(["dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select",
                           "+neighbors", "--config-json", json.dumps(config)],
                          cwd=root, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0 and "RUN_SUCCESS" in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert (root / "data/neighbors/digits/pixels/k4/indices.npy").exists()


def test_rerunning_the_default_encoder_writes_the_same_bytes(tmp_path):
    """SimCLR records durations and resume points in MLflow only: a rerun leaves DVC's view unchanged."""
    from ganops.stages import run_stage

    p = P.load(REPO / "params.yaml", [*fast_overrides(), "embed.encoder=simclr", "embed.epochs=1",
                                      "tracking.enabled=false"])
    run_stage("dataset", p, tmp_path)
    first = run_stage("embeddings", p, tmp_path)
    meta, metrics = (first.path / "meta.json").read_bytes(), (tmp_path / "metrics/embeddings.json").read_bytes()
    assert "train_seconds" in first.metrics                      # measured, and logged to MLflow …
    run_stage("embeddings", p, tmp_path)
    assert (first.path / "meta.json").read_bytes() == meta       # … but not in the tracked outputs
    assert (tmp_path / "metrics/embeddings.json").read_bytes() == metrics
    assert not {k for k in json.loads(meta)["metrics"] if "second" in k or k.startswith("resumed")}


def test_dagster_failures_carry_the_one_line_message(tmp_path):
    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams

    root = _make_project(tmp_path / "p")
    graph = defs.resolve_asset_graph()
    assets = [defs.get_assets_def(k) for k in graph.get_all_asset_keys()]
    # a run config's overrides are the user's: the command a failure suggests repeats those it needs
    for overrides, selection, expected in ((["neighbors.k=true"], ["dataset"], "'neighbors.k'"),
                                           ([], ["generator/icgan"], "ganops stage dataset"),
                                           (["data.limit=300", "neighbors.k=4"], ["generator/dcgan"],
                                            "ganops stage dataset --set data.limit=300 --root")):
        resources = {**defs.resources, "params": GanopsParams(project_root=str(root), overrides=overrides)}
        result = dg.materialize(assets, resources=resources, selection=selection, raise_on_error=False)
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.user_failure_data
        assert expected in failure.description and "\n" not in failure.description.strip()
