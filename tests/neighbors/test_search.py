"""FAISS k-NN neighborhoods: exactness against brute force, self exclusion, approximate indexes with
their recall, diagnostics, the panel and the errors a user sees."""

import numpy as np
import pytest
from PIL import Image

from ganops.core.params import NeighborsParams
from ganops.neighbors import diagnostics as nd
from ganops.neighbors import search as nb


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(n=1200, d=24, classes=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d))
    labels = rng.integers(0, classes, n)
    return _unit(centres[labels] + 0.35 * rng.normal(size=(n, d))), labels


def _manifold(n=2000, d=32, components=20, rank=4, seed=0):
    """Clusters spread along low-dimensional subspaces, as real embeddings are: within an isotropic cluster
    every neighbor is nearly as far as any other, and no quantised index can rank them."""
    rng = np.random.default_rng(seed)
    centres, bases = rng.normal(size=(components, d)), rng.normal(size=(components, rank, d)) / np.sqrt(rank)
    which = rng.integers(0, components, n)
    spread = np.einsum("nr,nrd->nd", rng.normal(size=(n, rank)), bases[which])
    return _unit(centres[which] + spread + 0.02 * rng.normal(size=(n, d))), which


def _brute(x: np.ndarray, k: int):
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_exact_matches_brute_force_and_excludes_self():
    x, _ = _clustered(n=500, d=16)
    res = nb.knn(x, 7, NeighborsParams(query_batch=64))
    ids, sims = _brute(x, 7)
    assert res.indices.shape == (500, 7) and res.indices.dtype == np.int64
    assert res.similarities.dtype == np.float32
    np.testing.assert_allclose(res.similarities, sims, atol=1e-5)
    # Same sets (order may differ only among exact ties).
    assert all(set(a) == set(b) for a, b in zip(res.indices, ids))
    assert not (res.indices == np.arange(500)[:, None]).any()
    assert (np.diff(res.similarities, axis=1) <= 1e-6).all()


def test_query_batch_does_not_change_the_result():
    x, _ = _clustered(n=300)
    a = nb.knn(x, 5, NeighborsParams(query_batch=7))
    b = nb.knn(x, 5, NeighborsParams(query_batch=4096))
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("threads", [1, 3])
def test_the_exact_search_is_exact_on_any_number_of_worker_threads(monkeypatch, threads):
    """A worker a core: the all-pairs search takes pairs of row blocks (each tile pushed into both blocks'
    heaps), a query subset's search takes tiles of queries. Both must cover every pair once, whatever the count
    of workers, and the process's torch threads come back."""
    import torch

    x, _ = _clustered(n=2600, d=16)
    monkeypatch.setattr(nb, "TILE_BYTES", 256 * 256 * 4)   # blocks of 256 rows, the last one short
    monkeypatch.setattr(nb, "BLAS_QUERY_BS", 96)           # many query tiles a batch, the last one short
    subset = np.sort(np.random.default_rng(1).choice(len(x), 700, replace=False))
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads))     # what FAISS's count follows (the suite says 1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        res = nb.knn(x, 6, NeighborsParams(query_batch=1000))
        sub = nb.exact_neighbors(x, subset, 6, batch=500)
        assert torch.get_num_threads() == threads
        # FAISS told one thread must not leave torch at one (where the two share an OpenMP runtime)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        nb.knn(x[:300], 6, NeighborsParams())
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    _, sims = _brute(x, 6)
    np.testing.assert_allclose(res.similarities, sims, atol=1e-5)
    # each neighbor is at the similarity reported (where two tie at the k-th, either is exact), once, never self
    true = np.einsum("nd,nkd->nk", x, x[res.indices])
    np.testing.assert_allclose(res.similarities, true, atol=1e-5)
    assert all(len(set(row)) == 6 for row in res.indices)
    assert not (res.indices == np.arange(len(x))[:, None]).any()
    np.testing.assert_allclose(np.einsum("nd,nkd->nk", x[subset], x[sub]), sims[subset], atol=1e-5)
    assert not (sub == subset[:, None]).any()


