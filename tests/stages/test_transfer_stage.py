"""The domain-transfer pipeline through the command line: both domains built by the dataset and evaluator
stages, the translator trained (resumed after a SIGKILL), evaluated against the resize baseline and
registered; `ganops translate` on a user's folder; the papers' other pairs on torchvision-format files."""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CLI_ENV, REPO, fast_overrides, ganops_args, run_ganops
from PIL import Image

from ganops.core import identity as I
from ganops.core import params as P

FAST = fast_overrides()
DTN = [*FAST, "transfer.family=dtn"]
CYCLEGAN = [*FAST, "transfer.family=cyclegan"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transfer")
    (root / "params.yaml").write_text((REPO / "params.yaml").read_text())
    run_ganops(root, "run", "--transfer", sets=DTN)
    return root


def _report(root: Path, family: str) -> dict:
    return json.loads((root / f"data/evaluation/digits-to-mnist/{family}/report.json").read_text())


def test_the_chain_builds_both_domains_and_scores_the_dtn_against_the_resize_baseline(project):
    source = json.loads((project / "data/domains/source/dataset/digits/meta.json").read_text())
    assert source["params"]["data"]["dataset"] == "digits" and source["params"]["data"]["limit"] == 300
    target = json.loads((project / "data/domains/target/dataset/mnist/meta.json").read_text())
    assert target["params"]["data"]["dataset"] == "mnist" and target["metrics"]["n_holdout"] == 30
    model = json.loads((project / "data/transfer/digits-to-mnist/dtn/meta.json").read_text())
    # f is the source's classifier, an artifact of its own; a DTN is judged on the target alone
    assert set(model["upstream"]) == {"dataset@source", "dataset@target", "classifier@source"}
    f = json.loads((project / "data/domains/source/classifier/digits/meta.json").read_text())
    assert model["upstream"]["classifier@source"] == f["content_hash"]
    assert f["params"]["transfer"] == {"source_classifier": P.load(None, DTN).transfer.source_classifier.model_dump()}
    assert 0 <= f["metrics"]["holdout_accuracy"] <= 1
    judged = json.loads((project / "data/evaluation/digits-to-mnist/dtn/meta.json").read_text())
    assert set(judged["upstream"]) == {"dataset@source", "dataset@target", "evaluator@target", "transfer"}
    assert "train" not in model["params"] and "neighbors" not in model["params"]
    assert "cycle_weight" not in model["params"]["transfer"]        # a DTN has no cycle loss
    m = _report(project, "dtn")["metrics"]
    assert m["n_source_holdout"] == 30
    for key in ("transfer_accuracy", "baseline_accuracy", "fid_target", "kid_target", "fid_target_holdout"):
        assert np.isfinite(m[key]), key
    assert 0 <= m["transfer_accuracy"] <= 1 and 0 <= m["baseline_accuracy"] <= 1
    report = _report(project, "dtn")
    per_class = report["transfer_accuracy_per_class"]
    assert set(per_class) == {str(c) for c in range(10)}
    assert per_class[report["transfer_accuracy_worst_class"]] == m["transfer_accuracy_min_class"] == min(
        per_class.values())
    # a judge that misreads its own domain (1 epoch here) is called out beside the figures it makes
    assert ("warning" in report) == (m["target_holdout_accuracy"] < 0.8)
    with Image.open(project / "data/evaluation/digits-to-mnist/dtn/translations.png") as im:
        assert im.size[0] > im.size[1] / 4
    for name in ("dataset_source", "dataset_target", "classifier_source", "evaluator_target", "transfer_dtn",
                 "evaluate_transfer_dtn"):
        assert (project / "metrics" / f"{name}.json").exists(), name


def test_the_translator_is_registered_and_becomes_champion_on_transfer_accuracy(project):
    import sqlite3

    con = sqlite3.connect(project / "mlflow.db")
    aliases = con.execute("select name, alias, version from registered_model_aliases").fetchall()
    assert ("ganops-digits-to-mnist-dtn", "champion", 1) in aliases
    tags = dict(con.execute("select key, value from model_version_tags where name = 'ganops-digits-to-mnist-dtn'"))
    assert tags["ganops.decision_reason"] == "no champion yet"
    assert float(tags["metric.transfer_accuracy"]) == pytest.approx(_report(project, "dtn")["metrics"]
                                                                    ["transfer_accuracy"], rel=1e-5)
    stages = {v for (v,) in con.execute("select value from tags where key = 'ganops.domain'")}
    assert stages == {"source", "target"}


def test_a_changed_domain_names_the_stage_to_rerun(project):
    proc = run_ganops(project, "stage", "transfer", sets=[*DTN, "transfer.source.limit=200"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # named as the user sets them, and the command to run carries the user's --set items that stage reads
    assert "transfer.source.limit=300 (now 200)" in proc.stderr and "data.limit" not in proc.stderr
    assert "ganops stage dataset --domain source" in proc.stderr and "--set transfer.source.limit=200" in proc.stderr
    assert "--set transfer.steps" not in proc.stderr.split("ganops stage dataset")[1].split("`")[0]
    assert "ganops run --transfer" in proc.stderr
    # from another folder (--root): the commands to run say where the project is
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    shutil.copy(project / "params.yaml", elsewhere / "params.yaml")
    proc = run_ganops(elsewhere, "stage", "transfer", "--root", str(project), sets=[*DTN, "transfer.source.limit=200"],
                      check=False)
    assert proc.returncode == 2
    hint = proc.stderr.split("`ganops stage dataset --domain source")[1].split("`")[0]
    assert "--set transfer.source.limit=200" in hint and hint.endswith(f"--root {project}")
    proc = run_ganops(project, "stage", "train", "--domain", "source", sets=DTN, check=False)
    assert proc.returncode == 2 and "only the dataset, evaluator, classifier stages run per domain" in proc.stderr
    # DTN's f is trained on the source: the stage says which domain it needs
    for args, says in ((("classifier",), "add --domain source"),
                       (("classifier", "--domain", "target"), "runs on the source domain only")):
        proc = run_ganops(project, "stage", *args, sets=DTN, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and says in proc.stderr, proc.stderr


def test_a_dtn_refuses_a_source_without_labels_before_training_f(tmp_path):
    # f is a classifier of the source's labels: a folder of unlabelled images cannot give one
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    sets = [*DTN, "transfer.source.dataset=image_folder", f"transfer.source.root={folder}", "transfer.source.limit=null"]
    run_ganops(tmp_path, "stage", "dataset", "--domain", "source", sets=sets)
    proc = run_ganops(tmp_path, "stage", "classifier", "--domain", "source", sets=sets, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "f is a classifier of the source's labels" in proc.stderr and "transfer.family=cyclegan" in proc.stderr
    assert not (tmp_path / "data/domains/source/classifier").exists()


def test_a_domain_without_its_files_names_the_domains_keys(tmp_path):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    proc = run_ganops(tmp_path, "stage", "dataset", "--domain", "target",
                      sets=[*DTN, f"transfer.target.root={tmp_path / 'nothing'}"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "transfer.target.root=" in proc.stderr and "set transfer.target.download=true" in proc.stderr
    assert "data.root" not in proc.stderr and "data.download" not in proc.stderr


def test_translate_with_a_stale_translator_points_to_the_registered_versions(project, tmp_path):
    inputs = _folder(tmp_path)
    proc = run_ganops(project, "translate", "--in", str(inputs), "--out", str(tmp_path / "out"),
                      sets=[*DTN, "transfer.steps=9"], check=False)
    assert proc.returncode == 2 and "transfer.steps=8 (now 9)" in proc.stderr
    assert "--model champion" in proc.stderr and "ganops-digits-to-mnist-dtn" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_translators_identity_holds_only_what_its_family_reads():
    base = P.load(REPO / "params.yaml")
    ident = lambda fam, *sets: I.identity(P.load(REPO / "params.yaml", [f"transfer.family={fam}", *sets]),  # noqa: E731
                                          "transfer")
    assert ident("dtn") == ident("dtn", "neighbors.k=3", "train.steps=7", "transfer.cycle_weight=1",
                                 "data.dataset=mnist", "transfer.checkpoint_every=9", "evaluator.epochs=1")
    assert ident("dtn") != ident("dtn", "transfer.const_weight=1")
    assert ident("dtn") != ident("dtn", "transfer.source_classifier.epochs=1")      # f is the source's classifier
    assert ident("dtn") == ident("dtn", "transfer.target_evaluator.epochs=1",       # the judges only score it
                                 "transfer.source_evaluator.epochs=1")
    assert ident("cyclegan") == ident("cyclegan", "transfer.source_evaluator.epochs=1",
                                      "transfer.target_evaluator.epochs=1", "transfer.tid_weight=0",
                                      "transfer.source_classifier.epochs=1")
    assert ident("cyclegan") != ident("cyclegan", "transfer.target.limit=500")
    assert I.identity(base.domain("target"), "dataset")["data"] == base.transfer.target.model_dump()
    for role in ("source", "target"):
        assert (I.identity(base.domain(role), "evaluator")["evaluator"]
                == getattr(base.transfer, f"{role}_evaluator").model_dump())
    assert I.identity(base.domain("source"), "classifier")["transfer"] == {
        "source_classifier": base.transfer.source_classifier.model_dump()}
    assert base.transfer.source_classifier.augment == "cross_domain"
    assert base.transfer.source_evaluator.augment == base.transfer.target_evaluator.augment == "mild"


def test_cyclegan_reports_cycle_error_and_label_preservation_both_ways(project):
    import shutil

    run_ganops(project, "stage", "transfer", sets=CYCLEGAN)
    # its translations back are judged by the source's evaluator, which a DTN's chain does not build (another
    # test of this module may have built it)
    shutil.rmtree(project / "data/domains/source/evaluator", ignore_errors=True)
    proc = run_ganops(project, "stage", "evaluate_transfer", sets=CYCLEGAN, check=False)
    assert proc.returncode == 2 and "ganops stage evaluator --domain source" in proc.stderr
    run_ganops(project, "stage", "evaluator", "--domain", "source", sets=CYCLEGAN)
    run_ganops(project, "stage", "evaluate_transfer", sets=CYCLEGAN)
    report = _report(project, "cyclegan")
    m = report["metrics"]
    for key in ("cycle_error_source", "cycle_error_target", "label_preservation_target_to_source",
                "label_preservation_source_to_target", "transfer_accuracy"):
        assert np.isfinite(m[key]) and m[key] >= 0, key
    assert (project / "data/evaluation/digits-to-mnist/cyclegan/reverse.png").exists()
    meta = json.loads((project / "data/transfer/digits-to-mnist/cyclegan/meta.json").read_text())
    assert set(meta["upstream"]) == {"dataset@source", "dataset@target"}   # no f: no evaluator needed


def test_a_judge_that_misreads_its_own_domain_cannot_crown_a_translator(project, tmp_path):
    import sqlite3

    weak = [*CYCLEGAN, "transfer.target_evaluator.epochs=1"]      # reads ~27% of held-out MNIST
    root = shutil.copytree(project, tmp_path / "weak", symlinks=True)   # the module's judges stay as they are
    # CycleGAN's evaluation also judges the reverse direction: the source's judge (the DTN chain has none)
    run_ganops(root, "stage", "evaluator", "--domain", "source", sets=weak)
    run_ganops(root, "stage", "evaluator", "--domain", "target", sets=weak)
    run_ganops(root, "stage", "transfer", sets=weak)
    run_ganops(root, "stage", "evaluate_transfer", sets=weak)
    report = _report(root, "cyclegan")
    assert report["metrics"]["target_holdout_accuracy"] < 0.8 and "transfer.target_evaluator" in report["warning"]
    con = sqlite3.connect(root / "mlflow.db")
    newest = con.execute("select max(version) from model_versions where name = 'ganops-digits-to-mnist-cyclegan'")
    version = newest.fetchone()[0]
    tags = dict(con.execute("select key, value from model_version_tags where name = "
                            "'ganops-digits-to-mnist-cyclegan' and version = ?", (version,)))
    assert tags["ganops.decision"] == "not promoted" and "the judge reads only" in tags["ganops.decision_reason"]
    aliases = con.execute("select version from registered_model_aliases where name = "
                          "'ganops-digits-to-mnist-cyclegan'").fetchall()
    assert (version,) not in aliases


def _folder(root: Path) -> Path:
    """A user's folder: nested, mixed formats and sizes."""
    inp = root / "mine"
    (inp / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(inp / "a.png")
    Image.fromarray(rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(inp / "sub" / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(inp / "sub" / "c.bmp")
    return inp


def test_translate_writes_one_image_per_input_under_the_same_name(project, tmp_path):
    inp, out = _folder(tmp_path), tmp_path / "out"
    proc = run_ganops(project, "translate", "--in", str(inp), "--out", str(out), sets=DTN)
    assert "3 images written" in proc.stdout
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "sub/b.jpg", "sub/c.bmp"]
    for name, fmt in (("a.png", "PNG"), ("sub/b.jpg", "JPEG"), ("sub/c.bmp", "BMP")):
        with Image.open(out / name) as im:
            assert im.format == fmt and im.size == (16, 16) and im.mode == "L"   # the target's frame
    before = (out / "a.png").read_bytes()
    again = run_ganops(project, "translate", "--in", str(inp), "--out", str(out), sets=DTN, check=False)
    assert again.returncode == 2 and "3 translations exist already" in again.stderr and "--force" in again.stderr
    run_ganops(project, "translate", "--in", str(inp), "--out", str(out), "--force", sets=DTN)
    assert (out / "a.png").read_bytes() == before              # same model, same input, same bytes
    champion = run_ganops(project, "translate", "--in", str(inp), "--out", str(tmp_path / "c"), "--model",
                          "champion", sets=DTN)
    assert "ganops-digits-to-mnist-dtn v1" in champion.stdout
    assert (tmp_path / "c" / "a.png").read_bytes() == before   # the champion is this translator


def test_translate_names_corrupt_files_and_writes_nothing_unless_told(project, tmp_path):
    inp, out = _folder(tmp_path), tmp_path / "out"
    (inp / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    proc = run_ganops(project, "translate", "--in", str(inp), "--out", str(out), sets=DTN, check=False)
    assert proc.returncode == 2 and "sub/broken.png" in proc.stderr and "Nothing was written" in proc.stderr
    assert not out.exists()
    ok = run_ganops(project, "translate", "--in", str(inp), "--out", str(out), "--skip-corrupt", sets=DTN)
    assert "3 images written" in ok.stdout and "sub/broken.png" in ok.stdout
    inside = run_ganops(project, "translate", "--in", str(inp), "--out", str(inp / "t"), sets=DTN, check=False)
    assert inside.returncode == 2 and "inside --in" in inside.stderr
    around = run_ganops(project, "translate", "--in", str(inp / "sub"), "--out", str(inp), sets=DTN, check=False)
    assert around.returncode == 2 and "is inside --out" in around.stderr
    # what the model cannot do is said first, before the existing outputs (--force would not help)
    reverse = run_ganops(project, "translate", "--in", str(inp), "--out", str(out), "--reverse",
                         "--skip-corrupt", sets=DTN, check=False)
    assert reverse.returncode == 2 and "--reverse: a dtn model translates one way only" in reverse.stderr
    assert "transfer.family=cyclegan" in reverse.stderr and "--force" not in reverse.stderr


def test_a_killed_transfer_resumes_to_the_bytes_of_an_uninterrupted_run(project, tmp_path):
    sets = [*DTN, "transfer.steps=120", "transfer.checkpoint_every=10"]
    # each run in a copy of the module's project: the same inputs (both domains, f), the 8-step DTN beside
    fresh, killed = (shutil.copytree(project, tmp_path / name, symlinks=True) for name in ("fresh", "killed"))
    proc = subprocess.Popen(ganops_args("stage", "transfer", sets=sets), cwd=killed, env=CLI_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list((killed / "data/.checkpoints/transfer").glob("digits-to-mnist-dtn-*/train.pt")):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    model = killed / "data/transfer/digits-to-mnist/dtn"
    assert json.loads((model / "meta.json").read_text())["metrics"]["steps"] == 8   # the previous one, intact
    done = run_ganops(killed, "stage", "transfer", sets=sets, quiet=False)
    assert "resuming from step" in done.stderr
    resumed = json.loads((model / "meta.json").read_text())
    assert resumed["metrics"]["steps"] == 120
    # the same run without a kill gives the same bytes
    straight = run_ganops(fresh, "stage", "transfer", sets=sets, quiet=False)
    assert "resuming" not in straight.stderr
    meta = json.loads((fresh / "data/transfer/digits-to-mnist/dtn/meta.json").read_text())
    assert meta["content_hash"] == resumed["content_hash"]


def _svhn(root: Path, n: int = 40) -> None:
    import scipy.io

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10).astype(np.uint8)
    y[y == 0] = 10                               # SVHN's label for the digit 0
    scipy.io.savemat(root / "test_32x32.mat", {"X": x, "y": y[:, None]})


def _usps(root: Path, n: int = 40) -> None:
    import bz2

    rng = np.random.default_rng(2)
    lines = [f"{i % 10 + 1} " + " ".join(f"{j + 1}:{v:.4f}" for j, v in enumerate(rng.uniform(-1, 1, 256)))
             for i in range(n)]
    (root / "usps.t.bz2").write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))


@pytest.mark.parametrize("pair", ["svhn-mnist", "mnist-usps"])
def test_the_papers_pairs_run_on_files_in_torchvisions_format(pair, tmp_path):
    from conftest import SHARED_MNIST

    source, target = pair.split("-")
    files = tmp_path / "files"
    files.mkdir()
    _svhn(files) if "svhn" in pair else _usps(files)
    side = {"source": source, "target": target}
    sets = [*fast_overrides(), "transfer.family=dtn", *(
        f"transfer.{role}.{k}={v}" for role, name in side.items() for k, v in (
            ("dataset", name), ("root", SHARED_MNIST if name == "mnist" else files), ("download", False),
            ("resolution", 16), ("channels", 1), ("limit", 200 if name == "mnist" else "null")))]
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    run_ganops(tmp_path, "run", "--transfer", sets=sets)
    m = json.loads((tmp_path / f"data/evaluation/{source}-to-{target}/dtn/report.json").read_text())["metrics"]
    assert m["n_source_holdout"] == (4 if source == "svhn" else 20)
    assert np.isfinite(m["transfer_accuracy"]) and np.isfinite(m["fid_target"])
    meta = json.loads((tmp_path / f"data/domains/source/dataset/{source}/meta.json").read_text())
    assert meta["metrics"]["n_classes"] == 10 and meta["metrics"]["channels"] == 1
