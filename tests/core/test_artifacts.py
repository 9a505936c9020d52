import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ganops.core import artifacts as A


def test_atomic_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "art"
    with A.atomic_dir(final) as tmp:
        (tmp / "x.txt").write_text("v1")
    assert (final / "x.txt").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with A.atomic_dir(final) as tmp:
            (tmp / "x.txt").write_text("half")
            raise RuntimeError("killed")
    assert (final / "x.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_killed_writer_leaves_previous_artifact_and_is_cleaned(tmp_path):
    final = tmp_path / "art"
    with A.atomic_dir(final) as tmp:
        (tmp / "x.txt").write_text("v1")
    # A real process killed with SIGKILL half way through writing the next version.
    code = textwrap.dedent(f"""
        import os, signal
        from ganops.core.artifacts import atomic_dir
        with atomic_dir({str(final)!r}) as tmp:
            (tmp / "x.txt").write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -9
    assert (final / "x.txt").read_text() == "v1"
    assert any(p.name.startswith(".art.tmp-") for p in tmp_path.iterdir())
    with A.atomic_dir(final) as tmp:  # the next writer drops the dead temporary
        (tmp / "x.txt").write_text("v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    assert (final / "x.txt").read_text() == "v2"


def test_displaced_previous_artifact_is_restored(tmp_path):
    final = tmp_path / "art"
    old = tmp_path / ".art.old-999999999"  # a writer killed between its two renames
    old.mkdir()
    (old / "x.txt").write_text("v1")
    A.recover(final)
    assert (final / "x.txt").read_text() == "v1" and not old.exists()


def test_meta_records_hash_params_and_versions(tmp_path):
    d = tmp_path / "a"
    d.mkdir()
    A.atomic_save_npy(d / "features.npy", np.eye(3, dtype=np.float32))
    meta = A.write_meta(d, stage="s", params={"seed": 0}, seed=0, upstream={"u": "h"}, metrics={"m": 1.0},
                        code_version="abc")
    on_disk = json.loads((d / "meta.json").read_text())
    # only what the inputs determine: nothing of the process, the clock or the host
    assert not {"argv", "created", "timings_s", "host"} & set(on_disk)
    assert on_disk["content_hash"] == meta["content_hash"] == A.content_hash(d)
    assert on_disk["upstream"] == {"u": "h"} and "torch" in on_disk["versions"]
    A.atomic_save_npy(d / "features.npy", np.eye(3, dtype=np.float32) * 2)
    assert A.content_hash(d) != meta["content_hash"]


def test_read_meta_names_the_stage_to_run(tmp_path):
    with pytest.raises(A.ArtifactError, match="ganops stage dataset"):
        A.read_meta(tmp_path / "missing", produced_by="dataset")


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_an_unreadable_torch_file_names_itself_and_the_stage_that_rebuilds_it(tmp_path, damage):
    import torch

    from ganops.core.errors import UserError
    from ganops.embed import load_encoder
    from ganops.evaluate.evaluator import Evaluator
    from ganops.models.weights import load_weights

    whole = tmp_path / "whole.pt"
    torch.save({"weights": torch.zeros(1000)}, whole)
    data = {"empty": b"", "truncated": whole.read_bytes()[:500], "garbage": bytes(range(256)) * 8}[damage]
    for name, load, stage in (("model.pt", load_weights, "ganops stage train"),
                              ("evaluator.pt", Evaluator.load, "ganops stage evaluator"),
                              ("encoder.pt", load_encoder, "ganops stage embeddings")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(UserError) as caught:
            load(path)
        said = str(caught.value)
        assert said.startswith(f"{path} cannot be read (truncated or corrupt: ") and f"`{stage}`" in said
        assert "\n" not in said