def test_duplicates_never_list_self():
    x, _ = _clustered(n=200)
    x[10] = x[11] = x[12]  # exact ties with self
    res = nb.knn(np.ascontiguousarray(x), 4, NeighborsParams())
    nb.validate_neighbors(res.indices, 200)
    assert {11, 12} <= set(res.indices[10].tolist())


@pytest.mark.parametrize("index", ["ivf", "hnsw", "ivfpq", "factory"])
def test_approximate_index_reports_recall(index):
    x, labels = (_manifold if "pq" in index or index == "factory" else _clustered)(n=2000, d=32)
    extra = {"index_factory": "IVF32,PQ8x4fs,RFlat"} if index == "factory" else {}
    res = nb.knn(x, 10, NeighborsParams(index=index, nprobe=8, recall_sample=300, **extra), seed=1)
    nb.validate_neighbors(res.indices, 2000)
    assert 0.9 <= res.info["recall_at_k"] <= 1.0 and res.info["recall_queries"] == 300
    exact = nb.knn(x, 10, NeighborsParams())
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.indices, exact.indices)])
    assert abs(overlap - res.info["recall_at_k"]) < 0.05  # the sampled recall estimates the true one


@pytest.mark.parametrize("k, n", [(5, 5), (9, 5), (1, 1)])
def test_k_must_be_below_n(k, n):
    x, _ = _clustered(n=max(n, 1))
    with pytest.raises(nb.NeighborsError, match=r"neighbors.k = %d" % k):
        nb.knn(x[:n], k, NeighborsParams())


def test_bad_features_are_named():
    x, _ = _clustered(n=50)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(nb.NeighborsError, match=r"1 of 50 rows hold non-finite.*first rows: 3"):
        nb.check_features(bad, "features.npy")
    with pytest.raises(nb.NeighborsError, match="not L2-normalised"):
        nb.check_features(x * 2, "features.npy")
    with pytest.raises(nb.NeighborsError, match="float32"):
        nb.check_features(x.astype(np.float64))


def test_ivfpq_reads_a_memory_map_a_chunk_at_a_time_and_refines_exactly(tmp_path, monkeypatch):
    x, _ = _manifold(n=3000, d=32)
    np.save(tmp_path / "features.npy", x)
    mapped = np.load(tmp_path / "features.npy", mmap_mode="r")
    monkeypatch.setattr(nb, "ADD_CHUNK", 700)            # several chunks, the last one short
    p = NeighborsParams(index="ivfpq", recall_sample=500)
    res = nb.knn(mapped, 10, p, seed=0)
    assert res.info["factory"] == "IVF54,PQ8x4fs,Refine(SQfp16)" and res.info["refine"] == 10
    assert res.info["recall_at_k"] >= 0.9
    np.testing.assert_array_equal(res.indices, nb.knn(x, 10, p, seed=0).indices)   # as from memory
    # the re-ranked similarities are the cosines of the pairs found from their float16 copy (to ~1e-3), not the
    # PQ codes' estimates (off by ~0.05)
    rows = np.arange(3000)[:, None]
    np.testing.assert_allclose(res.similarities, np.einsum("nd,nkd->nk", x, x[res.indices]), atol=2e-3)
    assert (rows != res.indices).all()
    unrefined = nb.knn(x, 10, NeighborsParams(index="ivfpq", refine=1, recall_sample=500), seed=0)
    assert unrefined.info["factory"] == "IVF54,PQ8x4fs" and unrefined.info["recall_at_k"] < res.info["recall_at_k"]


