"""Exact k-NN speed: ganops' FAISS search vs float32 GEMM throughput and scikit-learn's brute force.

    python benchmarks/knn_speed.py                 # N=100,000, d=512, k=50 (the issue's setting)
    python benchmarks/knn_speed.py --n 20000       # quicker
    python benchmarks/knn_speed.py --n 30000 100000 300000 1000000 --skip-sklearn   # across N

Each measurement runs in its own process so that its peak memory (ru_maxrss above the process's
baseline after imports and a small warm-up search) is its own; each N is set against a GEMM measured just before it
(a shared machine's speed drifts). Prints a table and, as the last line, one JSON object.

Effective throughput = 2·N²·d FLOP / seconds (the GEMM a search of every query against all N does). The
search computes each pair of row blocks once (the similarity is symmetric), so its effective throughput can
pass GEMM's. Above ``--sample-above`` (default 100,000) the whole search of the first ``--sample-rows`` rows
is timed and extrapolated by the count of block pairs (a bound: at larger N fewer entries enter the heaps),
with the full N×k outputs allocated and written, so the peak memory is near the whole search's; the figures
say so (``sampled_rows``).
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


def all_pairs_seconds(x: np.ndarray, k: int, rows: int):
    """Seconds of ganops' exact search (``knn``) over all of ``x``, from its whole search over the first ``rows``
    rows, extrapolated by the count of pairs of row blocks it computes (a bound: at larger N fewer entries enter
    the heaps). Returns (seconds, the rows' result)."""
    from ganops.core.params import NeighborsParams
    from ganops.neighbors.search import block_rows, knn, set_threads

    set_threads()
    n = len(x)
    t0 = time.perf_counter()
    res = knn(x[:rows], k, NeighborsParams(k=k))
    secs = time.perf_counter() - t0
    blocks = -(-n // block_rows(n)), -(-rows // block_rows(rows))
    return secs * (blocks[0] * (blocks[0] + 1)) / (blocks[1] * (blocks[1] + 1)), res


def _child(what: str, n: int, d: int, k: int, seed: int, sample_rows: int = 0) -> dict:
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
        from ganops.neighbors.search import knn

        # A small search first: the BLAS's and FAISS's kernels load on first use, and their code pages are the
        # libraries', not the search's memory.
        knn(_features(2048, d, seed), min(k, 2047), NeighborsParams(k=min(k, 2047)))
        base = _rss_mib()
        x = _features(n, d, seed)
        if sample_rows and sample_rows < n:
            ids_all = np.full((n, k), -1, np.int64)       # what the whole search holds (written: resident)
            sims_all = np.full((n, k), -1, np.float32)
            secs, res = all_pairs_seconds(x, k, sample_rows)
            ids_all[:sample_rows], sims_all[:sample_rows] = res.indices, res.similarities
            ids, sampled = ids_all[:100], sample_rows
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
            "threads": threads, "sampled_rows": sampled}


def _run(what: str, args: argparse.Namespace, n: int) -> dict:
    rows = args.sample_rows if what == "faiss" and n > args.sample_above else 0
    cmd = [sys.executable, __file__, "--child", what, "--n", str(n), "--d", str(args.d), "--k", str(args.k),
           "--seed", str(args.seed), "--sample-rows", str(rows)]
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
    ap.add_argument("--sample-rows", type=int, default=100_000, help="above --sample-above: the rows whose whole "
                    "search is timed, extrapolated by the count of block pairs")
    ap.add_argument("--sample-above", type=int, default=100_000)
    ap.add_argument("--skip-sklearn", action="store_true", help="skip the (slow) scikit-learn baseline")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.n[0], args.d, args.k, args.seed, args.sample_rows)))
        return

    rows, gemms = [], []
    print(f"exact k-NN  d={args.d} k={args.k}; each N against torch.matmul's float32 GEMM measured just before it")
    for n in args.n:
        # GEMM beside each N: a shared machine's speed drifts by ±10% over minutes
        gemm = _run("gemm", args, n)
        gemms.append(gemm["gemm_gflops"])
        ours = _run("faiss", args, n)
        sk = None if args.skip_sklearn else _run("sklearn", args, n)
        row = {"n": n, "gemm_gflops": gemm["gemm_gflops"], "faiss_seconds": ours["seconds"],
               "faiss_gflops": ours["gflops"],
               "fraction_of_gemm": ours["gflops"] / gemm["gemm_gflops"],
               "peak_mib": ours["peak_mib_above_baseline"],
               "features_plus_outputs_mib": ours["features_plus_outputs_mib"],
               "peak_ratio": ours["peak_mib_above_baseline"] / ours["features_plus_outputs_mib"],
               "sampled_rows": ours["sampled_rows"]}
        if sk:
            row.update(sklearn_seconds=sk["seconds"], speedup_vs_sklearn=sk["seconds"] / ours["seconds"],
                       sklearn_peak_mib=sk["peak_mib_above_baseline"], same_neighbors=sk["checksum"] == ours["checksum"])
        rows.append(row)
        how = f" (extrapolated from the first {ours['sampled_rows']:,} rows)" if ours["sampled_rows"] else ""
        print(f"  N={n:>9,}: {ours['gflops']:7.1f} GFLOP/s {ours['seconds']:8.1f} s{how} = "
              f"{row['fraction_of_gemm']:.0%} of GEMM ({gemm['gemm_gflops']:.1f}); "
              f"peak {row['peak_mib']:.0f} MiB = {row['peak_ratio']:.2f}× "
              f"features+outputs ({row['features_plus_outputs_mib']:.0f} MiB)"
              + (f"; scikit-learn {sk['seconds']:.1f} s ({row['speedup_vs_sklearn']:.1f}× slower)" if sk else ""))
    print(json.dumps({"benchmark": "knn_speed", "baseline": "torch.matmul float32 GEMM GFLOP/s", "d": args.d,
                      "k": args.k, "threads": gemm["threads"], "gemm_gflops": gemms,
                      "ratio": min(r["fraction_of_gemm"] for r in rows),
                      "worst_peak_ratio": max(r["peak_ratio"] for r in rows), "by_n": rows}))


if __name__ == "__main__":
    main()
