"""GAN quality on the real MNIST test split: the leaderboard of dcgan, cgan, icgan and class-conditional
icgan at the same step budget, through the pipeline's own stages and evaluation.

    python benchmarks/gan_quality.py                         # 1500 steps each, 32 filters
    python benchmarks/gan_quality.py --steps 300 --families cgan icgan
    python benchmarks/gan_quality.py --families dcgan cgan --augments none diffaugment ada --set data.limit=1000

The project lives in a temporary folder (its own MLflow store: nothing reaches a user's registry).
Figures: FID in the evaluator's space (a classifier trained in the pipeline on the 9,000 training
images; its held-out accuracy is printed as the judge's ceiling), per-label accuracy for the
conditional families (own-class and swapped for class-conditional IC-GAN), memorisation (share of
near-copies), the discriminator probe and D's overfitting signal (r_t on training and held-out images,
ADA's r_v). ``--augments``: each family once per augmentation of what D sees (train.augment). The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"dcgan": ["train.family=dcgan"], "cgan": ["train.family=cgan"], "icgan": ["train.family=icgan"],
            "icgan_cc": ["train.family=icgan", "train.class_conditional=true"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--families", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--augments", nargs="+", default=[None], choices=["none", "diffaugment", "ada"],
                    help="train.augment of each run (default: params.yaml's)")
    ap.add_argument("--samples", type=int, default=5000, help="evaluate.n_samples")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--root", default=None, help="project folder (default: a temporary one)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides, for every family")
    args = ap.parse_args()

    from ganops import stages
    from ganops.core import params as P
    from ganops.evaluate.leaderboard import leaderboard, markdown

    root = Path(args.root or tempfile.mkdtemp(prefix="ganops-quality-"))
    common = ["data.dataset=mnist", f"data.root={SHARED}", "data.download=false", "data.resolution=32", f"device={args.device}",
              f"train.steps={args.steps}", f"train.g_filters={args.filters}", f"train.d_filters={args.filters}",
              f"evaluate.n_samples={args.samples}", "train.checkpoint_every=100000", "train.sample_every=100000", *args.set]
    seconds: dict[str, float] = {}
    rows = []
    for name in args.families:
        for aug in args.augments:
            p = P.load(REPO / "params.yaml", [*common, *VARIANTS[name], *([f"train.augment.kind={aug}"] if aug else [])])
            label = name if aug is None else f"{name}+{aug}"
            t0 = time.perf_counter()
            stages.run_all(p, root)
            seconds[label] = round(time.perf_counter() - t0, 1)
            print(f"{label}: {seconds[label]} s", flush=True)
            # the variants share one artifact folder: take each row as soon as it is evaluated
            rows += [{**r, "family": f"{r['family']} ({p.train.augment.kind})" if aug else r["family"]}
                     for r in leaderboard(root, p) if r["family"].split()[0] == p.train.family]
    rows.sort(key=lambda r: r.get("fid_evaluator", float("inf")))
    judge = json.loads((root / "data/evaluator" / p.data.dataset / "meta.json").read_text())["metrics"]
    print(markdown(rows))
    print(f"evaluator held-out accuracy (the judge's ceiling): {judge.get('holdout_accuracy')}")
    keep = ("fid_evaluator", "precision_evaluator", "recall_evaluator", "label_accuracy", "label_accuracy_min",
            "label_accuracy_swapped", "instance_label_agreement", "near_copy_fraction_pixels", "probe_discriminator",
            "probe_pixels", "ppl_evaluator", "d_rt_train", "d_rt_holdout", "d_rv")
    print(json.dumps({"benchmark": "gan_quality", "steps": args.steps, "filters": args.filters,
                      "evaluator_holdout_accuracy": judge.get("holdout_accuracy"), "seconds": seconds,
                      "leaderboard": [{"family": r["family"], **{k: r[k] for k in keep if r.get(k) is not None}}
                                      for r in rows]}))


if __name__ == "__main__":
    main()