@pytest.mark.parametrize("index", ["exact", "ivfpq", "hnsw"])
def test_the_features_shards_search_as_the_array_they_make(tmp_path, index):
    """A large dataset's features come as shards (one per dataset shard): every index reads them in blocks and
    finds what it finds in the array they make."""
    from ganops.data import shards

    x, _ = _manifold(n=3000, d=32)
    for i in range(4):
        np.save(tmp_path / f"part{i}.npy", x[i * 800:(i + 1) * 800])
    sharded = shards.ShardedArray.of_files([tmp_path / f"part{i}.npy" for i in range(4)], "embeddings")
    assert len(sharded.shards) == 4
    p = NeighborsParams(index=index, recall_sample=300)
    res, ref = nb.knn(sharded, 10, p, seed=0), nb.knn(x, 10, p, seed=0)
    np.testing.assert_array_equal(res.indices, ref.indices)
    np.testing.assert_array_equal(res.similarities, ref.similarities)
    diag = nd.diagnostics(res.indices, res.similarities, None, sharded, seed=0)
    assert diag == nd.diagnostics(ref.indices, ref.similarities, None, x, seed=0)


def test_index_factory_and_pq_errors_name_the_key():
    from pydantic import ValidationError

    x, _ = _clustered(n=400)
    with pytest.raises(nb.NeighborsError, match=r"neighbors.index_factory: FAISS cannot build 'IVFzz,Flat'"):
        nb.knn(x, 5, NeighborsParams(index="factory", index_factory="IVFzz,Flat"))
    with pytest.raises(nb.NeighborsError, match=r"neighbors.index_factory = 'IVF100,Flat': 100 lists for N = 400"):
        nb.knn(x, 5, NeighborsParams(index="factory", index_factory="IVF100,Flat"))
    with pytest.raises(nb.NeighborsError, match=r"neighbors.pq_m = 5 does not divide the feature size d = 24"):
        nb.knn(_manifold(n=700, d=24)[0], 5, NeighborsParams(index="ivfpq", pq_m=5))
    with pytest.raises(nb.NeighborsError, match=r"'IDMap,Flat': FAISS built it but cannot train or fill it"):
        nb.knn(x, 5, NeighborsParams(index="factory", index_factory="IDMap,Flat"))
    with pytest.raises(nb.NeighborsError, match=r"pq_bits=4 trains 16 codes .* at least 624 instances; N = 400"):
        nb.knn(x, 5, NeighborsParams(index="ivfpq"))
    big, _ = _manifold(n=2000, d=24)
    with pytest.raises(nb.NeighborsError, match=r"neighbors.nlist = 500 .*\(0 picks 1·sqrt\(N\) = 44"):
        nb.knn(big, 5, NeighborsParams(index="ivfpq", nlist=500))
    got = nb.knn(big, 5, NeighborsParams(index="factory", index_factory="IVF8,PQ6x4fs"))    # no refinement stage
    assert got.info["refine"].startswith("none")
    with pytest.raises(ValidationError, match="neighbors.index=factory needs neighbors.index_factory"):
        NeighborsParams(index="factory")
    with pytest.raises(ValidationError, match="index_factory is read only with neighbors.index=factory"):
        NeighborsParams(index="ivf", index_factory="IVF8,Flat")


def test_too_many_ivf_lists_is_an_error():
    x, _ = _clustered(n=400)
    with pytest.raises(nb.NeighborsError, match="neighbors.nlist = 100"):
        nb.knn(x, 5, NeighborsParams(index="ivf", nlist=100))


def test_diagnostics_purity_and_radius():
    indices = np.array([[1, 2], [0, 2], [0, 1]])
    sims = np.array([[0.9, 0.5], [0.9, 0.4], [0.5, 0.4]], np.float32)
    labels = np.array([0, 0, 1])
    d = nd.diagnostics(indices, sims, labels)
    # row 0: 1 of 2 same; row 1: 1 of 2; row 2: 0 of 2 → 2/6
    assert d["purity"] == pytest.approx(2 / 6) and d["purity_at_1"] == pytest.approx(2 / 3)
    assert d["radius_k_max"] == pytest.approx(0.6) and d["similarity_max"] == pytest.approx(0.9)
    unlabelled = nd.diagnostics(indices, sims, np.full(3, -1))
    assert "purity" not in unlabelled


