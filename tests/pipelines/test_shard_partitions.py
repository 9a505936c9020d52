"""Dagster partitions by shard: the `dataset_shards` sensor registers one partition per shard of the data, each
partition decodes its shard alone (in its own run, on any process that shares the project folder), a range of
them runs as one backfill run, and the `dataset` asset assembles the artifact from them without decoding again:
the same bytes as the stage run in one go. Real PNG files, a real Dagster instance."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml
from conftest import REPO
from PIL import Image

from ganops.core import params as P
from ganops.data import store
from ganops.stages import run_stage

SETS = ["data.dataset=image_folder", "data.root=imgs", "data.resolution=16", "data.shard_rows=20",
        "data.holdout=0.1", "tracking.enabled=false", "device=cpu", "distributed.data_workers=0",
        "embed.encoder=simclr", "embed.epochs=2", "embed.min_steps=0", "embed.batch_size=32", "embed.dim=16"]


def _project(root: Path, n: int = 90, sets: list[str] = SETS) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / "imgs" / "abc"[i % 3] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8), "L").save(path)
    raw = P.apply_overrides(P.read_yaml(REPO / "params.yaml"), sets)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def _resources(root: Path) -> dict:
    from pipelines.definitions import defs
    from pipelines.resources import GanopsParams

    return {**defs.resources, "params": GanopsParams(project_root=str(root))}


def _tick(instance: dg.DagsterInstance, root: Path):
    from pipelines.sensors import dataset_shards

    with dg.build_sensor_context(instance=instance, resources=_resources(root)) as ctx:
        result = dataset_shards(ctx)
    for request in getattr(result, "dynamic_partitions_requests", None) or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def _scratch_shards(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "data/.checkpoints/dataset").glob("*/images/*.npy"))


def test_each_shard_is_a_partition_and_the_dataset_assembles_them_without_decoding_again(tmp_path):
    from pipelines.assets import dataset, dataset_shards, embeddings, embeddings_shards

    root = _project(tmp_path / "project")      # 90 images: 81 train (5 shards of 20), 9 held out (1 shard)
    instance = dg.DagsterInstance.ephemeral()
    _tick(instance, root)
    assert instance.get_dynamic_partitions("dataset_shards") == ["00000", "00001", "00002", "00003", "00004"]
    assert isinstance(_tick(instance, root), dg.SkipReason)          # nothing new: nothing requested

    one = dg.materialize([dataset_shards], partition_key="00003", instance=instance, resources=_resources(root))
    assert one.success
    assert _scratch_shards(root) == ["00003.npy"]                    # that shard alone
    mat = one.asset_materializations_for_node("dataset_shards")[0]
    assert mat.partition == "00003" and mat.metadata["rows"].value == 20

    # a backfill range runs as one run (what the backfill policy asks for a few partitions at a time)
    rest = dg.materialize([dataset_shards], instance=instance, resources=_resources(root),
                          tags={"dagster/asset_partition_range_start": "00000",
                                "dagster/asset_partition_range_end": "00002"})
    assert rest.success
    assert _scratch_shards(root) == ["00000.npy", "00001.npy", "00002.npy", "00003.npy"]
    written = {p.name: p.stat().st_mtime_ns for p in (root / "data/.checkpoints/dataset").glob("*/images/*.npy")}

    whole = dg.materialize([dataset_shards, dataset], selection=[dataset], instance=instance,
                           resources=_resources(root))
    assert whole.success
    out = root / "data/dataset/image_folder"
    for name, stamp in written.items():        # moved into the artifact, not decoded again; 00004 decoded now
        assert (out / "images" / name).stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"0000{i}.npy" for i in range(5)]
    assert not list((root / "data/.checkpoints/dataset").glob("*/images"))     # the scratch went with success

    clean = run_stage("dataset", P.load(root / "params.yaml", [], required=True), _project(tmp_path / "clean")).path
    np.testing.assert_array_equal(np.asarray(store.load_images(out)), np.asarray(store.load_images(clean)))
    np.testing.assert_array_equal(np.asarray(store.load_holdout(out)[0]), np.asarray(store.load_holdout(clean)[0]))
    assert store.load_manifest(out).equals(store.load_manifest(clean))
    same_folder = (clean / "summary.json").read_text().replace(str(tmp_path / "clean"), str(root))
    assert (out / "summary.json").read_text() == same_folder         # the folder's path aside

    # the features likewise: a partition alone, then the rest joined by the embeddings asset; the encoder is
    # trained once, by the first partition run, and the same as the stage's in one go
    feats = dg.materialize([embeddings_shards], partition_key="00002", instance=instance, resources=_resources(root))
    assert feats.success
    pieces = root / "data/.checkpoints/embeddings"
    assert sorted(p.name for p in pieces.glob("*/pieces/*.npy")) == ["00002.npy"]
    kept = next(pieces.glob("*/pieces/00002.npy")).read_bytes()
    joined = dg.materialize([embeddings_shards, embeddings], selection=[embeddings], instance=instance,
                            resources=_resources(root))
    assert joined.success
    one_go = run_stage("embeddings", P.load(root / "params.yaml", [], required=True), tmp_path / "clean").path
    emb = root / "data/embeddings/image_folder/simclr"
    # the features are sharded as the images are: each partition's piece is a shard of the artifact, moved there
    images = root / "data/dataset/image_folder/images"
    assert sorted(p.name for p in (emb / "features").iterdir()) == sorted(p.name for p in images.iterdir())
    assert (emb / "features/00002.npy").read_bytes() == kept
    features = np.asarray(store.load_features(emb))
    assert features.tobytes() == np.asarray(store.load_features(one_go)).tobytes()

    # another shard size: the sensor registers the new shards and drops the ones the data no longer makes
    (root / "params.yaml").write_text((root / "params.yaml").read_text().replace("shard_rows: 20", "shard_rows: 40"))
    _tick(instance, root)
    assert instance.get_dynamic_partitions("dataset_shards") == ["00000", "00001", "00002"]


def test_a_bad_partition_and_an_unreadable_file_fail_with_their_names(tmp_path):
    from pipelines.assets import dataset_shards

    root = _project(tmp_path / "project", n=45)
    (root / "imgs/a/00003.png").write_bytes(b"not a png")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("dataset_shards", ["00000", "00007"])
    bad = dg.materialize([dataset_shards], partition_key="00007", instance=instance, resources=_resources(root),
                         raise_on_error=False)
    failure = bad.failure_data_for_node("dataset_shards").error.message
    assert "shard 7 is not one of image_folder's 3 shards (00000-00002) at data.shard_rows=20" in failure

    corrupt = dg.materialize([dataset_shards], partition_key="00000", instance=instance, resources=_resources(root),
                             raise_on_error=False)
    failure = corrupt.failure_data_for_node("dataset_shards").error.message
    assert "00003.png" in failure and "data.skip_corrupt=true" in failure
    assert _scratch_shards(root) == []                                # no shard committed with a hole in it


WRITER = """
import logging
import sys
logging.basicConfig(level=logging.INFO)
from pathlib import Path
from ganops.core import params as P
from ganops.stages.dataset import write_shards
root = Path(sys.argv[1])
print(write_shards(P.load(root / "params.yaml", [], required=True), root, [int(a) for a in sys.argv[2:]]))
"""


def test_processes_writing_shards_at_once_share_the_scratch(tmp_path):
    """Two processes take overlapping shards at the same time (two partition runs on two machines): each shard
    is committed whole, and the assembled artifact is the one a single run builds."""
    root = _project(tmp_path / "project", n=150)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(root), *shards], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for shards in (["0", "1", "2", "3", "4"], ["4", "3", "2", "5", "6"])]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    assert _scratch_shards(root) == [f"0000{i}.npy" for i in range(7)]
    assert not [p for p in (root / "data").rglob("*") if ".tmp-" in p.name]

    p = P.load(root / "params.yaml", [], required=True)
    out = run_stage("dataset", p, root).path
    clean_root = _project(tmp_path / "clean", n=150)
    clean = run_stage("dataset", p, clean_root).path
    np.testing.assert_array_equal(np.asarray(store.load_images(out)), np.asarray(store.load_images(clean)))
    assert store.load_manifest(out).equals(store.load_manifest(clean))

    # two processes extracting features at once: one trains the encoder, the other waits and takes it
    procs = [subprocess.Popen([sys.executable, "-c", WRITER.replace("dataset import write_shards",
                                                                    "embeddings import write_pieces as write_shards"),
                               str(root), *pieces], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for pieces in (["0", "1", "2", "3"], ["3", "2", "4", "5", "6"])]
    logs = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        logs.append(err)
    # one trained the encoder; the other waited, then took the finished checkpoint without training
    assert sorted("resuming from epoch 2 of 2" in e for e in logs) == [False, True], logs
    features = np.asarray(store.load_features(run_stage("embeddings", p, root).path))
    assert features.tobytes() == np.asarray(store.load_features(run_stage("embeddings", p, clean_root).path)).tobytes()


@pytest.mark.parametrize("job", ["data_prep", "retrain"])
def test_the_whole_data_jobs_leave_the_partitioned_shards_to_backfills(job):
    from pipelines.definitions import defs

    keys = defs.resolve_job_def(job).asset_layer.selected_asset_keys
    assert dg.AssetKey("dataset") in keys and dg.AssetKey("dataset_shards") not in keys
