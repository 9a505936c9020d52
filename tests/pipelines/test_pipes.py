"""Dagster launches a multi-process training through Pipes for real: torchrun with 2 gloo ranks as a Pipes
subprocess, rank 0 reporting the library's log lines and one materialization; and the same definitions with
the Kubernetes client configured."""

from pathlib import Path

import dagster as dg
import yaml
from conftest import REPO

from ganops.core import params as P

SETS = ["data.limit=300", "data.resolution=16", "train.g_filters=8", "train.d_filters=8", "train.batch_size=16",
        "train.steps=8", "train.grid_size=16", "train.checkpoint_every=4", "device=cpu"]


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(P.apply_overrides(raw, SETS), sort_keys=False))
    return root


def test_a_two_process_training_asset_runs_torchrun_through_pipes_and_rank_0_reports_it(tmp_path, monkeypatch):
    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    root = _project(tmp_path / "p")
    graph = defs.resolve_asset_graph()
    assets = [defs.get_assets_def(k) for k in graph.get_all_asset_keys()]
    instance = dg.DagsterInstance.ephemeral()
    base = {**defs.resources, "params": GanopsParams(project_root=str(root))}
    assert dg.materialize(assets, resources=base, selection=["dataset"], instance=instance).success
    two = {**defs.resources, "params": GanopsParams(project_root=str(root),
                                                    overrides=["distributed.nproc_per_node=2"])}
    result = dg.materialize(assets, resources=two, selection=["generator/dcgan"], instance=instance)
    assert result.success
    mats = result.asset_materializations_for_node(result.get_step_success_events()[0].step_key.replace(".", "__"))
    assert len(mats) == 1                                    # one materialization, from rank 0 alone
    meta = mats[0].metadata
    assert meta["steps"].value == 8 and "preview_grid" in meta and meta["path"].value.endswith("generator/digits/dcgan")
    on_disk = yaml.safe_load((root / "data/generator/digits/dcgan/meta.json").read_text())
    assert on_disk["world_size"] == 2
    assert mats[0].tags["dagster/data_version"] == on_disk["content_hash"]
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("through Dagster Pipes (subprocess)" in m for m in logs)
    assert any("ganops.core.distributed: distributed: rank 0 of 2" in m for m in logs)   # the library's lines
    assert not any("rank 1 of 2" in m for m in logs)                                    # rank 0's alone

    # a failure on the ranks fails the step with the library's one line, not a hang
    bad = {**defs.resources, "params": GanopsParams(project_root=str(root), overrides=[
        "distributed.nproc_per_node=2", "train.lr_g=1e38", "train.lr_d=1e38", "train.steps=20"])}
    failed = dg.materialize(assets, resources=bad, selection=["generator/cgan"], instance=instance,
                            raise_on_error=False)
    assert not failed.success
    logs = [e.user_message for e in instance.all_logs(failed.run_id)]
    assert any("non-finite loss at step" in m for m in logs)


def test_the_same_definitions_launch_on_kubernetes_with_the_k8s_client(tmp_path):
    from pipelines.definitions import RESOURCES, defs
    from pipelines.pipes import TrainingLauncher

    k8s = TrainingLauncher(kind="k8s", image="registry.example/ganops:1", gpus_per_pod=8, namespace="gans")
    cluster = dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs,
                             schedules=defs.schedules, sensors=defs.sensors, resources={**RESOURCES, "launcher": k8s})
    dg.Definitions.validate_loadable(cluster)
    p = P.load(None, ["distributed.nproc_per_node=8", "distributed.nnodes=2",
                      "distributed.rdzv_endpoint=trainer-0.gans:29400"])
    cmd = k8s.command("train", p, tmp_path, None)
    assert cmd[:3] == ["python", "-m", "torch.distributed.run"]
    assert "--rdzv-endpoint" in cmd and "trainer-0.gans:29400" in cmd and "--standalone" not in cmd
    assert cmd[cmd.index("-m", 3) + 1] == "pipelines.pipes_stage" and "--root" in cmd
    assert k8s.pod_spec() == {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "8"}}}]}
    from dagster_k8s import PipesK8sClient  # the client the k8s launcher runs (installed with the dev extras)

    assert callable(PipesK8sClient().run)
