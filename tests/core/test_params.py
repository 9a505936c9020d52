from pathlib import Path

import pytest
from conftest import REPO

from ganops.core import params as P


def test_defaults_match_the_documented_keys():
    p = P.load(None)
    assert p.data.dataset == "digits"
    assert p.embed.encoder == "simclr"
    assert p.data.resolution == 16 and p.neighbors.k == 10 and p.seed == 0   # the bundled digits are 8×8
    assert p.transfer.source.resolution == p.transfer.target.resolution == 32   # MNIST's 28×28 kept
    assert {"data.dataset", "data.root", "data.resolution", "embed.encoder", "neighbors.k", "seed"} <= set(p.flat())


def test_repository_params_yaml_is_valid():
    p = P.load(Path(__file__).resolve().parents[2] / "params.yaml")
    assert p.data.dataset == "digits"


def test_override_sets_typed_values():
    p = P.load(None, ["neighbors.k=20", "data.dataset=mnist", "data.root=../shared/data/mnist", "data.download=false"])
    assert p.neighbors.k == 20 and isinstance(p.neighbors.k, int)
    assert p.data.dataset == "mnist" and p.data.root == "../shared/data/mnist" and p.data.download is False


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("data:\n  datset: mnist\n")
    with pytest.raises(P.ParamsError) as e:
        P.load(f)
    msg = str(e.value)
    assert "data.datset" in msg and "data.dataset" in msg and "allowed keys" in msg


def test_unknown_dataset_names_the_allowed_values():
    with pytest.raises(P.ParamsError) as e:
        P.load(None, ["data.dataset=imagenet"])
    msg = str(e.value)
    assert "data.dataset" in msg and "'imagenet'" in msg and "digits" in msg and "cifar10" in msg


@pytest.mark.parametrize("override,key", [("neighbors.k=0", "neighbors.k"), ("embed.lr=-0.1", "embed.lr"),
                                          ("data.grid_size=0", "data.grid_size"), ("seed=-1", "seed")])
def test_out_of_range_values_name_the_key_and_bound(override, key):
    with pytest.raises(P.ParamsError) as e:
        P.load(None, [override])
    assert f"'{key}'" in str(e.value) and ("≥" in str(e.value) or ">" in str(e.value))


@pytest.mark.parametrize("side", [8, 20, 2048])
def test_a_side_the_generators_cannot_build_is_refused_with_the_allowed_ones(side):
    # refused before the dataset, embeddings and neighborhoods are built at a side training then rejects
    with pytest.raises(P.ParamsError) as e:
        P.load(None, [f"data.resolution={side}"])
    assert f"'data.resolution': value {side} is not allowed" in str(e.value)
    assert "16, 32, 64, 128, 256, 512 or 1024" in str(e.value)
    assert P.load(None, ["data.resolution=64"]).data.resolution == 64


def test_training_keys_that_cannot_work_are_refused_before_any_work():
    with pytest.raises(P.ParamsError, match=r"train.class_swap=0.5 needs train.class_conditional=true"):
        P.load(None, ["train.class_swap=0.5"])
    assert P.load(None, ["train.class_swap=0.5", "train.class_conditional=true"]).train.class_swap == 0.5
    with pytest.raises(P.ParamsError, match=r"'train.mode_seeking'.*finite"):
        P.load(None, ["train.mode_seeking=inf"])


def test_wrong_type_is_reported():
    with pytest.raises(P.ParamsError) as e:
        P.load(None, ["neighbors.k=many"])
    assert "neighbors.k" in str(e.value) and "'many'" in str(e.value)


def test_malformed_override_and_section_overwrite():
    with pytest.raises(P.ParamsError, match="key=value"):
        P.load(None, ["neighbors.k"])
    with pytest.raises(P.ParamsError, match="not a section"):
        P.apply_overrides({"seed": 0}, ["seed.x=1"])


