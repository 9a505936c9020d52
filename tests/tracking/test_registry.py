"""The model registry on a real MLflow store (SQLite): a version per evaluated generator, the champion
alias moved only by a healthy version that beats it in the same evaluator space, re-scoring across
spaces, the decision recorded on the version, and clear errors for what is not there."""

from pathlib import Path

import numpy as np
import pytest
import torch

from ganops.core.params import Params
from ganops.models.weights import load_weights, save_weights
from ganops.tracking import registry
from ganops.tracking.runs import stage_run
from ganops.train import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    """Three trained DCGANs (different seeds), each a folder with its model.pt; each test registers them in
    an MLflow store of its own (tmp_path), so the tests pass in any order."""
    root = tmp_path_factory.mktemp("generators")
    images = np.random.default_rng(0).integers(0, 256, (32, 1, 16, 16), dtype=np.uint8)
    dirs = []
    for seed in range(3):
        p = Params.model_validate({"seed": seed, "device": "cpu", "train": {
            "family": "dcgan", "steps": 2, "batch_size": 8, "g_filters": 8, "d_filters": 8, "z_dim": 8}})
        d = root / f"generator{seed}"
        save_weights(d / "model.pt", train(p, images, progress=False).weights())
        dirs.append(d)
    return dirs


def params() -> Params:
    return Params.model_validate({"data": {"dataset": "digits"}, "train": {"family": "dcgan"}})


def _register(root: Path, gdir: Path, fid: float, space: str = "evaluator-a") -> str:
    p = params()
    with stage_run(p, root, "evaluate") as run:
        return registry.register(p, root, run, gdir, f"hash-of-{gdir.name}", space, {"fid_evaluator": fid})


def test_the_champion_moves_only_to_a_healthy_version_that_beats_it_in_the_same_space(generators, tmp_path, capfd):
    root, (g0, g1, g2) = tmp_path, generators
    p = params()
    assert registry.registered_model_name(p) == "ganops-digits-dcgan"
    v1 = _register(root, g0, 10.0)
    d = registry.record(p, root, registry.decide(p, root, v1), apply=True)
    assert d.promote and d.reason == "no champion yet" and str(registry.champion(p, root).version) == v1
    assert _register(root, g0, 10.0) == v1                      # re-evaluating adds no twin version

    v2 = _register(root, g1, 12.0)
    assert "already exists" not in capfd.readouterr().err      # a second version is no news on a fresh store
    d = registry.record(p, root, registry.decide(p, root, v2), apply=True)
    assert not d.promote and "does not beat the champion's 10" in d.reason and d.champion_version == v1
    assert str(registry.champion(p, root).version) == v1
    tags = registry.resolve(p, root, v2).tags
    assert tags["ganops.decision"] == "not promoted" and tags["ganops.champion_fid_at_decision"] == "10"

    d = registry.decide(p, root, v2, healthy=False, health="samples collapsed")
    assert not d.promote and d.reason == "failed the health check: samples collapsed"

    v3 = _register(root, g2, 8.0)
    d = registry.record(p, root, registry.decide(p, root, v3), apply=False)     # evaluate.promote=false
    assert d.promote and str(registry.champion(p, root).version) == v1
    assert registry.resolve(p, root, v3).tags["ganops.decision"] == "would promote (evaluate.promote=false)"
    registry.record(p, root, registry.decide(p, root, v3), apply=True)
    assert str(registry.champion(p, root).version) == v3

    # a champion that fails the gate on re-evaluation keeps the alias, and says so
    d = registry.decide(p, root, v3, healthy=False, health="non-finite weights")
    assert not d.promote and "keeps it" in d.reason


