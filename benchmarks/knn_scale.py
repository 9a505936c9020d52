"""k-NN at a million: each of ganops' indexes against exact search, on one machine.

    python benchmarks/knn_scale.py                              # N=1,000,000, d=128, k=10, 4,000 components
    python benchmarks/knn_scale.py --n 100000 --components 400  # quicker
    python benchmarks/knn_scale.py --indexes ivfpq --set nprobe=8 refine=8

The vectors are a clustered mixture, the shape of real embeddings rather than uniform noise: each of
``--components`` components is a unit centre plus a random ``--rank``-dimensional subspace the points
spread along, plus a little isotropic noise; then every row is L2-normalised (cosine = inner product, as
the embeddings stage writes them). They are written once to a .npy file that every measurement
memory-maps.

The baseline is ganops' exact search of the whole k-NN graph (IC-GAN's), each pair of row blocks once: timed
over the first ``--exact-rows`` rows and extrapolated by its count of block pairs. The exact neighbors of a
seeded sample of ``--queries`` queries against all N are the recall's truth (their time, query by query,
extrapolated to N, is reported beside). Each index is built over all N (trained on its sample, filled
shard by shard, timed in full) and searched with the same sample, its search time extrapolated the same
way; recall@k is measured against the exact neighbors of that sample. Each measurement runs in its own
process, so its peak memory (the peak resident set from after its imports on, above the resident set then;
the memory-mapped features' pages included) is its own.
Every measurement runs ``--repeat`` times, in rounds, and keeps its fastest.
Prints a table and, as the last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

INDEXES = {"ivf_today": ["index=ivf", "nlist=4000", "nprobe=16", "train_per_list=256"],     # the stop-29 defaults
           "ivf": ["index=ivf"], "hnsw": ["index=hnsw"], "ivfpq": ["index=ivfpq"], "factory": ["index=factory"]}


def mixture(n: int, d: int, components: int, rank: int, spread: float, seed: int, out: Path) -> None:
    """The clustered vectors, written a block at a time (memory: one block, not N×d twice)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((components, d), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    bases = rng.standard_normal((components, rank, d), dtype=np.float32) / np.sqrt(d)
    which = rng.integers(0, components, n)
    x = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 65_536):
        c = which[s:s + 65_536]
        u = rng.standard_normal((len(c), rank), dtype=np.float32) * spread
        block = centres[c] + np.einsum("nr,nrd->nd", u, bases[c])
        block += 0.05 / np.sqrt(d) * rng.standard_normal(block.shape, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[s:s + len(c)] = block
    x.flush()


def _rss_mib(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024   # kB


def _reset_peak() -> float:
    """Start the peak (VmHWM) afresh from now, past the imports' transient peaks; returns the RSS now."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_mib()


def _peak_mib() -> float:
    return _rss_mib("VmHWM")


def _child(what: str, args: argparse.Namespace) -> dict:
    from ganops.core.params import NeighborsParams
    from ganops.neighbors import search

    search.set_threads()
    base = _reset_peak()        # after the imports: what follows is the measurement's own
    x = np.load(args.data, mmap_mode="r")
    n = len(x)
    rows = np.sort(np.random.default_rng(args.seed).choice(n, min(args.queries, n), replace=False))
    truth = Path(args.data).with_suffix(".exact.npy")
    if what == "exact":
        from knn_speed import all_pairs_seconds

        t0 = time.perf_counter()
        ids = search.exact_neighbors(x, rows, args.k)      # the truth of the sampled queries
        secs = time.perf_counter() - t0
        np.save(truth, ids)
        peak = _peak_mib() - base
        # the baseline: the whole k-NN graph as the neighbors stage searches it exactly (each block pair once)
        whole, _ = all_pairs_seconds(x, args.k, min(args.exact_rows, n))
        return {"seconds": whole, "exact_rows": min(args.exact_rows, n), "queries_seconds": secs * n / len(rows),
                "sample_seconds": secs, "peak_mib": peak}
    sets = dict(s.split("=", 1) for s in [*INDEXES[what], *args.set])
    p = NeighborsParams(k=args.k, **sets)
    info: dict = {}
    t0 = time.perf_counter()
    index = search.build_index(x, p, args.seed, info)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = np.empty((len(rows), args.k + 1), np.int64)
    for s in range(0, len(rows), p.query_batch):      # the queries in knn's batches
        _, found[s:s + p.query_batch] = index.search(np.ascontiguousarray(x[rows[s:s + p.query_batch]]), args.k + 1)
    secs = time.perf_counter() - t0
    ids, _, _ = search.exclude_self(found, np.zeros(found.shape, np.float32), rows)
    return {"seconds": build + secs * n / len(rows), "build_seconds": build, "sample_seconds": secs,
            "recall_at_k": search.recall_at_k(np.load(truth), ids, n), "peak_mib": _peak_mib() - base,
            "index_mib": info.get("index_bytes", -1) / 2**20, "factory": info.get("factory", what),
            "params": {k: v for k, v in sets.items() if k != "index"}}


def _run(what: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--data", args.data, "--k", str(args.k),
           "--queries", str(args.queries), "--exact-rows", str(args.exact_rows), "--seed", str(args.seed),
           "--set", *args.set]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--components", type=int, default=4000)
    ap.add_argument("--rank", type=int, default=12, help="dimensions each component spreads along")
    ap.add_argument("--spread", type=float, default=0.15, help="standard deviation along each of them (the "
                    "centres are unit vectors: 0.15 × sqrt(12) ≈ 0.5, separate clusters that touch)")
    ap.add_argument("--queries", type=int, default=10_000, help="the query sample timed and checked")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of every measurement; each keeps its fastest")
    ap.add_argument("--exact-rows", type=int, default=100_000, help="the rows whose whole exact search is timed "
                    "and extrapolated to N by its count of block pairs (the baseline)")
    ap.add_argument("--indexes", nargs="+", default=list(INDEXES), choices=list(INDEXES))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="neighbors.* keys for every index")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return

    with tempfile.TemporaryDirectory(prefix="ganops-knn-scale-") as tmp:
        args.data = str(Path(tmp) / "features.npy")
        t0 = time.perf_counter()
        mixture(args.n, args.d, args.components, args.rank, args.spread, args.seed, Path(args.data))
        made = time.perf_counter() - t0
        # Rounds of every measurement, each kept at its fastest: a shared machine's speed drifts by ±25% over
        # minutes, and the ratio sets measurements minutes apart against each other.
        runs: dict[str, list[dict]] = {}
        for _ in range(args.repeat):
            for name in ("exact", *args.indexes):
                runs.setdefault(name, []).append(_run(name, args))
        fastest = {name: min(rs, key=lambda r: r["seconds"]) for name, rs in runs.items()}
        exact, results = fastest.pop("exact"), fastest
    features_mib = args.n * args.d * 4 / 2**20
    print(f"k-NN graph N={args.n:,} d={args.d} k={args.k}, {args.components:,} components of rank {args.rank}, spread {args.spread} "
          f"(made in {made:.0f} s), {args.queries:,} sampled queries; features {features_mib:.0f} MiB")
    print(f"  {'exact':<10} {exact['seconds']:8.1f} s (extrapolated from the first {exact['exact_rows']:,} rows; "
          f"query by query: {exact['queries_seconds']:.1f} s)  peak {exact['peak_mib']:7.0f} MiB")
    for name, r in results.items():
        print(f"  {name:<10} {r['seconds']:8.1f} s = {exact['seconds'] / r['seconds']:5.1f}× exact  recall@{args.k} "
              f"{r['recall_at_k']:.4f}  build {r['build_seconds']:6.1f} s  index {r['index_mib']:6.0f} MiB  "
              f"peak {r['peak_mib']:7.0f} MiB  {r['factory']}")
    best = max((r for r in results.values() if r["recall_at_k"] >= 0.95), key=lambda r: -r["seconds"], default=None)
    print(json.dumps({"benchmark": "knn_scale", "baseline": "exact search (knn, each pair of row blocks once), "
                      "extrapolated from its first --exact-rows rows", "n": args.n, "d": args.d, "k": args.k, "components": args.components,
                      "rank": args.rank, "spread": args.spread, "queries": args.queries, "repeat": args.repeat,
                      "exact_seconds": exact["seconds"],
                      "exact_queries_seconds": exact["queries_seconds"],
                      "exact_peak_mib": exact["peak_mib"], "features_mib": features_mib,
                      "indexes": {name: {**r, "speedup": exact["seconds"] / r["seconds"]} for name, r in results.items()},
                      "best_speedup_at_recall_0_95": exact["seconds"] / best["seconds"] if best else None}))


if __name__ == "__main__":
    main()
