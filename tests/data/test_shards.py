"""Sharded images: the one reader indexes shards as one array, the writer leaves whole shards only (a kill
mid-shard resumes at that shard), and a dataset split over shards trains exactly what one file does."""

import io
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from ganops.core.artifacts import ArtifactError
from ganops.core.params import DataParams
from ganops.data import shards, store, writer
from ganops.data.sources import load_source


def _shard_path(directory, stem, count, i):
    return directory / f"{stem}.npy" if count == 1 else directory / stem / shards.shard_name(i)


def _written(tmp_path, x, rows, stem="images"):
    """x in shards of ``rows``, laid out as the dataset artifact lays them out."""
    count = shards.shard_count(len(x), rows)
    for i in range(count):
        f = shards.ShardFile(_shard_path(tmp_path, stem, count, i), x.shape[1:], rows)
        f.append(x[i * rows:(i + 1) * rows])
        f.commit()
    return shards.ShardedArray.open(tmp_path, stem, "dataset")


def test_sharded_images_index_as_one_array(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (1000, 1, 6, 6), dtype=np.uint8)
    s = _written(tmp_path, x, 300)
    assert len(s.shards) == 4 and s.shape == x.shape and s.dtype == np.uint8 and s.nbytes == x.nbytes
    rng = np.random.default_rng(1)
    keys = [0, 299, 300, -1, slice(None), slice(250, 350), slice(10, 20), slice(0, 1000, 7), slice(990, 5000),
            slice(1000, 1000), slice(-50, None), rng.integers(0, 1000, 64), rng.integers(-1000, 1000, (3, 4)),
            np.arange(1000) % 3 == 0, [5, 5, 999, 0], (slice(5, 400), 0, slice(2, 4)), (7, 0)]
    for key in keys:
        np.testing.assert_array_equal(s[key], x[key], err_msg=str(key))
    np.testing.assert_array_equal(np.asarray(s), x)
    np.testing.assert_array_equal(torch.from_numpy(s[np.array([3, 700])]).numpy(), x[[3, 700]])
    assert isinstance(s[250:290], np.memmap)     # rows in one shard: a view of the map, not a copy
    with pytest.raises(IndexError, match="1000 is out of bounds for 1000 images"):
        s[[1, 1000]]


def _rss_file_kib() -> int:
    status = open("/proc/self/status").read()
    return int(status.split("RssFile:")[1].split()[0])


@pytest.mark.skipif(not os.path.exists("/proc/self/status") or shards._DONTNEED is None,
                    reason="needs Linux's /proc and madvise(MADV_DONTNEED)")
def test_a_pass_over_the_shards_does_not_keep_them_resident(tmp_path):
    """The stages read datasets larger than memory: what a pass maps is dropped every release_bytes, and the
    rows read after a drop are still the file's."""
    x = np.random.default_rng(0).integers(0, 256, (4096, 2, 64, 64), dtype=np.uint8)     # 32 MiB in 4 shards
    _written(tmp_path, x, 1024)

    def grown_by(release_bytes: int) -> float:
        s = shards.ShardedArray.open(tmp_path, "images", "dataset")
        s.release_bytes = release_bytes
        before = _rss_file_kib()
        for a in range(0, len(x), 128):                  # 1 MiB a read, as a stage's batches
            np.testing.assert_array_equal(s[a:a + 128], x[a:a + 128])
        grown = (_rss_file_kib() - before) / 1024
        s.release()
        return grown

    kept, released = grown_by(1 << 40), grown_by(2 << 20)
    assert kept > 24, f"without releases a pass keeps the 32 MiB it read mapped ({kept:.1f} MiB)"
    assert released < 6, f"released every 2 MiB, a pass kept {released:.1f} MiB mapped"
    s = shards.ShardedArray.open(tmp_path, "images", "dataset")
    s.release_bytes = 1                                   # a release after every read: random rows still right
    index = np.random.default_rng(1).integers(0, len(x), 300)
    np.testing.assert_array_equal(np.stack([s[int(i)] for i in index]), x[index])
    np.testing.assert_array_equal(s[index], x[index])


def test_one_shard_is_the_npy_file_it_always_was(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 3, 4, 4), dtype=np.uint8)
    _written(tmp_path, x, 100)
    buf = io.BytesIO()
    np.save(buf, x)
    assert (tmp_path / "images.npy").read_bytes() == buf.getvalue() and not (tmp_path / "images").exists()


def test_a_gap_in_the_shards_is_named(tmp_path):
    x = np.zeros((10, 1, 2, 2), np.uint8)
    _written(tmp_path, x, 3)
    (tmp_path / "images" / "00001.npy").unlink()
    with pytest.raises(ArtifactError, match=r"images/00001.npy is missing"):
        shards.ShardedArray.open(tmp_path, "images", "dataset")


