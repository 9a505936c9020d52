"""The front doors on projects of their own: Dagster's and dg's loading of the definitions, the CLI's and
Dagster's one-line errors, and a rerun of the default encoder that leaves DVC's view unchanged."""

import json
import subprocess

import dagster as dg
from conftest import REPO, fast_overrides
from doors import ENV, make_project, sh

from ganops.core import params as P


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
    root = make_project(tmp_path / "p")
    proc = subprocess.run(["ganops", "stage", "neighbors"], cwd=root, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 2 and "ganops stage dataset" in proc.stderr
    proc = subprocess.run(["ganops", "stage", "dataset", "--set", "data.datset=mnist"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "data.datset" in proc.stderr and "Traceback" not in proc.stderr
    sh(["ganops", "run", "-q", "--until", "embeddings"], root)
    proc = subprocess.run(["ganops", "stage", "neighbors", "--set", "neighbors.k=300"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "neighbors.k" in proc.stderr and "300" in proc.stderr
    proc = subprocess.run(["ganops", "stage", "embeddings", "--set", "data.resolution=32"], cwd=root, env=ENV,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "data.resolution" in proc.stderr and "ganops stage dataset" in proc.stderr



def test_the_command_line_refuses_bad_input_before_loading_torch_or_mlflow(tmp_path):
    # a typo is answered at once (a fraction of a second), not after the seconds torch and MLflow take to import
    import sys

    probe = ("import sys\nfrom ganops.commands.cli import main\ncode = main(sys.argv[1:])\n"
             "heavy = sorted(m for m in ('torch', 'mlflow', 'dagster') if m in sys.modules)\n"
             "print('loaded:', ','.join(heavy) or 'none'); sys.exit(code)")
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    for argv, key in ((["stage", "train", "--set", "train.lr_g=-1"], "train.lr_g"),
                      (["stage", "dataset", "--params", "nope.yaml"], "nope.yaml"),
                      (["run", "--set", "neighbors.kk=3"], "neighbors.kk")):
        proc = subprocess.run([sys.executable, "-c", probe, *argv], cwd=tmp_path, env=ENV, capture_output=True,
                              text=True)
        assert proc.returncode == 2 and key in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert "loaded: none" in proc.stdout, (argv, proc.stdout)


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

    root = make_project(tmp_path / "p")
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
