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

With ``data.limit`` the pipeline's own figures compare the samples with the few images G trained on, so a
G that copies them scores well. ``--reference full`` (the default then) also scores every row as ADA
(Karras et al. 2020) scores its limited-data runs: against the whole dataset (all 10,000 MNIST test images,
in the space of an evaluator trained on the whole dataset), as ``fid_full``, ``precision_full``,
``recall_full``, ``kid_full``.

With ``data.limit`` two rows of real images come first, scored as the samples are: ``real, not trained on``
(as many of the dataset's other images as there are samples: where a generator of the data itself lands)
and ``training images, copied`` (the training images drawn with replacement: a G that memorised). A
training-reference figure below the first row is closer to the training images than new real data is.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

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
    ap.add_argument("--reference", choices=["training", "full"], default=None,
                    help="full: also score against the whole dataset (default with data.limit)")
    ap.add_argument("--instances", default=None, metavar="DATASET|FOLDER",
                    help="also condition the IC-GAN on this dataset's instances (ganops sample --instances) and score "
                         "its samples against that dataset, beside the IC-GAN's own draw and the DCGAN's")
    args = ap.parse_args()

    from ganops import stages
    from ganops.core import artifacts as A
    from ganops.core import params as P
    from ganops.evaluate.leaderboard import leaderboard, markdown

    root = Path(args.root or tempfile.mkdtemp(prefix="ganops-quality-"))
    common = ["data.dataset=mnist", f"data.root={SHARED}", "data.download=false", "data.resolution=32", f"device={args.device}",
              f"train.steps={args.steps}", f"train.g_filters={args.filters}", f"train.d_filters={args.filters}",
              f"evaluate.n_samples={args.samples}", "train.checkpoint_every=100000", "train.sample_every=100000", *args.set]
    limited = any(a.startswith("data.limit=") and a != "data.limit=null" for a in args.set)
    full = FullReference(root / "full_reference", common) if (args.reference or ("full" if limited else
                                                                                   "training")) == "full" else None
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
            extra = full.score(A.generator_dir(root, p) / "model.pt", p, root) if full else {}
            rows += [{**r, **extra, "family": r["family"] + tag}
                     for r in leaderboard(root, p) if r["family"].split()[0] == p.train.family]
    rows.sort(key=lambda r: r.get("fid_evaluator", float("inf")))
    if full:
        rows = full.real_rows(root, p) + rows
    transfer = on_other_dataset(root, args.instances, common, args.families) if args.instances else None
    judge = json.loads((root / "data/evaluator" / p.data.dataset / "meta.json").read_text())["metrics"]
    print(markdown(rows))
    print(f"evaluator held-out accuracy (the judge's ceiling): {judge.get('holdout_accuracy')}")
    keep = ("fid_evaluator", "precision_evaluator", "recall_evaluator", "label_accuracy", "label_accuracy_min",
            "label_accuracy_swapped", "instance_label_agreement", "near_copy_fraction_pixels", "probe_discriminator",
            "probe_pixels", "ppl_evaluator", "d_rt_train", "d_rt_holdout", "d_rv", *FullReference.KEYS)
    print(json.dumps({"benchmark": "gan_quality", "steps": args.steps, "filters": args.filters,
                      "evaluator_holdout_accuracy": judge.get("holdout_accuracy"), "seconds": seconds,
                      "leaderboard": [{"family": r["family"], **{k: r[k] for k in keep if r.get(k) is not None}}
                                      for r in rows],
                      **({"on_instances": transfer} if transfer else {})}))


class FullReference:
    """The whole dataset (``data.limit`` lifted) and its evaluator, built once in ``folder``: the reference a
    generator trained on a subset is scored against (ADA's protocol), so copying the subset does not pay."""

    KEYS = ("fid_full", "kid_full", "precision_full", "recall_full")

    def __init__(self, folder: Path, common: list[str]):
        from ganops import stages
        from ganops.core import artifacts as A
        from ganops.core import params as P
        from ganops.data import store
        from ganops.evaluate.evaluator import Evaluator

        q = P.load(REPO / "params.yaml", [*common, "data.limit=null"])
        edir = A.evaluator_dir(folder, q)
        if not (edir / "evaluator.pt").exists():      # the folder is this benchmark's own: built once
            for stage in ("dataset", "evaluator"):
                stages.run_stage(stage, q, folder)
        self.evaluator = Evaluator.load(edir / "evaluator.pt")
        self.real = np.concatenate([A.load_npy(edir / "features.npy", "evaluator", mmap=False),
                                    A.load_npy(edir / "holdout_features.npy", "evaluator", mmap=False)])
        self.images = np.concatenate([np.asarray(store.load_images(A.dataset_dir(folder, q))),
                                      np.asarray(store.load_holdout(A.dataset_dir(folder, q))[0])])
        n = len(self.images)
        print(f"full reference: {n} images, evaluator held-out accuracy "
              f"{A.read_meta(edir)['metrics'].get('holdout_accuracy')}", flush=True)

    def score(self, model_path: Path, p, root: Path) -> dict[str, float]:
        """The generator at ``model_path`` (trained with ``p`` in ``root``), drawn as the evaluation draws it."""
        from ganops.core import artifacts as A
        from ganops.data import store
        from ganops.models import load_model

        e = p.evaluate
        model = load_model(model_path, kind="generator")
        h = A.load_npy(A.embeddings_dir(root, p) / "features.npy", "embeddings") if model.conditions.instance else None
        y, h, _ = model.data_conditions(e.n_samples, e.seed, h, store.load_labels(A.dataset_dir(root, p)))
        fake = self.evaluator.features(model.generate(e.n_samples, seed=e.seed, labels=y, features=h,
                                                      batch_size=e.batch_size), e.batch_size)
        return self._scores(fake, e)

    def _scores(self, fake: np.ndarray, e, real: np.ndarray | None = None) -> dict[str, float]:
        from ganops.evaluate import metrics as M

        real = self.real if real is None else real
        kid, _ = M.kid(real, fake, e.kid_subsets, e.kid_subset_size, seed=e.seed)
        prdc = M.prdc(real, fake, e.pr_k, e.dc_k)
        return {"fid_full": M.fid(real, fake), "kid_full": kid, "precision_full": prdc["precision"],
                "recall_full": prdc["recall"]}

    def real_rows(self, root: Path, p) -> list[dict]:
        """Real images scored as samples are, in both references: the dataset's images outside ``data.limit``
        (a generator of the data itself; in the full reference, against the rest of it) and the training
        images redrawn with replacement (a G that copies)."""
        from ganops.core import artifacts as A
        from ganops.data import store
        from ganops.evaluate import metrics as M
        from ganops.evaluate.evaluator import Evaluator

        e = p.evaluate
        edir, ddir = A.evaluator_dir(root, p), A.dataset_dir(root, p)
        evaluator = Evaluator.load(edir / "evaluator.pt")
        train_features = A.load_npy(edir / "features.npy", "evaluator")
        train = np.asarray(store.load_images(ddir))
        seen = {x.tobytes() for x in np.concatenate([train, np.asarray(store.load_holdout(ddir)[0])])}
        unseen = np.flatnonzero([x.tobytes() not in seen for x in self.images])
        rng = np.random.default_rng(e.seed)
        new = rng.choice(unseen, min(e.n_samples, len(unseen)), replace=False)
        rest = np.ones(len(self.real), bool)
        rest[new] = False                         # self.real's rows are self.images's, in the same order
        rows = []
        for name, images, full_real in (("real, not trained on", self.images[new], self.real[rest]),
                                        ("training images, copied", train[rng.choice(len(train), e.n_samples)],
                                         None)):
            own = evaluator.features(images, e.batch_size)
            prdc = M.prdc(train_features, own, e.pr_k, e.dc_k)
            rows.append({"family": name, "fid_evaluator": M.fid(train_features, own),
                         "precision_evaluator": prdc["precision"], "recall_evaluator": prdc["recall"],
                         **self._scores(self.evaluator.features(images, e.batch_size), e, full_real)})
        return rows


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
