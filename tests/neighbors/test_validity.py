"""One rule for valid features and neighborhoods: the k-NN step, an IC-GAN's training and the Dagster
asset checks read the same broken artifact files the same way, each in its own words."""

import numpy as np
import pytest

from ganops.core.params import TrainParams
from ganops.data.shards import ShardedArray
from ganops.models.base import TrainData
from ganops.models.errors import TrainError
from ganops.models.icgan import ICGAN
from ganops.neighbors import search
from ganops.neighbors.validity import inspect_features, inspect_neighbors
from ganops.tracking import checks

N, D, K = 40, 8, 3


def _unit(rng, n=N):
    x = rng.standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return np.load(path, mmap_mode="r")          # the artifact as every reader opens it


@pytest.fixture
def broken(tmp_path):
    rng = np.random.default_rng(0)
    feats = _unit(rng)
    feats[3, 0] = np.nan
    feats[7] *= 2.0                               # finite, but not unit norm
    idx = (np.arange(N)[:, None] + np.arange(1, K + 1)) % N
    idx[5, 1] = 5                                 # the instance itself
    idx[9, 0] = N + 2                             # out of range
    return (_save(tmp_path / "embeddings" / "features.npy", feats),
            _save(tmp_path / "neighbors" / "indices.npy", idx.astype(np.int64)), tmp_path)


def test_the_findings_name_the_rows_that_break_the_rule(broken):
    feats, idx, _ = broken
    f = inspect_features(feats)
    assert f.non_finite_rows.tolist() == [3] and f.off_norm_rows.tolist() == [7] and not f.valid
    n = inspect_neighbors(idx, N)
    assert n.self_rows.tolist() == [5] and n.out_of_range_rows.tolist() == [9] and not n.valid
    rng = np.random.default_rng(1)
    assert inspect_features(_unit(rng)).valid
    assert inspect_neighbors((np.arange(N)[:, None] + np.arange(1, K + 1)) % N, N).valid


def test_chunked_scans_find_rows_past_the_first_chunk(tmp_path, monkeypatch):
    from ganops.neighbors import validity

    monkeypatch.setattr(validity, "_CHUNK", 16)       # three chunks of a 40-row memory map
    rng = np.random.default_rng(2)
    feats = _unit(rng)
    feats[37, 1] = np.inf
    assert inspect_features(_save(tmp_path / "f.npy", feats)).non_finite_rows.tolist() == [37]
    idx = ((np.arange(N)[:, None] + np.arange(1, K + 1)) % N).astype(np.int64)
    idx[33, 2] = 33
    assert inspect_neighbors(_save(tmp_path / "i.npy", idx), N).self_rows.tolist() == [33]


def test_every_reader_refuses_the_same_broken_files_in_its_own_words(broken):
    feats, idx, root = broken
    with pytest.raises(search.NeighborsError, match=r"1 of 40 rows hold non-finite values.*first rows: 3"):
        search.check_features(feats)
    with pytest.raises(search.NeighborsError, match=r"1 rows list the instance itself.*first rows: 5"):
        search.validate_neighbors(np.where(idx >= N, 0, idx), N)
    with pytest.raises(search.NeighborsError, match=r"1 rows hold indices outside \[0, 40\).*first rows: 9"):
        search.validate_neighbors(idx, N)

    outcome = checks.features_finite_unit_norm(root / "embeddings")
    assert not outcome.passed and outcome.metadata["non_finite_rows"] == 1
    assert outcome.metadata["max_norm_error"] == pytest.approx(1.0, abs=1e-5)
    outcome = checks.neighbors_valid(root / "neighbors")
    assert not outcome.passed
    assert outcome.metadata["self_neighbor_rows"] == 1 and outcome.metadata["out_of_range_rows"] == 1

    images = np.zeros((N, 1, 16, 16), np.uint8)
    with pytest.raises(TrainError, match=r"indices outside 0\.\.39 \(rows 9\).*ganops stage neighbors"):
        ICGAN.check(TrainParams(family="icgan"), TrainData(images, None, np.asarray(feats), idx))
    with pytest.raises(TrainError, match=r"own neighbors \(rows 5\)"):
        ICGAN.check(TrainParams(family="icgan"), TrainData(images, None, np.asarray(feats), np.where(idx >= N, 0, idx)))
    fixed = np.where(idx >= N, 0, idx)
    fixed[5, 1] = 6
    with pytest.raises(TrainError, match="features.npy holds NaN or inf"):
        ICGAN.check(TrainParams(family="icgan"), TrainData(images, None, np.asarray(feats), fixed))
    # features in shards (a sharded dataset's embeddings) are named by their folder
    (root / "features").mkdir()
    for i, part in enumerate((feats[:25], feats[25:])):
        np.save(root / "features" / f"0000{i}.npy", np.asarray(part))
    sharded = ShardedArray.of_files(sorted((root / "features").glob("*.npy")), "embeddings")
    with pytest.raises(TrainError, match=r"features/ \(2 shards\) holds NaN or inf"):
        ICGAN.check(TrainParams(family="icgan"), TrainData(images, None, sharded, fixed))
