"""The evaluation stage end to end through the command line, the promotion gate, the champion/challenger
decision in a real MLflow registry, and sampling from the model of the data and from the registry."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, fast_overrides, one_line_error, run_ganops
from PIL import Image

from ganops.core import artifacts as A
from ganops.core import params as P
from ganops.models.blocks import GConfig
from ganops.models.gan_model import GeneratorModel
from ganops.tracking import checks, registry
from ganops.tracking.runs import RunContext, stage_run

# a judge worth its verdicts: more evaluator epochs than the other end-to-end tests need
CGAN = fast_overrides(**{"embed.encoder": "pixels", "train.family": "cgan", "train.steps": 100, "evaluator.epochs": 8})
ICGAN = fast_overrides(**{"embed.encoder": "pixels", "train.family": "icgan", "train.class_conditional": "true",
                           "evaluator.epochs": 8})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    run_ganops(root, "run", sets=CGAN)
    # what the first evaluation decided, before any test registers or re-scores other versions
    first = registry.champion(_params(root, CGAN), root)
    (root / "first_decision.json").write_text(json.dumps({"version": first.version, "tags": first.tags}))
    return root


@pytest.fixture(scope="module")
def icgan(project) -> Path:
    """The project with a class-conditional IC-GAN trained, evaluated and registered too (once per module)."""
    run_ganops(project, "run", sets=ICGAN)
    return project


def _params(root: Path, sets: list[str]) -> P.Params:
    return P.load(root / "params.yaml", sets)


def test_the_report_names_every_figure_with_its_feature_space(project):
    out = project / "data/evaluation/digits/cgan"
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    for key in ("fid_evaluator", "kid_evaluator_mean", "kid_evaluator_std", "precision_evaluator", "recall_evaluator",
                "density_evaluator", "coverage_evaluator", "label_accuracy", "near_copy_fraction_pixels",
                "nn_distance_pixels_ratio", "ppl_evaluator", "probe_discriminator", "probe_pixels"):
        assert key in m and np.isfinite(m[key]), key
    assert not any(k.startswith("fid") and k not in ("fid_evaluator",) for k in m)   # no Inception weights here
    assert "weights-inception-2015-12-05" in report["inception"] and "checkpoints" in report["inception"]
    assert set(report["label_accuracy"]) == {str(c) for c in range(10)}
    assert 0 <= m["label_accuracy"] <= 1 and m["n_samples"] == 100
    # the evaluator's own held-out accuracy says how far its verdicts can be trusted
    evaluator = A.read_meta(project / "data/evaluator/digits")
    assert evaluator["metrics"]["holdout_accuracy"] > 0.5 and evaluator["kind"] == "classifier"
    meta = A.read_meta(out)
    assert meta["params"]["evaluate"]["n_samples"] == 100 and meta["params"]["evaluate"]["seed"] == 0
    assert set(meta["upstream"]) == {"dataset", "train", "evaluator"}
    for name in ("samples", "latent_walk", "latent_arithmetic", "nearest", "losses"):
        with Image.open(out / f"{name}.png") as im:
            assert im.format == "PNG" and min(im.size) >= 96, name
            if name == "samples":       # a row of 8 per class, all 10 in order: taller than wide by about 10/8
                assert 1.15 < im.size[1] / im.size[0] < 1.35, im.size
    assert json.loads((project / "metrics/evaluate_cgan.json").read_text())["fid_evaluator"] == m["fid_evaluator"]


def test_the_first_healthy_version_is_champion_and_sample_loads_it(project, tmp_path):
    first = json.loads((project / "first_decision.json").read_text())
    con_tags = first["tags"]
    assert con_tags["ganops.decision"] == "promoted" and con_tags["ganops.decision_reason"] == "no champion yet"
    assert str(registry.champion(_params(project, CGAN), project).version) == str(first["version"])
    out = tmp_path / "champion.png"
    run_ganops(project, "sample", "--model", "champion", "--label", "3", "--n", "8", "--out", str(out), "--npy",
               sets=CGAN)
    local = tmp_path / "local.png"
    run_ganops(project, "sample", "--label", "3", "--n", "8", "--out", str(local), "--npy", sets=CGAN)
    # the registered version is the generator artifact: same weights, same samples
    assert np.array_equal(np.load(out.with_suffix(".npy")), np.load(local.with_suffix(".npy")))
    missing = run_ganops(project, "sample", "--model", "7", "--label", "3", sets=CGAN, check=False)
    assert missing.returncode == 2 and "no version 7" in missing.stderr and "versions: 1" in missing.stderr


def test_a_challenger_that_loses_leaves_the_champion_in_place(project):
    p = _params(project, CGAN)
    champ = registry.champion(p, project)
    fid = float(champ.tags[f"metric.{registry.PRIMARY}"])
    space = champ.tags[registry.SPACE_TAG]
    gen = A.generator_dir(project, p)
    with stage_run(p, project, "evaluate", RunContext("python")) as run:   # a real run in the project's store
        worse = registry.register(p, project, run, gen, "challenger-1", space, {registry.PRIMARY: fid * 2})
        better = registry.register(p, project, run, gen, "challenger-2", space, {registry.PRIMARY: fid / 2})
    lost = registry.record(p, project, registry.decide(p, project, worse), apply=True)
    assert not lost.promote and "does not beat" in lost.reason and lost.champion == pytest.approx(fid, rel=1e-5)
    assert registry.champion(p, project).version == champ.version
    assert registry.resolve(p, project, worse).tags["ganops.decision"] == "not promoted"
    sick = registry.decide(p, project, better, healthy=False, health="samples collapsed")
    assert not sick.promote and "collapsed" in sick.reason
    # the champion itself failing the gate now (a stricter gate) keeps the alias, and the reason says so
    held = registry.decide(p, project, champ.version, healthy=False, health="samples collapsed")
    assert not held.promote and "keeps it" in held.reason and "keeps it" not in sick.reason
    won = registry.record(p, project, registry.decide(p, project, better), apply=True)
    assert won.promote and str(registry.champion(p, project).version) == better
    # another feature space: the champion's figure is not comparable, and the reason says so
    other = None
    with stage_run(p, project, "evaluate", RunContext("python")) as run:
        other = registry.register(p, project, run, gen, "challenger-3", "another-evaluator", {registry.PRIMARY: 1e9})
    # …without a way to score the champion there, the champion stays; with one, the figures compete
    kept = registry.decide(p, project, other)
    assert not kept.promote and "stays champion" in kept.reason
    scored = registry.decide(p, project, other, rescore=lambda weights: 1e10)
    assert scored.promote and "re-scored" in scored.reason and scored.champion == 1e10
    assert not registry.decide(p, project, other, rescore=lambda weights: 1.0).promote
    # the other tests of this module expect the trained generator (v1) as the champion
    registry.mlflow_client(p, project).set_registered_model_alias(champ.name, registry.ALIAS, champ.version)


def test_re_evaluating_a_generator_adds_no_twin_version(project):
    before = registry.resolve(_params(project, CGAN), project, "1")
    run_ganops(project, "stage", "evaluate", sets=[*CGAN, "evaluate.per_label=12"])
    p = _params(project, CGAN)
    assert registry.version_of(p, project, A.read_meta(A.evaluation_dir(project, p))["upstream"]["train"]) == "1"
    assert registry.resolve(p, project, "1").tags["metric.n_samples"] == before.tags["metric.n_samples"]


def test_the_promotion_gate_stops_a_collapsed_or_broken_generator(tmp_path):
    def gate(**metrics):
        (tmp_path / "report.json").write_text(json.dumps({"metrics": {"non_finite_weights": 0, "diversity_ratio_evaluator": 0.9,
                                                                       "fid_evaluator": 1.0, **metrics}}))
        return checks.promotion_gate(tmp_path, 0.2)

    assert gate().passed
    collapsed = gate(diversity_ratio_evaluator=0.01)
    assert not collapsed.passed and "collapsed" in collapsed.description
    assert not gate(non_finite_weights=3).passed and "3 non-finite" in gate(non_finite_weights=3).description
    assert not gate(fid_evaluator=float("nan")).passed


def test_icgan_samples_the_model_of_the_data_an_instance_per_sample():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((500, 8)).astype(np.float32)
    labels = np.repeat(np.arange(10), 50)
    model = lambda family, **cfg: GeneratorModel({"family": family, "configs": {"G": GConfig(**cfg).to_dict()}})  # noqa: E731
    g = model("icgan", feat_dim=8)
    _, h, picks = g.data_conditions(1000, seed=1, features=features, labels=labels)
    assert len(np.unique(picks)) > 400 and np.array_equal(h, features[picks])     # not one shared instance
    assert np.array_equal(g.data_conditions(1000, 1, features, labels)[2], picks)   # seeded
    cc = model("icgan", feat_dim=8, n_classes=10)
    y, _, picks = cc.data_conditions(200, seed=0, features=features, labels=labels, label=7)
    assert (labels[picks] == 7).all() and (y == 7).all()           # p(x | y): instances of class y
    y, _, picks = cc.data_conditions(200, seed=0, features=features, labels=labels)
    assert np.array_equal(y, labels[picks]) and len(np.unique(y)) == 10


def test_class_conditional_icgan_reports_own_class_and_swapped_accuracy(icgan):
    project = icgan
    report = json.loads((project / "data/evaluation/digits/pixels/k5/icgan/report.json").read_text())
    m = report["metrics"]
    for key in ("label_accuracy", "label_accuracy_swapped", "instance_precision_evaluator",
                "heldout_instance_precision_evaluator", "instance_fid_evaluator", "heldout_instance_fid_evaluator",
                "probe_encoder"):
        assert key in m and np.isfinite(m[key]), key
    assert set(report["label_accuracy_swapped"]) == {str(c) for c in range(10)}
    for name in ("instances", "heldout_instances"):
        assert (project / f"data/evaluation/digits/pixels/k5/icgan/{name}.png").exists()
    board = run_ganops(project, "leaderboard", sets=ICGAN).stdout
    assert "| icgan (class-conditional) |" in board and "| cgan |" in board


def test_an_icgan_conditioned_on_another_datasets_instances_is_scored_against_it(icgan, tmp_path):
    """IC-GAN's transfer: trained on digits, conditioned on the shared MNIST split's instances (fast_overrides'
    on_instances.*), scored against MNIST beside its own draw; the figures reach the registry and leaderboard."""
    project = icgan
    run_ganops(project, "stage", "evaluate_on_instances", sets=ICGAN)
    out = project / "data/evaluation/on_instances/digits/pixels/k5/icgan"
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    for key in ("fid_evaluator", "kid_evaluator_mean", "precision_evaluator", "recall_evaluator", "coverage_evaluator",
                "own_fid_evaluator", "own_precision_evaluator", "own_recall_evaluator"):
        assert key in m and np.isfinite(m[key]), key
    assert m["n_instances"] == m["n_samples"] == 200
    # MNIST's classes are digits' by name: every sample is judged against its instance's digit
    assert m["label_agreement_n"] == 200 and 0.0 <= m["label_agreement"] <= 1.0
    assert "own_label_agreement" not in m                                 # the own draw has no other instances
    meta = json.loads((out / "meta.json").read_text())
    assert meta["params"]["on_instances"]["dataset"] == "mnist" and meta["params"]["on_instances"]["limit"] == 200
    with Image.open(out / "instances.png") as im:
        assert im.format == "PNG"
    # the registered version of this generator carries the figures, beside those of its own evaluation
    p = _params(project, ICGAN)
    version = registry.version_of(p, project, meta["upstream"]["train"])
    tags = registry.mlflow_client(p, project).get_model_version(registry.registered_model_name(p), version).tags
    assert tags["on_instances.mnist.fid_evaluator"] == f"{m['fid_evaluator']:.6g}" and "metric.fid_evaluator" in tags
    board = run_ganops(project, "leaderboard", sets=ICGAN).stdout
    assert "fid_on_instances" in board and "| mnist |" in board
    # bad input names the key: a folder that is not there, a family with no instance to condition on
    line = one_line_error(run_ganops(project, "stage", "evaluate_on_instances", check=False,
                                     sets=[*ICGAN, f"on_instances.dataset={tmp_path / 'nowhere'}"]))
    assert "on_instances.dataset=" in line and "nowhere" in line and "neither a dataset" in line
    assert "file" not in line and "no such folder" in line
    few = tmp_path / "few"
    (few / "3").mkdir(parents=True)                      # a class the training knows, so only the count fails
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(few / "3" / "a.png")
    line = one_line_error(run_ganops(project, "stage", "evaluate_on_instances", check=False,
                                     sets=[*ICGAN, f"on_instances.dataset={few}"]))
    assert "1 instance(s); the figures need at least 6" in line
    proc = run_ganops(project, "stage", "evaluate_on_instances", check=False,
                      sets=[*ICGAN, "on_instances.dataset=usps", f"on_instances.root={tmp_path}",
                            "on_instances.download=false"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr       # the keys this stage's user set
    assert "on_instances.root" in proc.stderr and "on_instances.download" in proc.stderr
    assert "data.root" not in proc.stderr and "data.download" not in proc.stderr
    line = one_line_error(run_ganops(project, "stage", "evaluate_on_instances", check=False, sets=CGAN))
    assert "train.family=cgan" in line and "train.family=icgan" in line
    line = one_line_error(run_ganops(project, "stage", "evaluate_on_instances", check=False,
                                     sets=[*ICGAN, "on_instances.dataset=image_folder"]))
    assert "on_instances.dataset" in line and "name the folder itself" in line


def test_a_dagster_retrain_whose_challenger_loses_stops_at_the_gate(project):
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams

    p = _params(project, CGAN)
    champ = registry.champion(p, project)
    fid = float(champ.tags[f"metric.{registry.PRIMARY}"])
    with stage_run(p, project, "evaluate", RunContext("python")) as run:   # a champion the retrain cannot beat
        strong = registry.register(p, project, run, A.generator_dir(project, p), "strong",
                                   champ.tags[registry.SPACE_TAG], {registry.PRIMARY: fid / 10})
    registry.record(p, project, registry.decide(p, project, strong), apply=True)
    try:
        resources = {**defs.resources, "params": GanopsParams(project_root=str(project), overrides=CGAN)}
        keys = [dg.AssetKey(["evaluation", "cgan"]), dg.AssetKey(["champion", "cgan"])]
        gates = [c for c in defs.asset_checks if any(k.asset_key == keys[0] for k in c.check_keys)]
        result = dg.materialize([*(defs.get_assets_def(k) for k in keys), *gates], resources=resources,
                                raise_on_error=False, instance=dg.DagsterInstance.ephemeral())
        done = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
        assert "evaluation/cgan" in done and "champion/cgan" not in done       # the gate stopped the chain
        gate = [c for c in result.get_asset_check_evaluations() if c.check_name == "promotion_gate"]
        assert len(gate) == 1 and not gate[0].passed and "does not beat" in gate[0].description
        assert str(registry.champion(p, project).version) == strong               # the champion stays
    finally:
        registry.mlflow_client(p, project).set_registered_model_alias(champ.name, registry.ALIAS, champ.version)


def test_warm_start_trains_on_from_the_champions_weights(project, tmp_path):
    import shutil

    import torch

    from ganops.models.weights import load_weights

    # a copy of the project (its registry included): retraining here leaves the module's generator alone
    project = Path(shutil.copytree(project, tmp_path / "copy", ignore=shutil.ignore_patterns(".locks")))
    p = _params(project, CGAN)
    champion, _ = registry.load_weights(p, project, registry.ALIAS)
    sets = [*CGAN, "train.warm_start=true", "train.steps=2", "train.ema=false"]
    run_ganops(project, "stage", "train", sets=sets)
    out = A.generator_dir(project, _params(project, sets))
    meta = A.read_meta(out)
    assert meta["warm_start_from"].startswith(f"ganops-digits-cgan v{registry.champion(p, project).version} ")
    warm = load_weights(out / "model.pt")["networks"]["G"]
    key = next(k for k in warm if k.endswith("weight") and warm[k].ndim == 4)
    start = champion["networks"]["G"][key]
    # two Adam steps from the champion's weights: still close to them, far from a fresh initialisation
    assert (warm[key] - start).abs().max() < 0.01 < (start - torch.randn_like(start) * 0.02).abs().max()
    other = run_ganops(project, "stage", "train", sets=[*sets, "train.g_filters=16"], check=False)
    assert other.returncode == 2 and "train.warm_start" in other.stderr and "filters" in other.stderr
