"""dvc.yaml, params.yaml and the schema cannot drift apart: each DVC stage depends on every ganops
source file its output depends on (derived from the imports) and on exactly the parameters of its
artifact's identity; params.yaml lists every key with the schema's default."""


import pytest
import yaml
from conftest import REPO

from ganops.catalog.families import SPECS, TRANSFER_SPECS
from ganops.core import identity as I
from ganops.core import params as P
from ganops.core.lineage import code_version, stage_files
from ganops.core.params import DOMAINS

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
DVC_STAGES = {"dataset": ("dataset", None), "embeddings": ("embeddings", None), "neighbors": ("neighbors", None),
              **{f"train_{f}": ("train", f) for f in SPECS}, "evaluator": ("evaluator", None),
              **{f"evaluate_{f}": ("evaluate", f) for f in SPECS},
              **{f"evaluate_on_instances_{f}": (I.ON_INSTANCES, f) for f in I.ON_INSTANCES_FAMILIES},
              **{f"{s}_{role}": (s, None) for s in I.DOMAIN_STAGES for role in I.roles(s)},
              **{f"{s}_{f}": (s, f) for s in ("transfer", "evaluate_transfer") for f in TRANSFER_SPECS}}
RUN_ONLY_PARAMS = {"device"}   # decides where the stage runs; rerun when it changes, not part of the identity


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_family_has_its_dvc_stage():
    assert set(DVC) == set(DVC_STAGES)


@pytest.mark.parametrize("dvc_stage", sorted(DVC_STAGES))
def test_dvc_deps_cover_the_source_the_stage_imports(dvc_stage):
    stage, _ = DVC_STAGES[dvc_stage]
    deps = DVC[dvc_stage]["deps"]
    missing = [f for f in stage_files(stage) if not _covered(f, deps)]
    assert not missing, f"dvc.yaml stage {dvc_stage} lacks deps on {missing}"
    for dep in deps:   # and no dep points at nothing
        assert "${" in dep or (REPO / dep).exists(), dep


@pytest.mark.parametrize("dvc_stage", sorted(DVC_STAGES))
def test_dvc_params_are_the_artifact_identity(dvc_stage):
    stage, family = DVC_STAGES[dvc_stage]
    role = dvc_stage.rpartition("_")[2] if dvc_stage.endswith(DOMAINS) else None
    # a domain's stage reads its data keys from transfer.<role>, its evaluator keys from transfer.<role>_evaluator
    domain = {"data": f"transfer.{role}", "evaluator": f"transfer.{role}_evaluator"} if role else {}
    want = {domain.get(k, k) for k in I.keys(stage, family)}
    assert set(DVC[dvc_stage]["params"]) - RUN_ONLY_PARAMS == want


def test_a_dcgan_generator_does_not_depend_on_the_neighborhoods():
    assert "neighbors" not in I.keys("train", "dcgan") and "embed" not in I.keys("train", "dcgan")
    assert not any("neighbors" in d or "embeddings" in d for d in DVC["train_dcgan"]["deps"] if d.startswith("data"))
    assert "neighbors" in I.keys("train", "icgan")
    a, b = (P.load(REPO / "params.yaml", ["train.family=dcgan", f"neighbors.k={k}"]) for k in (5, 20))
    assert I.identity(a, "train") == I.identity(b, "train")
    c, d = (P.load(REPO / "params.yaml", [f"neighbors.k={k}"]) for k in (5, 20))
    assert I.identity(c, "train") != I.identity(d, "train")


def test_the_lineage_follows_imports_inside_functions(tmp_path):
    # the train stage imports the trainer inside its function body; editing a network must retrain
    files = stage_files("train")
    assert {"ganops/models/blocks.py", "ganops/catalog/losses.py", "ganops/train/trainer.py"} <= set(files)
    assert "ganops/evaluate/metrics.py" not in files and "ganops/tracking/runs.py" not in files
    assert "ganops/models/gan.py" in files   # a family is imported by name from the registry, and followed
    assert "ganops/models/blocks.py" not in stage_files("dataset")
    assert code_version("train") != code_version("dataset")


def test_params_yaml_lists_every_key_with_the_schema_default():
    raw = P.read_yaml(REPO / "params.yaml")
    assert P.validate(raw) == P.Params()
    flat_file = P._flatten(raw)
    assert set(flat_file) == set(P.Params().flat())


def test_dagster_generator_assets_depend_on_what_their_family_reads():
    import dagster as dg

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    parents = {f: {k.to_user_string() for k in graph.get(dg.AssetKey(["generator", f])).parent_keys} for f in SPECS}
    assert parents == {"dcgan": {"dataset"}, "cgan": {"dataset"},
                       "icgan": {"dataset", "embeddings", "neighbors"}}


def test_dagster_evaluations_depend_on_their_generator_and_the_evaluator():
    import dagster as dg

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    parents = lambda key: {k.to_user_string() for k in graph.get(dg.AssetKey(key)).parent_keys}  # noqa: E731
    assert parents(["evaluation", "dcgan"]) == {"dataset", "generator/dcgan", "evaluator"}
    assert parents(["evaluation", "icgan"]) == {"dataset", "embeddings", "neighbors", "generator/icgan",
                                                "evaluator"}
    assert parents(["champion", "cgan"]) == {"evaluation/cgan"}
    # the IC-GAN on another dataset's instances: the same inputs, after the evaluation that registers the generator
    assert parents(["evaluation_on_instances", "icgan"]) == {"dataset", "embeddings", "neighbors", "generator/icgan",
                                                             "evaluator", "evaluation/icgan"}
    assert {"evaluation/dcgan", "evaluation/cgan", "evaluation/icgan",
            "evaluation_on_instances/icgan"} == parents(["leaderboard"])
    gate = next(c for c in defs.asset_checks if any(k.asset_key == dg.AssetKey(["evaluation", "cgan"])
                                                       for k in c.check_keys))
    assert all(spec.blocking for spec in gate.check_specs)
