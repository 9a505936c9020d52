"""GAN quality on the real MNIST test split: the leaderboard of dcgan, cgan, icgan and class-conditional
icgan at the same step budget, through the pipeline's own stages and evaluation.

    python benchmarks/gan_quality.py                         # 1500 steps each, 32 filters
    python benchmarks/gan_quality.py --steps 300 --families cgan icgan
    python benchmarks/gan_quality.py --families dcgan cgan --augments none diffaugment ada --set data.limit=1000
    python benchmarks/gan_quality.py --families dcgan icgan --instances digits   # IC-GAN on digits' instances

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
            "icgan_cc": ["train.family=icgan", "train.class_conditional=true"],
            "icgan_swap": ["train.family=icgan", "train.class_conditional=true", "train.class_swap=0.5"]}


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
    ap.add_argument("--instances", default=None, metavar="DATASET|FOLDER",
                    help="also condition the IC-GAN on this dataset's instances (ganops sample --instances) and score "
                         "its samples against that dataset, beside the IC-GAN's own draw and the DCGAN's")
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
            tag = f" ({p.train.augment.kind})" if aug else ""
            tag += f" (class_swap {p.train.class_swap})" if p.train.class_swap else ""
            rows += [{**r, "family": r["family"] + tag}
                     for r in leaderboard(root, p) if r["family"].split()[0] == p.train.family]
    rows.sort(key=lambda r: r.get("fid_evaluator", float("inf")))
    transfer = on_other_dataset(root, args.instances, common, args.families) if args.instances else None
    judge = json.loads((root / "data/evaluator" / p.data.dataset / "meta.json").read_text())["metrics"]
    print(markdown(rows))
    print(f"evaluator held-out accuracy (the judge's ceiling): {judge.get('holdout_accuracy')}")
    keep = ("fid_evaluator", "precision_evaluator", "recall_evaluator", "label_accuracy", "label_accuracy_min",
            "label_accuracy_swapped", "instance_label_agreement", "near_copy_fraction_pixels", "probe_discriminator",
            "probe_pixels", "ppl_evaluator", "d_rt_train", "d_rt_holdout", "d_rv")
    print(json.dumps({"benchmark": "gan_quality", "steps": args.steps, "filters": args.filters,
                      "evaluator_holdout_accuracy": judge.get("holdout_accuracy"), "seconds": seconds,
                      "leaderboard": [{"family": r["family"], **{k: r[k] for k in keep if r.get(k) is not None}}
                                      for r in rows],
                      **({"on_instances": transfer} if transfer else {})}))


def on_other_dataset(root: Path, spec: str, common: list[str], families: list[str]) -> dict:
    """The IC-GAN conditioned on ``spec``'s instances (one sample each) and its own draw p(x), through the
    pipeline's `evaluate_on_instances` stage, and the DCGAN's samples (as many), each scored against
    ``spec``'s images in the evaluator's space."""
    from ganops import stages
    from ganops.commands.sample import load_instances, sample
    from ganops.core import artifacts as A
    from ganops.core import params as P
    from ganops.evaluate import on_instances
    from ganops.evaluate.evaluator import Evaluator
    from ganops.models import load_model

    if "icgan" not in families:
        raise SystemExit("--instances needs the icgan family in --families")
    p = P.load(REPO / "params.yaml", [*common, *VARIANTS["icgan"], f"on_instances.dataset={spec}",
                                      "on_instances.limit=null"])
    m = stages.run_stage("evaluate_on_instances", p, root).metrics
    mine = {k: v for k, v in m.items() if not k.startswith("own_")}
    out = {f"icgan on {spec}'s instances": mine, "icgan, its own instances": {k[4:]: v for k, v in m.items()
                                                                             if k.startswith("own_")}}
    if "dcgan" in families:
        q = P.load(REPO / "params.yaml", [*common, *VARIANTS["dcgan"]])
        n = int(m["n_instances"])
        ev = Evaluator.load(A.evaluator_dir(root, p) / "evaluator.pt")
        cfg = load_model(A.generator_dir(root, p) / "model.pt", kind="generator").cfg
        raw = load_instances(spec, p, root, cfg.channels, cfg.resolution)     # as the stage prepared them
        e = p.evaluate
        out["dcgan"] = on_instances.named(on_instances.score(
            ev, raw.images, sample(q, root, n, e.seed), batch_size=e.batch_size, kid_subsets=e.kid_subsets,
            kid_subset_size=e.kid_subset_size, seed=e.seed, pr_k=e.pr_k, dc_k=e.dc_k))
    print(f"against {spec} ({int(m['n_instances'])} images, the evaluator's space):")
    for name, row in out.items():
        print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    return {name: {k: round(v, 4) for k, v in row.items()} for name, row in out.items()}


if __name__ == "__main__":
    main()
