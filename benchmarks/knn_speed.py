"""Exact k-NN speed: ganops' FAISS search vs float32 GEMM throughput and scikit-learn's brute force.

    python benchmarks/knn_speed.py                 # N=100,000, d=512, k=50 (the issue's setting)
    python benchmarks/knn_speed.py --n 20000       # quicker
    python benchmarks/knn_speed.py --n 30000 100000 300000 1000000 --skip-sklearn   # across N

Each measurement runs in its own process so that its peak memory (ru_maxrss above the process's
baseline after imports) is its own. Prints a table and, as the last line, one JSON object.
Effective throughput = 2·N²·d FLOP / seconds (the GEMM an exact search must do). Above ``--sample-above``
(default 100,000) the search is timed on ``--queries`` of the N queries (the production path,
``exact_neighbors``: every query against all N) and extrapolated by N / queries, with the full N×k outputs
allocated and written, so the peak memory is the whole search's; the figures say so (``sampled_queries``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _features(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    x /= np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]  # in place; einsum avoids an N×d temporary
    return x


def _child(what: str, n: int, d: int, k: int, seed: int, queries: int = 0) -> dict:
    threads = len(os.sched_getaffinity(0))
    if what == "gemm":
        import torch

        torch.set_num_threads(threads)
        # The shape of one FAISS tile row-block: queries × database rows × d.
        a = torch.randn(4096, d)
        b = torch.randn(d, 8192)
        out = torch.empty(4096, 8192)
        torch.matmul(a, b, out=out)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 10:
            torch.matmul(a, b, out=out)
            reps += 1
        secs = time.perf_counter() - t0
        return {"gemm_gflops": 2 * 4096 * 8192 * d * reps / secs / 1e9, "threads": threads}

    sampled = None
    if what == "faiss":
        from ganops.core.params import NeighborsParams
        from ganops.neighbors.search import exact_neighbors, knn, set_threads

        base = _rss_mib()
        x = _features(n, d, seed)
        if queries and queries < n:
            set_threads()
            ids_all = np.full((n, k), -1, np.int64)       # what the whole search holds (written: resident)
            sims_all = np.full((n, k), -1, np.float32)
            rows = np.arange(queries, dtype=np.int64)    # a contiguous block: views, as the full search's batches
            t0 = time.perf_counter()
            ids_all[rows] = exact_neighbors(x, rows, k)
            secs = (time.perf_counter() - t0) * n / queries
            sims_all[rows] = 1.0
            ids, sampled = ids_all[:100], queries
        else:
            t0 = time.perf_counter()
            res = knn(x, k, NeighborsParams(k=k))
            secs = time.perf_counter() - t0
            ids = res.indices
    elif what == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        base = _rss_mib()
        x = _features(n, d, seed)
        t0 = time.perf_counter()
        nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute", n_jobs=threads).fit(x)
        _, ids = nn.kneighbors(x)
        secs = time.perf_counter() - t0
        ids = ids[:, 1:]
    else:
        raise SystemExit(f"unknown measurement {what!r}")
    inputs_outputs = (x.nbytes + n * k * (8 + 4)) / 2**20
    return {"seconds": secs, "gflops": 2 * n * n * d / secs / 1e9, "peak_mib_above_baseline": _peak_mib() - base,
            "features_plus_outputs_mib": inputs_outputs, "checksum": int(np.asarray(ids[:100]).sum()),
            "threads": threads, "sampled_queries": sampled}


def _run(what: str, args: argparse.Namespace, n: int) -> dict:
    queries = args.queries if what == "faiss" and n > args.sample_above else 0
    cmd = [sys.executable, __file__, "--child", what, "--n", str(n), "--d", str(args.d), "--k", str(args.k),
           "--seed", str(args.seed), "--queries", str(queries)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=8192, help="queries timed above --sample-above")
    ap.add_argument("--sample-above", type=int, default=100_000)
    ap.add_argument("--skip-sklearn", action="store_true", help="skip the (slow) scikit-learn baseline")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.n[0], args.d, args.k, args.seed, args.queries)))
        return

    gemm = _run("gemm", args, args.n[0])
    rows = []
    print(f"exact k-NN  d={args.d} k={args.k}; torch.matmul float32 GEMM {gemm['gemm_gflops']:.1f} GFLOP/s")
    for n in args.n:
        ours = _run("faiss", args, n)
        sk = None if args.skip_sklearn else _run("sklearn", args, n)
        row = {"n": n, "faiss_seconds": ours["seconds"], "faiss_gflops": ours["gflops"],
               "fraction_of_gemm": ours["gflops"] / gemm["gemm_gflops"],
               "peak_mib": ours["peak_mib_above_baseline"],
               "features_plus_outputs_mib": ours["features_plus_outputs_mib"],
               "peak_ratio": ours["peak_mib_above_baseline"] / ours["features_plus_outputs_mib"],
               "sampled_queries": ours["sampled_queries"]}
        if sk:
            row.update(sklearn_seconds=sk["seconds"], speedup_vs_sklearn=sk["seconds"] / ours["seconds"],
                       sklearn_peak_mib=sk["peak_mib_above_baseline"], same_neighbors=sk["checksum"] == ours["checksum"])
        rows.append(row)
        how = f" (extrapolated from {ours['sampled_queries']:,} queries)" if ours["sampled_queries"] else ""
        print(f"  N={n:>9,}: {ours['gflops']:7.1f} GFLOP/s {ours['seconds']:8.1f} s{how} = "
              f"{row['fraction_of_gemm']:.0%} of GEMM; peak {row['peak_mib']:.0f} MiB = {row['peak_ratio']:.2f}× "
              f"features+outputs ({row['features_plus_outputs_mib']:.0f} MiB)"
              + (f"; scikit-learn {sk['seconds']:.1f} s ({row['speedup_vs_sklearn']:.1f}× slower)" if sk else ""))
    print(json.dumps({"benchmark": "knn_speed", "baseline": "torch.matmul float32 GEMM GFLOP/s", "d": args.d,
                      "k": args.k, "threads": gemm["threads"], "gemm_gflops": gemm["gemm_gflops"],
                      "ratio": min(r["fraction_of_gemm"] for r in rows),
                      "worst_peak_ratio": max(r["peak_ratio"] for r in rows), "by_n": rows}))


if __name__ == "__main__":
    main()