def test_purity_on_clustered_data_is_high():
    x, labels = _clustered()
    res = nb.knn(x, 10, NeighborsParams())
    assert nd.diagnostics(res.indices, res.similarities, labels)["purity"] > 0.95


def test_panel_png(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (30, 1, 8, 8), dtype=np.uint8)
    indices = (np.arange(30)[:, None] + np.arange(1, 13)[None]) % 30
    nd.save_panel(images, indices, tmp_path / "panel.png", rows=4, seed=0)
    with Image.open(tmp_path / "panel.png") as im:
        w, h = im.size
        assert im.mode == "RGB"  # coloured frames mark the query column
    assert w > h  # 4 rows of 1 + 10 images


def test_validate_and_load_catch_broken_artifacts(tmp_path):
    with pytest.raises(nb.NeighborsError, match="list the instance itself"):
        nb.validate_neighbors(np.array([[1], [1]]), 2)
    with pytest.raises(nb.NeighborsError, match="outside"):
        nb.validate_neighbors(np.array([[1], [7]]), 2)
    with pytest.raises(nb.NeighborsError, match="stale"):
        nb.validate_neighbors(np.array([[1], [0]]), 3)
    np.save(tmp_path / "indices.npy", np.zeros((4, 3), np.int64))
    np.save(tmp_path / "similarities.npy", np.zeros((4, 2), np.float32))
    with pytest.raises(nb.NeighborsError, match="inconsistent"):
        nb.load_neighbors(tmp_path)


def test_random_pairs_and_the_collapse_rule():
    x, labels = _clustered()
    res = nb.knn(x, 10, NeighborsParams())
    healthy = nd.diagnostics(res.indices, res.similarities, labels, x)
    assert abs(healthy["similarity_random_mean"] - float((x[:400] @ x[400:800].T).mean())) < 0.05
    assert healthy["similarity_margin"] > 0.5 and nd.collapse(healthy) is None
    # every feature near one direction: neighbors are no closer than any pair
    rng = np.random.default_rng(1)
    alike = _unit(np.ones((1200, 24)) + 0.05 * rng.normal(size=(1200, 24)))
    res = nb.knn(alike, 10, NeighborsParams())
    collapsed = nd.diagnostics(res.indices, res.similarities, labels, alike)
    assert collapsed["similarity_random_mean"] > 0.95 and collapsed["similarity_margin"] < nd.MIN_MARGIN
    assert "neighborhoods are collapsed" in nd.collapse(collapsed) and "embed.min_steps" in nd.collapse(collapsed)


def test_a_barely_trained_encoder_warns_and_fails_the_check_a_trained_one_passes(tmp_path, caplog):
    import json

    from ganops.core import artifacts as A
    from ganops.core.params import load
    from ganops.stages import run_stage
    from ganops.tracking import checks

    base = ["data.limit=300", "data.resolution=16", "tracking.enabled=false", "device=cpu"]
    # what a user's 300 images got before embed.min_steps: one SimCLR update in all
    p = load(None, [*base, "embed.epochs=1", "embed.min_steps=0", "embed.batch_size=256"])
    with caplog.at_level("WARNING", logger="ganops.stages.neighbors"):
        for stage in ("dataset", "embeddings", "neighbors"):
            run_stage(stage, p, tmp_path)
    out = A.neighbors_dir(tmp_path, p)
    said = json.loads((out / "diagnostics.json").read_text())["warnings"]
    assert "neighborhoods are collapsed" in said[0] and said[0] in caplog.text
    assert not checks.neighbors_distinct(out).passed
    q = load(None, [*base, "embed.encoder=pixels"])
    for stage in ("embeddings", "neighbors"):
        run_stage(stage, q, tmp_path)
    outcome = checks.neighbors_distinct(A.neighbors_dir(tmp_path, q))
    assert outcome.passed and outcome.metadata["similarity_margin"] >= nd.MIN_MARGIN
