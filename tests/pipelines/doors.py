"""What the front-door tests share: the tests' parameters, a project laid out as a user's (dvc.yaml, .dvcignore,
params.yaml and the package dvc.yaml's code deps point at), the artifacts' folders and a Dagster run of every asset."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
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


def write_params(root: Path, overrides: list[str]) -> None:
    raw = P.apply_overrides(P.read_yaml(REPO / "params.yaml"), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def make_project(root: Path, overrides: list[str] = FAST) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    # dvc.yaml's code deps point at the package, so the project carries a copy of it.
    shutil.copytree(REPO / "ganops", root / "ganops", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(root, overrides)
    return root


def sh(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def dirs(root: Path, families=("icgan",)) -> dict[str, Path]:
    base = root / "data"
    dirs = {"dataset": base / "dataset/digits", "embeddings": base / "embeddings/digits/pixels",
            "neighbors": base / "neighbors/digits/pixels/k5", "evaluator": base / "evaluator/digits"}
    return {**dirs, **{f: base / GENERATORS[f] for f in families},
            **{f"evaluation {f}": base / GENERATORS[f].replace("generator/", "evaluation/", 1) for f in families}}


def metas(root: Path, families=("icgan",)) -> dict[str, bytes]:
    return {name: (d / "meta.json").read_bytes() for name, d in dirs(root, families).items()}


def transfer_metas(root: Path) -> dict[str, bytes]:
    return {key: (root / "data" / rel / "meta.json").read_bytes() for key, rel in TRANSFER.items()}


def dagster_materialize(root: Path, selection: list[str] | None = None):
    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams
    from pipelines.schedules import WHOLE  # every asset but the partitioned *_shards ones

    resources = {**defs.resources, "params": GanopsParams(project_root=str(root))}
    graph = defs.resolve_asset_graph()
    assets = [defs.get_assets_def(k) for k in graph.get_all_asset_keys()]
    checks = list(defs.asset_checks)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([*assets, *checks], resources=resources, instance=instance, selection=selection or WHOLE)
    return result, instance



def copy_project(root: Path, dest: Path) -> Path:
    """A copy of a built project (its git, DVC cache and lock, MLflow store, artifacts): a test that changes
    parameters works on its copy and leaves the shared one as every other test expects it."""
    shutil.copytree(root, dest, symlinks=True)
    return dest
