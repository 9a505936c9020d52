"""FAISS k-NN neighborhoods for IC-GAN (DESIGN.md §3): each instance's k most similar instances.

Features are L2-normalised, so inner product = cosine similarity. The exact search computes torch's GEMM a tile
of row blocks at a time (no index, so no copy of the features), each pair of blocks once (the similarity is
symmetric), into FAISS's heaps, which become the N×k outputs: memory stays features + outputs + two tiles per
core, never an N×N matrix (IC-GAN's original code fell back to an N×N sklearn matrix and ran out of memory at
ImageNet scale). The instance itself is excluded from its own set, as in IC-GAN: we search k+1 and drop self.

Diagnostics (purity, radii) and the neighbor panel PNG live in ``diagnostics``, and what valid features
and neighborhoods are in ``validity``; diagnostics builds on
this module (never the other way round).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from ganops.core.errors import UserError
from ganops.core.params import NeighborsParams
from ganops.data.shards import ShardedArray
from ganops.neighbors.validity import NORM_TOLERANCE, first, inspect_features, inspect_neighbors


class NeighborsError(UserError, ValueError):
    """Bad input to the neighbors stage: the message names the file or key, the value and the fix."""


__all__ = ["KnnResult", "NeighborsError", "build_index", "check_features", "exact_neighbors", "exclude_self", "knn",
           "load_neighbors", "recall_at_k", "validate_neighbors"]

BLAS_QUERY_BS = 1024       # queries per GEMM tile of the exact search
TILE_BYTES = 4 << 20       # one worker's GEMM output tile of the exact search (an L2 cache's worth)

_MIN_POINTS_PER_LIST = 39   # FAISS k-means warns below this many training points per centroid
_GPU_MAX_K = 2048           # FAISS GPU selection limit
ADD_CHUNK = 65_536          # rows added to an index at a time (a memory-mapped feature file is read a chunk at once)


@dataclass
class KnnResult:
    indices: np.ndarray       # N×k int64, self excluded, most similar first
    similarities: np.ndarray  # N×k float32 cosine similarities
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- input checks

def check_features(features: np.ndarray, name: str = "features.npy", norm_tol: float = NORM_TOLERANCE) -> None:
    """2-D float32, non-empty, finite and L2-normalised (``validity``: inner product must mean cosine)."""
    if not isinstance(features, (np.ndarray, ShardedArray)):
        raise NeighborsError(f"{name}: expected a numpy array, got {type(features).__name__}")
    if features.ndim != 2:
        raise NeighborsError(f"{name}: expected a 2-D N×d array, got shape {features.shape}")
    if features.dtype != np.float32:
        raise NeighborsError(f"{name}: expected float32, got {features.dtype}; the embed stage writes float32")
    n, d = features.shape
    if n == 0 or d == 0:
        raise NeighborsError(f"{name}: empty array of shape {features.shape}")
    found = inspect_features(features, norm_tol)
    bad, off = found.non_finite_rows, found.off_norm_rows
    if len(bad):
        raise NeighborsError(f"{name}: {len(bad)} of {n} rows hold non-finite values (NaN/inf), "
                             f"first rows: {first(bad)}; re-run the embed stage or drop those images")
    if len(off):
        raise NeighborsError(f"{name}: {len(off)} of {n} rows are not L2-normalised (|norm - 1| > {norm_tol}), "
                             f"first rows: {first(off)}; cosine k-NN needs unit vectors")


def check_k(k: int, n: int) -> None:
    if n < 2:
        raise NeighborsError(f"neighbors.k = {k}: the dataset has N = {n} instance(s); "
                             "k-NN with the instance excluded needs at least 2")
    if not 1 <= k <= n - 1:
        raise NeighborsError(f"neighbors.k = {k} is not allowed for N = {n} instances: "
                             f"k must be in 1..{n - 1} (the instance itself is excluded)")


# ---------------------------------------------------------------- self-exclusion

def exclude_self(ids: np.ndarray, sims: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """From b×(k+1) results drop each row's own index; where self is absent (ties among duplicates
    pushed it out), drop the last, least similar column instead. Returns (ids, sims, #absent)."""
    drop = ids == rows[:, None]
    # A row holds its own id at most once; rows without it drop their last column.
    missing = ~drop.any(axis=1)
    drop[missing, -1] = True
    keep = ~drop
    b, k1 = ids.shape
    # Boolean indexing walks rows in order, so each row keeps k entries in their sorted order.
    return ids[keep].reshape(b, k1 - 1), sims[keep].reshape(b, k1 - 1), int(missing.sum())


# ---------------------------------------------------------------- search back ends

def set_threads() -> int:
    """FAISS (OpenMP + its BLAS) uses the cores this process may run on, unless OMP_NUM_THREADS says."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    n = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    faiss.omp_set_num_threads(n)
    return n


def _gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


class _Batched:
    """Runs ``search(xq, k+1) -> (D, I)`` over query batches into N×k outputs, self excluded."""

    def __init__(self, n: int, k: int):
        self.ids = np.empty((n, k), np.int64)
        self.sims = np.empty((n, k), np.float32)
        self.self_missing = 0

    def run(self, x: np.ndarray, rows: np.ndarray, search, batch: int, dest: np.ndarray | None = None) -> None:
        """Query ``rows`` (sorted) of x; results go to output rows ``dest`` (default: the same rows)."""
        dest = rows if dest is None else dest
        for i in range(0, len(rows), batch):
            r = rows[i:i + batch]
            # Contiguous row ranges are views (no copy); scattered rows (refills, samples) are gathered.
            xq = x[r[0]:r[-1] + 1] if r[-1] - r[0] + 1 == len(r) else x[r]
            D, I = search(xq, self.ids.shape[1] + 1)
            I, D, miss = exclude_self(I, D, r)
            self.ids[dest[i:i + batch]], self.sims[dest[i:i + batch]] = I, D
            self.self_missing += miss


def _exact_cpu(x: np.ndarray, batch: int):
    """Exact search of some queries (a recall sample, IVF's refills) on the CPU: torch's GEMM (its BLAS: MKL or
    oneDNN) on tiles of queries × database rows, each tile pushed through FAISS's own per-query heaps (``addn``: a
    comparison with the heap's top for most entries). ``faiss.knn`` does both itself, with the BLAS its wheel
    bundles: on a 2-core AVX-512 machine that reached 14-17% of torch's GEMM at d = 512, k = 50
    (benchmarks/knn_speed.py).

    One worker thread a core takes a tile of the batch's queries at a time and runs both its single-threaded
    GEMM and its heaps (both release the GIL), so no core waits while another pushes into heaps: with a
    2-threaded GEMM and one thread's heaps between its calls, 30,000 × 512 reached 0.42-0.65 of GEMM; so, 0.75-0.8.
    A worker's tile is 1,024 queries × 2,048 rows (fewer, longer heap pushes measured faster than 1,024 rows)
    whatever N, so the search's memory is features + outputs + a few MiB."""
    n = x.shape[0]
    workers = max(1, torch.get_num_threads())
    qbs = min(BLAS_QUERY_BS, -(-batch // workers))     # every worker has a tile of a full batch
    dbs = int(min(max(2048, TILE_BYTES // (4 * qbs)), n))
    tiles = [torch.empty(qbs * dbs, dtype=torch.float32) for _ in range(workers)]   # a tile's GEMM output

    def search(xq: np.ndarray, k1: int) -> tuple[np.ndarray, np.ndarray]:
        sims = np.empty((len(xq), k1), np.float32)
        ids = np.empty((len(xq), k1), np.int64)

        def rows(qa: int, tile: torch.Tensor) -> None:
            _tile_rows(xq[qa:qa + qbs], k1, sims[qa:qa + qbs], ids[qa:qa + qbs], tile)

        _on_workers(rows, range(0, len(xq), qbs), tiles)
        return sims, ids

    def _tile_rows(xq: np.ndarray, k1: int, sims: np.ndarray, ids: np.ndarray, tile: torch.Tensor) -> None:
        q = torch.from_numpy(np.ascontiguousarray(xq))
        heaps = _heaps(sims, ids)
        for a in range(0, n, dbs):
            block = torch.from_numpy(np.asarray(x[a:a + dbs]))
            s = tile[:len(q) * len(block)].view(len(q), len(block))
            torch.mm(q, block.T, out=s)
            heaps.addn(len(block), faiss.swig_ptr(s.numpy()), a)
        heaps.reorder()          # most similar first
    return search


def block_rows(n: int) -> int:
    """Rows of a block of the all-pairs exact search: its tiles are square, of TILE_BYTES."""
    return int(min(max(256, (TILE_BYTES // 4) ** 0.5), n))


def _exact_all_cpu(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Every instance's exact k nearest among all of ``x``, self excluded: (ids, sims, #rows missing self).

    When the queries are the database, sim(i, j) = sim(j, i): the search computes the tiles of block pairs
    i ≤ j alone, half the GEMM of ``_exact_cpu``, and pushes each tile into block i's heaps and its transpose
    into block j's (the heaps' work is unchanged). A worker a core takes block pairs; a lock per block keeps two
    workers out of the same heaps. Memory: the N×(k+1) heaps, which become the N×k outputs in place, and two
    tiles a worker."""
    n = x.shape[0]
    side = block_rows(n)
    starts = list(range(0, n, side))
    sims = np.empty((n, k + 1), np.float32)
    ids = np.empty((n, k + 1), np.int64)
    heaps = [_heaps(sims[a:a + side], ids[a:a + side]) for a in starts]
    locks = [threading.Lock() for _ in starts]
    # a worker's tile and its transpose
    buffers = [(torch.empty(side * side), torch.empty(side * side)) for _ in range(max(1, torch.get_num_threads()))]
    # Pairs along the diagonals: pairs taken at the same time share a block's lock at most at one end.
    pairs = [(i, i + d) for d in range(len(starts)) for i in range(len(starts) - d)]

    def block(i: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x[starts[i]:starts[i] + side]))

    def push(i: int, tile: torch.Tensor, offset: int) -> None:
        with locks[i]:
            heaps[i].addn(tile.shape[1], faiss.swig_ptr(tile.numpy()), offset)

    def pair(ij: tuple[int, int], bufs: tuple[torch.Tensor, torch.Tensor]) -> None:
        (i, j), (buf, tbuf) = ij, bufs
        bi, bj = block(i), block(j)
        s = buf[:len(bi) * len(bj)].view(len(bi), len(bj))
        torch.mm(bi, bj.T, out=s)
        push(i, s, starts[j])
        if i != j:
            t = tbuf[:len(bj) * len(bi)].view(len(bj), len(bi))
            t.copy_(s.T)
            push(j, t, starts[i])

    _on_workers(pair, pairs, buffers)
    for h in heaps:
        h.reorder()                                       # most similar first
    # Drop self a chunk of rows at a time, into the front of the same buffers: row r's k columns move to
    # r·k ≤ r·(k+1), over rows already read.
    flat_ids, flat_sims, missing = ids.reshape(-1), sims.reshape(-1), 0
    for a in range(0, n, 4096):
        b = min(a + 4096, n)
        kept_ids, kept_sims, miss = exclude_self(ids[a:b], sims[a:b], np.arange(a, b))
        flat_ids[a * k:b * k], flat_sims[a * k:b * k] = kept_ids.ravel(), kept_sims.ravel()
        missing += miss
    return flat_ids[:n * k].reshape(n, k), flat_sims[:n * k].reshape(n, k), missing


@contextlib.contextmanager
def _torch_threads_kept():
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _on_workers(fn, items, buffers: list) -> None:
    """``fn(item, buffer)`` for every item, on a worker thread a buffer (one a core), each holding its buffer
    while it runs. torch's and FAISS's OpenMP pools are at one thread meanwhile: each worker's GEMM and heaps run
    on its own thread, never oversubscribed (both release the GIL)."""
    free: queue.SimpleQueue = queue.SimpleQueue()
    for buf in buffers:
        free.put(buf)

    def run(item) -> None:
        buf = free.get()
        try:
            with torch.inference_mode():
                fn(item, buf)
        finally:
            free.put(buf)

    faiss_threads = faiss.omp_get_max_threads()
    with _torch_threads_kept(), warnings.catch_warnings(), \
            ThreadPoolExecutor(len(buffers), thread_name_prefix="ganops-knn") as pool:
        torch.set_num_threads(1)
        faiss.omp_set_num_threads(1)
        warnings.simplefilter("ignore", UserWarning)      # read-only memory maps: torch only reads them
        try:
            list(pool.map(run, items))
        finally:
            faiss.omp_set_num_threads(faiss_threads)


def _heaps(sims: np.ndarray, ids: np.ndarray) -> faiss.float_minheap_array_t:
    """FAISS's k-best-by-largest heaps of each row, kept in ``sims`` and ``ids`` (C-contiguous views)."""
    heaps = faiss.float_minheap_array_t()
    heaps.nh, heaps.k = sims.shape
    heaps.val, heaps.ids = faiss.swig_ptr(sims), faiss.swig_ptr(ids)
    heaps.heapify()
    return heaps


def _exact_gpu(x: np.ndarray):
    # The features go to GPU memory once (the host copy is untouched); queries stream in batches.
    res = faiss.StandardGpuResources()
    index = faiss.GpuIndexFlatIP(res, x.shape[1])
    _add(index, x)

    def search(xq, k1):
        return index.search(np.ascontiguousarray(xq), k1)
    search.keep_alive = (res, index)  # the index must not outlive its resources
    return search


def _add(index: faiss.Index, x: np.ndarray) -> None:
    """The vectors into the index a chunk of rows at a time: the index stores its own (maybe quantised) copy,
    so only a chunk of the features is read at once."""
    for start in range(0, len(x), ADD_CHUNK):
        index.add(np.ascontiguousarray(x[start:start + ADD_CHUNK]))


def _auto_nlist(n: int, nlist: int, per_sqrt: float = 4.0) -> int:
    most = max(1, n // _MIN_POINTS_PER_LIST)
    if nlist == 0:
        return int(min(max(1, int(per_sqrt * np.sqrt(n))), most))
    if nlist > most:
        raise NeighborsError(f"neighbors.nlist = {nlist} is too many lists for N = {n}: FAISS needs "
                             f">= {_MIN_POINTS_PER_LIST} training points per list, so nlist must be "
                             f"in 1..{most} (0 picks {per_sqrt:g}·sqrt(N) = {int(per_sqrt * np.sqrt(n))}, clamped)")
    return nlist


def index_spec(p: NeighborsParams, n: int, d: int) -> str:
    """The FAISS index_factory string of ``neighbors.index`` (ivf, ivfpq), or the user's own (factory)."""
    if p.index == "factory":
        return p.index_factory
    if p.index == "ivf":
        return f"IVF{_auto_nlist(n, p.nlist)},Flat"
    # PQ codes scan fast, so longer lists cost little and fewer centroids train and assign in a quarter of the
    # time: sqrt(N) lists (1,000 at a million)
    nlist = _auto_nlist(n, p.nlist, per_sqrt=1.0)
    codes = 2 ** p.pq_bits
    if n < _MIN_POINTS_PER_LIST * codes:   # each sub-quantiser is a k-means of 2^bits centroids
        raise NeighborsError(f"neighbors.index=ivfpq with pq_bits={p.pq_bits} trains {codes} codes per sub-quantiser "
                             f"and needs at least {_MIN_POINTS_PER_LIST * codes:,} instances; N = {n:,}: use "
                             "neighbors.index=exact, which is fast at this size")
    m = p.pq_m or max(1, d // 4)
    if d % m:
        raise NeighborsError(f"neighbors.pq_m = {p.pq_m} does not divide the feature size d = {d}: pick a divisor "
                             f"of {d} (0 picks d/4 = {max(1, d // 4)})")
    # 4-bit codes: FAISS's fast scan, SIMD table lookups in registers (several times the 8-bit scan's speed)
    pq = f"PQ{m}x4fs" if p.pq_bits == 4 else f"PQ{m}"
    # the candidates are re-ranked from a float16 copy of the vectors: recall@10 0.9968 where a float32 copy
    # (RFlat) gives 0.9975 at a million (benchmarks/knn_scale.py), in half the memory (at d = 2,048, ImageNet's
    # ResNet-50 features, 5.2 GB instead of 10.5 for 1.28M) and 1.2× faster; SQ8 would halve it again for 0.977
    return f"IVF{nlist},{pq}" + (",Refine(SQfp16)" if p.refine > 1 else "")


def _build_index(x: np.ndarray, p: NeighborsParams, seed: int, info: dict) -> faiss.Index:
    """An index from its factory string: trained on a seeded sample, filled a chunk of rows at a time (from a
    memory map, only the chunk is read at once), its search knobs set (nprobe, refine)."""
    n, d = x.shape
    spec = index_spec(p, n, d)
    try:
        index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        key = "neighbors.index_factory" if p.index == "factory" else "neighbors.index"
        raise NeighborsError(f"{key}: FAISS cannot build {spec!r} ({_said(exc)}); the strings are those of "
                             "faiss.index_factory, e.g. IVF4096,PQ32x4fs,RFlat or HNSW32,Flat") from None
    ivf = faiss.try_extract_index_ivf(index)
    train = min(n, 10_000)          # enough for 8-bit PQ codebooks (256 codes × 39 points)
    if ivf is not None:
        if ivf.nlist > n // _MIN_POINTS_PER_LIST and p.index == "factory":
            raise NeighborsError(f"neighbors.index_factory = {spec!r}: {ivf.nlist} lists for N = {n} instances; "
                                 f"FAISS needs >= {_MIN_POINTS_PER_LIST} training points per list, so at most "
                                 f"{max(1, n // _MIN_POINTS_PER_LIST)} lists")
        ivf.cp.seed = seed
        ivf.cp.spherical = True  # unit-norm centroids suit cosine
        per_list = p.train_per_list or (256 if p.index == "ivf" else 64)
        train = min(n, max(train, per_list * ivf.nlist))
        ivf.nprobe = min(p.nprobe, ivf.nlist)
        info.update(nlist=int(ivf.nlist), nprobe=int(ivf.nprobe))
    try:
        if not index.is_trained:
            sample = np.sort(np.random.default_rng(seed).choice(n, train, replace=False)) if train < n else slice(None)
            index.train(np.ascontiguousarray(x[sample]))
            info["train_points"] = train
        _add(index, x)
    except RuntimeError as exc:    # a string FAISS parses but cannot fill this way (IDMap, a GPU-only index, …)
        raise NeighborsError(f"neighbors.index_factory = {spec!r}: FAISS built it but cannot train or fill it "
                             f"with the features ({_said(exc)}); use an index that takes vectors as they come, e.g. "
                             "IVF4096,PQ32x4fs,RFlat or HNSW32,Flat") from None
    refine = faiss.downcast_index(index)
    if isinstance(refine, faiss.IndexRefine):
        refine.k_factor = float(p.refine)
        info["refine"] = p.refine
    elif p.index == "factory":     # neighbors.refine acts through a refinement stage the string names
        info["refine"] = "none: the string has no RFlat or Refine(…) stage"
    with contextlib.suppress(RuntimeError):   # HNSW inside a factory string: its search depth
        faiss.ParameterSpace().set_index_parameter(index, "efSearch", p.ef_search)
    info.update(factory=spec, index_bytes=_index_bytes(index))
    return _on_gpus(index, p, info)


def _said(exc: RuntimeError) -> str:
    """FAISS's own words: the last line of its C++ message, without the source location around it."""
    return str(exc).strip().splitlines()[-1][:200]


def _index_bytes(index: faiss.Index) -> int:
    """What the index holds in memory, as FAISS serialises it (its codes, lists, refinement vectors)."""
    with contextlib.suppress(RuntimeError, AttributeError):
        writer = faiss.VectorIOWriter()
        faiss.write_index(index, writer)
        return int(writer.data.size())
    return -1


def _on_gpus(index: faiss.Index, p: NeighborsParams, info: dict) -> faiss.Index:
    """The index sharded over every GPU (as IC-GAN searched ImageNet) where faiss has GPU support; otherwise
    the CPU index, and the diagnostics say why."""
    if not p.use_gpu:
        return index
    if _gpu_count() == 0:
        info["gpu_note"] = "CPU index: this faiss build sees no GPU (faiss-cpu, or no CUDA device)"
        return index
    try:
        options = faiss.GpuMultipleClonerOptions()
        options.shard = True
        moved = faiss.index_cpu_to_all_gpus(index, options)
    except (RuntimeError, AttributeError) as exc:   # e.g. 4-bit fast scan has no GPU version
        info["gpu_note"] = f"CPU index: FAISS cannot move {info.get('factory', 'it')} to the GPUs ({str(exc)[:120]})"
        return index
    info.update(gpu=True, gpus=_gpu_count())
    return moved


def build_index(x: np.ndarray, p: NeighborsParams, seed: int = 0, info: dict | None = None) -> faiss.Index:
    """The approximate index of ``neighbors.index`` over ``x`` (unit rows), trained, filled and ready to search;
    what it is and costs goes into ``info``."""
    info = {} if info is None else info
    if p.index != "hnsw":
        return _build_index(x, p, seed, info)
    index = _build_hnsw(x, p, info)
    info["index_bytes"] = _index_bytes(index)
    return index


def _build_hnsw(x: np.ndarray, p: NeighborsParams, info: dict) -> faiss.Index:
    index = faiss.IndexHNSWFlat(x.shape[1], p.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    _add(index, x)
    index.hnsw.efSearch = p.ef_search
    info.update(hnsw_m=p.hnsw_m, ef_search=p.ef_search)
    return index


def exact_neighbors(x: np.ndarray, rows: np.ndarray, k: int, batch: int = 4096) -> np.ndarray:
    """The exact k nearest of the instances ``rows`` (sorted) among all of ``x``, self excluded: len(rows)×k."""
    ref = _Batched(len(rows), k)
    ref.run(x, rows, _exact_cpu(x, batch), batch, dest=np.arange(len(rows)))
    return ref.ids


def recall_at_k(exact: np.ndarray, found: np.ndarray, n: int) -> float:
    """Mean fraction of each row's exact k-NN set that ``found`` holds (same rows, any order)."""
    # Intersect per row without a rows×k×k array: tag each id with its row, intersect once.
    tag = np.arange(len(exact), dtype=np.int64)[:, None] * n
    return float(len(np.intersect1d(exact + tag, found + tag)) / exact.size)


def _recall(x: np.ndarray, ids: np.ndarray, k: int, sample: int, batch: int, seed: int) -> float:
    """Mean fraction of the exact k-NN set found by the approximate index on a seeded query sample."""
    n = len(x)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    return recall_at_k(exact_neighbors(x, rows, k, batch), ids[rows], n)


# ---------------------------------------------------------------- public entry point

def knn(features: np.ndarray, k: int, p: NeighborsParams, seed: int = 0) -> KnnResult:
    """Cosine k-NN of every instance among all others (IC-GAN's A_i), self excluded."""
    check_features(features)
    n, d = features.shape
    check_k(k, n)
    # the features' shards and memory maps are read a block of rows at a time; an array in memory is C-ordered
    as_is = isinstance(features, ShardedArray) or features.flags.c_contiguous
    x = features if as_is else np.ascontiguousarray(features)
    batch = p.query_batch
    # FAISS and torch may share one OpenMP runtime (whichever libgomp the process loaded first): FAISS's thread
    # count can move torch's, which the caller gets back.
    with _torch_threads_kept():
        threads = set_threads()
        info: dict[str, Any] = {"index": p.index, "n": n, "d": d, "k": k, "query_batch": batch,
                                "threads": threads, "gpu": False, "faiss_version": faiss.__version__}
        t0 = time.perf_counter()
        out = _Batched(n, k)
        rows = np.arange(n)
        if p.index == "exact":
            use_gpu = p.use_gpu and _gpu_count() > 0 and k + 1 <= _GPU_MAX_K
            if p.use_gpu and _gpu_count() > 0 and not use_gpu:
                info["gpu_skipped"] = f"k+1 = {k + 1} exceeds the FAISS GPU limit {_GPU_MAX_K}"
            info.update(gpu=use_gpu, build_s=time.perf_counter() - t0)
            if use_gpu:
                out.run(x, rows, _exact_gpu(x), batch)
            else:
                out.ids, out.sims, out.self_missing = _exact_all_cpu(x, k)
        else:
            index = build_index(x, p, seed, info)
            info["build_s"] = time.perf_counter() - t0
            out.run(x, rows, lambda xq, k1: index.search(xq, k1), batch)
            # IVF can find fewer than k+1 candidates in the probed lists (FAISS pads with -1):
            # those rows are searched exactly, and counted, rather than left holding -1.
            short = np.flatnonzero((out.ids < 0).any(axis=1))
            if len(short):
                out.run(x, short, _exact_cpu(x, batch), batch)
            info["exact_refill_rows"] = int(len(short))
            t1 = time.perf_counter()
            info["recall_at_k"] = _recall(x, out.ids, k, p.recall_sample, batch, seed)
            info.update(recall_queries=min(p.recall_sample, n), recall_s=time.perf_counter() - t1)
        info["search_s"] = time.perf_counter() - t0 - info["build_s"] - info.get("recall_s", 0.0)
        info["total_s"] = time.perf_counter() - t0
        info["self_missing_rows"] = out.self_missing  # > 0 means duplicate features tied with self
        return KnnResult(out.ids, out.sims, info)


# ---------------------------------------------------------------- artifacts

def validate_neighbors(indices: np.ndarray, n: int) -> None:
    """Indices are N×k integers in [0, n), and no row lists its own instance."""
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise NeighborsError(f"indices.npy: expected an N×k integer array, got {indices.dtype} {indices.shape}")
    if indices.shape[0] != n:
        raise NeighborsError(f"indices.npy has {indices.shape[0]} rows but the dataset has N = {n} instances: "
                             "the neighbors are stale; re-run `ganops stage neighbors`")
    found = inspect_neighbors(indices, n)
    if len(found.out_of_range_rows):
        raise NeighborsError(f"indices.npy: {len(found.out_of_range_rows)} rows hold indices outside [0, {n}), "
                             f"first rows: {first(found.out_of_range_rows)}")
    if len(found.self_rows):
        raise NeighborsError(f"indices.npy: {len(found.self_rows)} rows list the instance itself as a neighbor, "
                             f"first rows: {first(found.self_rows)}; IC-GAN excludes self")


def load_neighbors(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    """indices.npy (N×k int64) and similarities.npy (N×k float32), memory-mapped, shapes checked."""
    from ganops.core.artifacts import load_npy

    directory = Path(directory)
    arrays = []
    for name in ("indices.npy", "similarities.npy"):
        arrays.append(load_npy(directory / name, "neighbors"))
    ids, sims = arrays
    if ids.ndim != 2 or ids.dtype != np.int64:
        raise NeighborsError(f"{directory / 'indices.npy'}: expected N×k int64, got {ids.dtype} {ids.shape}")
    if sims.ndim != 2 or sims.dtype != np.float32:
        raise NeighborsError(f"{directory / 'similarities.npy'}: expected N×k float32, got {sims.dtype} {sims.shape}")
    if ids.shape != sims.shape:
        raise NeighborsError(f"{directory}: indices.npy is {ids.shape} but similarities.npy is {sims.shape}; "
                             "the artifact is inconsistent, re-run `ganops stage neighbors`")
    return ids, sims
