"""The three front doors — `ganops` CLI, `dvc repro`, Dagster — run the same stages to the same
bytes, see each other's work, and depend on exactly what each artifact is made from. Each door builds the whole
chain once (module fixtures); a test that changes parameters works on a copy of the built project."""

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from doors import (
    ARTIFACT_ASSETS,
    ENV,
    FAST,
    GENERATORS,
    TRANSFER,
    copy_project,
    dagster_materialize,
    dirs,
    make_project,
    metas,
    sh,
    transfer_metas,
    write_params,
)

from ganops.core import params as P


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("cli"))
    sh(["ganops", "run", "-q"], root)
    return root


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory) -> tuple[Path, str]:
    root = make_project(tmp_path_factory.mktemp("dvc"))
    sh(["git", "init", "-q"], root)
    sh(["dvc", "init", "-q"], root)
    first = sh(["dvc", "repro"], root)
    return root, first.stdout


@pytest.fixture(scope="module")
def dagster_result(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("dagster"))
    result, instance = dagster_materialize(root)
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
    assert metas(cli_project) == metas(dvc_root, ("icgan",)) == metas(dag_root, ("icgan",))
    assert metas(dvc_root, tuple(GENERATORS)) == metas(dag_root, tuple(GENERATORS))
    for meta in metas(dag_root, tuple(GENERATORS)).values():
        assert not {"argv", "created", "timings_s"} & set(json.loads(meta))
    # the domain transfer too: both domains, both translators and their evaluations, byte for byte
    assert transfer_metas(dvc_root) == transfer_metas(dag_root)
    on = "data/evaluation/on_instances/digits/pixels/k5/icgan/meta.json"    # the IC-GAN on MNIST's instances
    assert (dvc_root / on).read_bytes() == (dag_root / on).read_bytes()


def test_a_dagster_run_after_dvc_repro_leaves_dvc_up_to_date(dvc_project):
    root, _ = dvc_project
    result, _ = dagster_materialize(root)
    assert result.success
    status = sh(["dvc", "status"], root).stdout
    assert "up to date" in status, status


def test_dvc_second_repro_does_nothing_and_k_reruns_only_what_reads_the_neighborhoods(dvc_project, tmp_path):
    built, first = dvc_project
    for stage in ("dataset", "embeddings", "neighbors", "train_dcgan", "train_cgan", "train_icgan"):
        assert f"Running stage '{stage}'" in first
    root = copy_project(built, tmp_path / "k7")     # a copy moved elsewhere is as up to date as the original
    second = sh(["dvc", "repro"], root).stdout
    assert "Running stage" not in second
    # k and DTN's α changed at once (one repro, not two: the suite's time): each reruns only what reads it
    write_params(root, [*FAST, "neighbors.k=7", "transfer.const_weight=10"])
    third = sh(["dvc", "repro"], root).stdout
    ran = {s for s in ("dataset", "embeddings", "neighbors", "train_dcgan", "train_cgan", "train_icgan")
           if f"Running stage '{s}'" in third}
    assert ran == {"neighbors", "train_icgan"}, third  # a DCGAN or cGAN generator does not read them
    # a translator reads no neighborhoods, and CycleGAN has no L_CONST: of the transfer, the DTN alone reruns
    assert {s for s in re.findall(r"Running stage '(\w+)'", third) if "transfer" in s} == {
        "transfer_dtn", "evaluate_transfer_dtn"}, third
    assert (root / "data/generator/digits/pixels/k7/icgan/model.pt").exists()
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["neighbors"]["params"]["params.yaml"]["neighbors"]["k"] == 7
    shown = sh(["dvc", "metrics", "show"], root)       # the leaderboard: a row per evaluation, fit for a terminal
    rows = {line.split()[0]: line for line in shown.stdout.splitlines()[1:] if line.strip()}
    assert set(rows) == {f"metrics/leaderboard/{name}.json" for name in
                         ("dcgan", "cgan", "icgan", "on_instances_icgan", "transfer_dtn", "transfer_cyclegan")}
    assert max(map(len, shown.stdout.splitlines())) <= 120 and "WARNING" not in shown.stderr
    every = json.loads(sh(["dvc", "metrics", "show", "--json", "metrics/train_dcgan.json"], root).stdout)
    assert "final_g_loss" in json.dumps(every)                # a stage's every figure, on asking for its file
    plots = sh(["dvc", "plots", "show", "--json"], root).stdout
    assert "g_loss" in plots and "d_loss" in plots


def test_python_bytecode_beside_the_code_leaves_dvc_up_to_date(dvc_project, tmp_path):
    # a stage that imports a module first writes its bytecode into a folder an earlier stage depends on, and a
    # clone has none: neither is a change of the code
    root = copy_project(dvc_project[0], tmp_path / "pyc")
    for folder in ("ganops/catalog", "ganops/neighbors", "ganops/core"):
        cache = root / folder / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / "new_module.cpython-311.pyc").write_bytes(b"bytecode")
    (root / "ganops/catalog/stray.pyc").write_bytes(b"bytecode")
    status = sh(["dvc", "status"], root).stdout
    assert "up to date" in status, status
    (root / "ganops/catalog/new_module.py").write_text("X = 1\n")     # a source file is a change
    assert "ganops/catalog" in sh(["dvc", "status"], root).stdout


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
    status = sh(["dvc", "status", "transfer_dtn"], root).stdout
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
        for name, directory in dirs(root, tuple(GENERATORS)).items():
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
    for name, directory in dirs(root, ()).items():
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


def test_dvc_exp_run_and_dagster_selection_in_one_environment(dvc_project, tmp_path):
    """`dvc exp run -S` (DVC's hydra parser) and `dagster asset materialize --select` (Dagster's antlr
    parser) both work in the environment the project installs."""
    root = copy_project(dvc_project[0], tmp_path / "exp")
    sh(["git", "add", "-A"], root)
    sh(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], root)
    exp = sh(["dvc", "exp", "run", "--set-param", "neighbors.k=3", "neighbors"], root)
    assert "Ran experiment" in exp.stdout + exp.stderr
    assert "Running stage 'embeddings'" not in exp.stdout        # the experiment reruns what k changes alone
    assert (root / "data/neighbors/digits/pixels/k3/indices.npy").exists()
    config = {"resources": {"params": {"config": {"overrides": ["neighbors.k=4"]}}}}
    proc = subprocess.run(["dagster", "asset", "materialize", "-m", "pipelines.definitions", "--select",
                           "+neighbors", "--config-json", json.dumps(config)],
                          cwd=root, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0 and "RUN_SUCCESS" in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert "Executing steps in process" in proc.stderr + proc.stdout   # not a process per step (see definitions)
    assert (root / "data/neighbors/digits/pixels/k4/indices.npy").exists()