def test_a_writer_killed_mid_shard_leaves_whole_shards_and_resumes_there(tmp_path):
    """A real SIGKILL while shard 1 is half written; the next writer keeps shard 0, rewrites 1 and 2."""
    code = textwrap.dedent(f"""
        import time, numpy as np
        from pathlib import Path
        from ganops.data.shards import ShardFile
        x = np.arange(900, dtype=np.uint8).reshape(900, 1, 1, 1)
        d = Path({str(tmp_path)!r}) / "images"
        f = ShardFile(d / "00000.npy", (1, 1, 1), 300)
        f.append(x[:300])
        f.commit()
        f = ShardFile(d / "00001.npy", (1, 1, 1), 300)
        f.append(x[300:450])
        print("half", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline().strip() == "half"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names[0] == "." + "00001.npy.tmp-" + str(proc.pid) and names[1:] == ["00000.npy"]
    x = np.arange(900, dtype=np.uint8).reshape(900, 1, 1, 1)
    missing = [i for i in range(3) if not shards.is_complete(_shard_path(tmp_path, "images", 3, i), (300, 1, 1, 1))]
    assert missing == [1, 2]
    before = (tmp_path / "images" / "00000.npy").stat().st_mtime_ns
    for i in missing:
        f = shards.ShardFile(_shard_path(tmp_path, "images", 3, i), (1, 1, 1), 300)
        f.append(x[i * 300:(i + 1) * 300])
        f.commit()
    assert (tmp_path / "images" / "00000.npy").stat().st_mtime_ns == before     # not rewritten
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["00000.npy", "00001.npy", "00002.npy"]
    np.testing.assert_array_equal(np.asarray(shards.ShardedArray.open(tmp_path, "images", "dataset")), x)


def test_a_full_disk_while_writing_a_shard_names_it(tmp_path):
    """RLIMIT_FSIZE (ulimit -f) makes the write itself fail, as a full disk does: an error, not a crash."""
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from pathlib import Path
        from ganops.core.artifacts import StorageError
        from ganops.data.shards import ShardFile
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        f = ShardFile(Path({str(tmp_path)!r}) / "images" / "00000.npy", (1, 16, 16), 100)   # 25.6 kB a shard
        try:
            f.append(np.zeros((100, 1, 16, 16), np.uint8))
            f.commit()
        except StorageError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "images/00000.npy" in out and "size limit" in out
    assert not list((tmp_path / "images").iterdir())      # no partial shard, no temporary left


def _dataset(tmp_path, shard_rows):
    p = DataParams(dataset="digits", resolution=16, download=False, shard_rows=shard_rows)
    out = tmp_path / f"rows{shard_rows}"
    out.mkdir()
    writer.write_dataset(out, store.prepare(load_source(p, tmp_path), p, 0), p)
    return out


def test_a_sharded_dataset_reads_and_trains_as_one_file(tmp_path, monkeypatch):
    from ganops.core import params as P
    from ganops.models import TrainData
    from ganops.train import train

    one, many = _dataset(tmp_path, 100_000), _dataset(tmp_path, 500)
    assert sorted(p.name for p in (many / "images").iterdir()) == [f"0000{i}.npy" for i in range(4)]
    assert sorted(p.name for p in (many / "manifest").iterdir()) == [f"0000{i}.parquet" for i in range(4)]
    assert (one / "images.npy").is_file() and not (one / "images").exists()
    np.testing.assert_array_equal(np.asarray(store.load_images(many)), np.asarray(store.load_images(one)))
    assert store.load_manifest(many).equals(store.load_manifest(one))
    np.testing.assert_array_equal(store.load_labels(many), store.load_labels(one))
    held_one, held_many = store.load_holdout(one), store.load_holdout(many)
    np.testing.assert_array_equal(np.asarray(held_many[0]), np.asarray(held_one[0]))
    np.testing.assert_array_equal(held_many[1], held_one[1])
    assert store.load_summary(many)["metrics"]["n_shards"] == 4

    # the batches of a few DCGAN steps come across the shards: the same weights, also when the images are
    # too large to copy into memory and each batch is read from the maps
    from ganops.models import batches

    torch.set_num_threads(1)
    p = P.load(None, ["device=cpu", "train.family=dcgan", "train.steps=4", "train.batch_size=16",
                      "train.g_filters=8", "train.d_filters=8", "train.checkpoint_every=100000",
                      "train.sample_every=100000", "train.ema=false"])

    def trained(directory):
        data = TrainData(store.load_images(directory), labels=store.load_labels(directory))
        return train(p, data=data, section="train", device=torch.device("cpu")).weights()["networks"]["G"]

    reference = trained(one)
    for in_memory in (True, False):
        monkeypatch.setattr(batches, "_IN_MEMORY_BYTES", 1 << 40 if in_memory else 0)
        for name, tensor in trained(many).items():
            assert torch.equal(tensor, reference[name]), (in_memory, name)


def test_an_icgan_trains_on_the_features_shards_as_on_one_array(tmp_path):
    """The embeddings of a sharded dataset are shards too (one per dataset shard): IC-GAN's training reads
    them as one array."""
    from ganops.core import params as P
    from ganops.models import TrainData
    from ganops.neighbors.search import knn
    from ganops.train import train

    many = _dataset(tmp_path, 500)
    n = len(store.load_images(many))
    h = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    for i in range(4):
        np.save(tmp_path / f"{i}.npy", h[i * 500:(i + 1) * 500])
    sharded = shards.ShardedArray.of_files([tmp_path / f"{i}.npy" for i in range(4)], "embeddings")
    p = P.load(None, ["device=cpu", "train.family=icgan", "train.steps=4", "train.batch_size=16",
                      "train.g_filters=8", "train.d_filters=8", "train.checkpoint_every=100000",
                      "train.sample_every=100000", "train.ema=false", "neighbors.k=5"])
    neighbors = knn(sharded, 5, p.neighbors).indices
    torch.set_num_threads(1)

    def trained(features):
        data = TrainData(store.load_images(many), store.load_labels(many), features, neighbors)
        return train(p, data=data, section="train", device=torch.device("cpu")).weights()["networks"]["G"]

    reference = trained(h)
    for name, tensor in trained(sharded).items():
        assert torch.equal(tensor, reference[name]), name