def test_a_champion_scored_in_another_space_is_rescored_or_kept(generators, tmp_path):
    root, (g0, g1, _) = tmp_path, generators
    p = params()
    v1 = _register(root, g0, 10.0)
    registry.record(p, root, registry.decide(p, root, v1), apply=True)
    v2 = _register(root, g1, 5.0, space="evaluator-b")          # the evaluator was rebuilt
    kept = registry.decide(p, root, v2)
    assert not kept.promote and "another evaluator space" in kept.reason

    seen = []

    def rescore(weights: dict) -> float:
        seen.append(weights)
        return 7.0

    d = registry.decide(p, root, v2, rescore=rescore)
    assert d.promote and d.champion == 7.0 and "re-scored" in d.reason
    # the champion's own registered weights were re-scored, read back with weights_only
    assert torch.equal(seen[0]["networks"]["G"]["out.weight"], load_weights(g0 / "model.pt")["networks"]["G"]["out.weight"])
    weights, mv = registry.load_weights(p, root, "champion")
    assert str(mv.version) == v1 and weights["family"] == "dcgan"


def test_asking_for_what_is_not_registered_names_the_model_and_what_it_has(generators, tmp_path):
    p = params()
    with pytest.raises(registry.RegistryError, match=r"ganops-digits-dcgan has no alias champion \(no versions yet\);"
                                                     r" run `ganops stage evaluate`"):
        registry.resolve(p, tmp_path, "champion")
    for gdir, fid in zip(generators, (3.0, 2.0)):
        _register(tmp_path, gdir, fid)
    with pytest.raises(registry.RegistryError, match=r"has no version 99 \(versions: 1, 2\)"):
        registry.resolve(p, tmp_path, "99")
    with pytest.raises(registry.RegistryError, match=r"no version was promoted yet \(v2: not decided\)"):
        registry.resolve(p, tmp_path, "champion")
    with pytest.raises(registry.RegistryError, match=r"--model best: not an alias or a version of ganops-digits-dcgan; "
                                                     r"give `champion` \(the alias\) or a version number "
                                                     r"\(versions: 1, 2\)$"):
        registry.resolve(p, tmp_path, "best")
    registry.mlflow_client(p, tmp_path).set_registered_model_alias("ganops-digits-dcgan", "champion", "1")
    with pytest.raises(registry.RegistryError, match=r"--model \.\./\.\./x: not an alias or a version .*\(versions: 1, "
                                                     r"2; champion is v1\)$"):
        registry.resolve(p, tmp_path, "../../x")
    q = Params.model_validate({"transfer": {"family": "cyclegan"}})
    with pytest.raises(registry.RegistryError, match=r"ganops-digits-to-mnist-cyclegan has no alias champion.*"
                                                     r"ganops stage evaluate_transfer"):
        registry.resolve(q, tmp_path, "champion", kind="transfer")


def test_a_registered_generator_loads_as_an_exported_program_without_ganops_or_pickle(tmp_path):
    import mlflow.pytorch
    import yaml

    from ganops.models import load_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 1, 16, 16), dtype=np.uint8)
    features = rng.normal(size=(32, 12)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    neighbors = np.stack([np.roll(np.arange(32), -s) for s in (1, 2)], axis=1)
    p = Params.model_validate({"seed": 0, "device": "cpu", "data": {"dataset": "digits"}, "train": {
        "family": "icgan", "class_conditional": True, "steps": 2, "batch_size": 8, "g_filters": 8, "d_filters": 8,
        "z_dim": 8}})
    weights = train(p, images, rng.integers(0, 10, 32), features, neighbors, progress=False).weights()
    gdir = tmp_path / "generator"
    save_weights(gdir / "model.pt", weights)
    with stage_run(p, tmp_path, "evaluate") as run:
        version = registry.register(p, tmp_path, run, gdir, "hash-g", "space", {"fid_evaluator": 1.0})
    uri = f"models:/{registry.registered_model_name(p)}/{version}"
    local = Path(mlflow.artifacts.download_artifacts(uri))
    assert "pytorch" in yaml.safe_load((local / "MLmodel").read_text())["flavors"]
    assert sorted(p.name for p in (local / "data").iterdir()) == ["model.pt2"]   # no pickled module beside it
    served = mlflow.pytorch.load_model(uri)                       # torch.export's program: G(z, y, h)
    z, y = torch.randn(5, 8), torch.tensor([0, 3, 3, 9, 1])
    h = torch.from_numpy(features[:5])
    G = load_model(weights).G
    torch.testing.assert_close(served(z, y, h), G(z, y, h))
