"""Domain-transfer quality over seeds and budgets: digits → the real MNIST test split, through the pipeline's
own transfer chain (both datasets, DTN's f, the judges, the translator, its evaluation), as
`ganops run --transfer --set seed=N` runs it.

    python benchmarks/transfer_quality.py                              # DTN at the defaults, seeds 0 1 2
    python benchmarks/transfer_quality.py --seeds 1 --set transfer.source_classifier.epochs=30
    python benchmarks/transfer_quality.py --family cyclegan --steps 600 1200 2400 \\
        --set transfer.batch_size=16 transfer.g_filters=32 transfer.d_filters=32 transfer.ema=false

Each row: transfer accuracy (the target's judge reading the translated held-out source images as their own
labels), its worst class, the resize baseline, FID against MNIST in the judge's space, the judge's own
held-out accuracy, for DTN how well f reads held-out MNIST (the ceiling DTN's f-constancy sets), and the
seconds. Per budget: mean, min, max and spread over the seeds. The project lives in a temporary folder (its
own MLflow store). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
REPO = Path(__file__).resolve().parents[1]
KEEP = ("transfer_accuracy", "transfer_accuracy_min_class", "baseline_accuracy", "fid_target",
        "target_holdout_accuracy", "source_classifier_target_accuracy", "cycle_error_source", "cycle_error_target")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default=None, choices=["dtn", "cyclegan"], help="transfer.family (default: params.yaml's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, nargs="+", default=[None], help="transfer.steps of each run (default: params.yaml's)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--root", default=None, help="project folder (default: a temporary one)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides, for every run")
    args = ap.parse_args()

    from ganops import stages
    from ganops.core import params as P

    root = Path(args.root or tempfile.mkdtemp(prefix="ganops-transfer-"))
    common = [f"transfer.target.root={SHARED}", "transfer.target.download=false", f"device={args.device}",
              "transfer.checkpoint_every=100000", "transfer.sample_every=100000",
              *([f"transfer.family={args.family}"] if args.family else []), *args.set]
    rows = []
    for steps in args.steps:
        for seed in args.seeds:
            p = P.load(REPO / "params.yaml", [*common, f"seed={seed}", *([f"transfer.steps={steps}"] if steps else [])])
            t0 = time.perf_counter()
            results = stages.run_transfer(p, root)
            m = {**results[-1].metrics, **f_reads_target(p, root)}
            row = {"family": p.transfer.family, "steps": p.transfer.steps, "seed": seed,
                   **{k: round(float(m[k]), 4) for k in KEEP if k in m},
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = []
    for steps in sorted({r["steps"] for r in rows}):
        acc = [r["transfer_accuracy"] for r in rows if r["steps"] == steps]
        summary.append({"steps": steps, "seeds": len(acc), "mean": round(statistics.fmean(acc), 4),
                        "min": min(acc), "max": max(acc), "spread": round(max(acc) - min(acc), 4)})
    print("| steps | seed | transfer accuracy | worst class | baseline | FID | f reads MNIST | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['steps']} | {r['seed']} | {r['transfer_accuracy']:.3f} | {r['transfer_accuracy_min_class']:.2f} | "
              f"{r['baseline_accuracy']:.3f} | {r['fid_target']:.1f} | "
              f"{r.get('source_classifier_target_accuracy', float('nan')):.3f} | {r['seconds']:.0f} |")
    for s in summary:
        print(f"{s['steps']} steps: mean {s['mean']:.3f}, min {s['min']:.3f}, max {s['max']:.3f}, "
              f"spread {s['spread']:.3f} over {s['seeds']} seed(s)")
    print(json.dumps({"benchmark": "transfer_quality", "family": rows[0]["family"], "rows": rows, "summary": summary}))


def f_reads_target(p, root: Path) -> dict[str, float]:
    """DTN: f's accuracy on the target's held-out images (f-constancy keeps what f reads, so its misreadings of
    the target become the translator's)."""
    from ganops.catalog.families import TRANSFER_SPECS
    from ganops.core import artifacts as A
    from ganops.data import store
    from ganops.evaluate.evaluator import Evaluator
    from ganops.evaluate.transfer import accuracy
    from ganops.stages.classifier import FILE

    if not TRANSFER_SPECS[p.transfer.family].needs_source_classifier:
        return {}
    f = Evaluator.load(A.classifier_dir(root, p.domain("source")) / FILE)
    images, labels = store.load_holdout(A.dataset_dir(root, p.domain("target")))
    return {"source_classifier_target_accuracy": accuracy(f, images, labels, p.evaluate.batch_size)[0]}


if __name__ == "__main__":
    main()