def test_bad_yaml_file_is_named(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("data: [unclosed\n")
    with pytest.raises(P.ParamsError, match="params.yaml"):
        P.load(f)


@pytest.mark.parametrize("override", ["neighbors.k=true", "train.lr_g=false", "data.limit=true"])
def test_a_boolean_is_not_a_number(override):
    with pytest.raises(P.ParamsError) as e:
        P.load(None, [override])
    assert f"'{override.split('=')[0]}'" in str(e.value) and "boolean" in str(e.value)


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  steps: 600\n  loss: hinge\n  steps: 50\n")
    with pytest.raises(P.ParamsError) as e:
        P.load(f)
    assert str(f) in str(e.value) and "'steps'" in str(e.value) and "lines 2 and 4" in str(e.value)


def test_a_missing_parameters_file_is_an_error_where_one_is_required(tmp_path):
    with pytest.raises(P.ParamsError, match="paramz.yaml"):
        P.load(tmp_path / "paramz.yaml", required=True)


def test_the_cli_refuses_a_mistyped_params_file(tmp_path):
    from ganops.commands.cli import main

    (tmp_path / "params.yaml").write_text("train:\n  steps: 600\n")
    assert main(["stage", "dataset", "--root", str(tmp_path), "--params", "paramz.yaml", "-q"]) == 2
    assert not (tmp_path / "data").exists()   # nothing ran on the schema's defaults


def test_domains_of_two_sizes_are_refused_before_anything_is_built():
    with pytest.raises(P.ParamsError) as e:
        P.load(None, ["transfer.target.resolution=28"])
    msg = str(e.value)
    assert "transfer.source.resolution=32" in msg and "transfer.target.resolution=28" in msg and "{" not in msg
    assert P.load(None, ["transfer.target.resolution=28", "transfer.source.resolution=28"]).transfer.target.resolution \
        == 28


def test_the_old_shared_transfer_evaluator_key_says_where_its_keys_went():
    # one evaluator for both domains made the judge read translations with f's cross-domain views
    with pytest.raises(P.ParamsError) as e:
        P.load(None, ["transfer.evaluator.epochs=1"])
    assert all(f"transfer.{k} (" in str(e.value) for k in ("source_classifier", "target_evaluator", "source_evaluator"))
    p = P.load(None)
    assert p.domain("source").evaluator == p.transfer.source_evaluator != p.domain("target").evaluator


def test_a_file_from_before_f_had_its_own_keys_is_told_where_they_went(tmp_path, caplog):
    # DTN's f used to be the source's evaluator: such a file's f settings would now go unread, silently
    old = tmp_path / "params.yaml"
    old.write_text("transfer:\n  source_evaluator:\n    epochs: 50\n    augment: cross_domain\n")
    with caplog.at_level("WARNING", logger="ganops.params"):
        p = P.load(old)
    assert "transfer.source_evaluator no longer sets DTN's f" in caplog.text
    assert "transfer.source_classifier" in caplog.text and p.transfer.source_classifier.epochs == 30
    caplog.clear()
    with caplog.at_level("WARNING", logger="ganops.params"):
        P.load(REPO / "params.yaml")      # a current file names both: no word
        P.load(old, ["transfer.family=cyclegan"])   # a CycleGAN's judge is what that key sets
    assert "no longer" not in caplog.text


def test_a_domain_speaks_of_the_keys_the_user_sets():
    p = P.load(None, ["transfer.target.limit=5"])
    q = p.domain("target")
    assert q.data.limit == 5 and q.overrides == ("transfer.target.limit=5",)
    text = "files missing under data.root='data/raw'; set data.download=true; evaluator.pt; evaluator.epochs=1"
    assert q.in_user_terms(text) == ("files missing under transfer.target.root='data/raw'; set "
                                     "transfer.target.download=true; evaluator.pt; transfer.target_evaluator.epochs=1")
    assert p.in_user_terms(text) == text           # the generator pipeline's own data keys stay as they are


@pytest.mark.parametrize("section,default", [("train", 64), ("transfer", 16)])
def test_a_renamed_key_keeps_its_old_spelling_working_and_names_the_new_one(section, default, tmp_path, caplog):
    """train.n_samples and transfer.n_samples are grid_size (as data.grid_size): evaluate.n_samples alone
    counts scored samples."""
    assert getattr(P.load(None), section).grid_size == default
    with caplog.at_level("WARNING", logger="ganops.params"):
        p = P.load(None, [f"{section}.n_samples=32"])
    assert getattr(p, section).grid_size == 32 and f"{section}.n_samples is now {section}.grid_size" in caplog.text
    repo = Path(__file__).resolve().parents[2] / "params.yaml"      # which spells it grid_size
    assert getattr(P.load(repo, [f"{section}.n_samples=32"]), section).grid_size == 32
    with pytest.raises(P.ParamsError, match=rf"{section}.n_samples and {section}.grid_size are both set"):
        P.load(repo, [f"{section}.grid_size=32", f"{section}.n_samples=8"])
    old = tmp_path / "params.yaml"
    old.write_text(f"{section}:\n  n_samples: 8\n")
    assert getattr(P.load(old), section).grid_size == 8                  # an old params.yaml too
    with pytest.raises(P.ParamsError, match=rf"{section}.n_samples and {section}.grid_size are both set"):
        P.load(old, [f"{section}.grid_size=4"])
    assert P.load(None, ["evaluate.n_samples=100"]).evaluate.n_samples == 100


def test_a_subsection_set_in_part_keeps_its_own_defaults_for_the_rest():
    # without a params file, `--set transfer.target.limit=5` once made the target the class default (digits)
    p = P.load(None, ["transfer.target.limit=5", "transfer.source_evaluator.lr=0.001"])
    assert p.transfer.target.dataset == "mnist" and p.transfer.target.limit == 5
    assert p.transfer.source_evaluator.epochs == P.TransferParams().source_evaluator.epochs == 30
    assert p.transfer.source_evaluator.lr == 0.001


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_params_file_runs_on_the_defaults_with_a_word(tmp_path, caplog, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with caplog.at_level("WARNING", logger="ganops.params"):
        p = P.load(path, required=True)
    assert p == P.Params()
    assert f"{path} is empty: every parameter takes the schema's default" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ganops.params"):
        P.load(REPO / "params.yaml", required=True)
    assert "is empty" not in caplog.text


def test_a_section_with_a_kind_takes_the_kind_alone_and_keeps_its_other_keys(tmp_path):
    for order in (["train.augment=ada", "train.augment.ada_kimg=20"], ["train.augment.ada_kimg=20", "train.augment=ada"]):
        a = P.load(None, order).train.augment
        assert (a.kind, a.ada_kimg) == ("ada", 20.0), order
    f = tmp_path / "params.yaml"
    f.write_text("train:\n  augment: diffaugment\nevaluator: classifier\n")
    p = P.load(f, ["train.augment.policy=translation"])
    assert (p.train.augment.kind, p.train.augment.policy, p.evaluator.kind) == ("diffaugment", "translation",
                                                                                 "classifier")
    with pytest.raises(P.ParamsError, match="'data' is a value, not a section"):
        P.load(None, ["data=mnist", "data.limit=5"])     # a section without a kind takes no word
