"""Evaluation speed: ganops' whole evaluation against torch-fidelity's `calculate_metrics` on CPU.

    python benchmarks/eval_speed.py                                  # 10,000 generated vs 10,000 real
    python benchmarks/eval_speed.py --n-real 2000 --n-fake 2000      # quicker

Both sides score the same images with the same feature extractor, in the same process:

- real images: the real MNIST test split (../shared/data/mnist/MNIST/raw), resized to 32×32; the last
  1,000 double as the held-out images (the benchmark only needs their cost);
- evaluator: the pipeline's classifier evaluator (`ganops.evaluate.evaluator.train`, `--evaluator-epochs`);
- generator: a freshly initialised class-conditional IC-GAN (the family that exercises every metric),
  built as the trainer builds it, conditioned on pixel-encoder instance features with exact k=10
  FAISS neighborhoods.

Timed:
- ours = the evaluator's features of the real images (what the evaluator stage caches) + `report.evaluate`
  (which draws its own samples and writes every picture to a temporary folder);
- baseline = `torch_fidelity.calculate_metrics` (FID, KID, IS, precision/recall) on the same generated
  images (drawn beforehand with the call `report.evaluate` makes) against the same real images, through a
  registered `FeatureExtractorBase` wrapping the same evaluator: its features for FID/KID/PRC, its class
  logits for IS. torch-fidelity's settings follow ours (KID subsets and size, PRC k, seed, batch 500).

A breakdown of ours (each top-level call inside `report.evaluate`, timed by wrapping it, never editing
the library) is printed beside the totals. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganops.core.params import DataParams, EvaluateParams, EvaluatorParams, NeighborsParams, Params, TrainParams
from ganops.embed import extract
from ganops.embed.base import to_float
from ganops.embed.pixel_encoder import PixelEncoder, mean_image
from ganops.evaluate import conditional, instances, memorisation, pictures, ppl, probe, report
from ganops.evaluate import evaluator as E
from ganops.evaluate import metrics as M
from ganops.models import TrainData, load_model
from ganops.neighbors.search import knn
from ganops.train.trainer import Trainer

MNIST_RAW = REPO.parent / "shared" / "data" / "mnist" / "MNIST" / "raw"
EXTRACTOR = "ganops-evaluator"
N_HELD = 1000
BOOKKEEPING = ("n_samples", "non_finite_weights")      # in Report.metrics, but settings/checks, not scores


# ---------------------------------------------------------------- setup (not timed)

def load_real(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` MNIST test images, uint8 N×1×32×32, and their labels, read as the pipeline reads them."""
    from ganops.data.sources import load_source
    from ganops.data.store import prepare

    dp = DataParams(dataset="mnist", root=str(MNIST_RAW.parents[1]), resolution=32, download=False)
    ds = prepare(load_source(dp, MNIST_RAW.parents[2]), dp, 0)
    if len(ds.images) < n:
        raise SystemExit(f"--n-real {n}: the MNIST test split has only {len(ds.images)} images")
    return np.ascontiguousarray(ds.images[:n]), ds.labels[:n].astype(np.int64)


def pixel_embed(train_images: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The pixel encoder as the pipeline applies it (`embed.api.embed_as_dataset`: the dataset's mean image, every call)."""
    return lambda images: extract(PixelEncoder(mean_image(train_images)), images, torch.device("cpu"))


def fresh_weights(p: Params, images: np.ndarray, labels: np.ndarray, h: np.ndarray,
                  neighbors: np.ndarray) -> dict[str, Any]:
    """A freshly initialised G/D of the family in ``p.train``, built by the trainer, in the weights layout."""
    return Trainer(p, TrainData(images, labels, h, neighbors), device="cpu").result().weights()


# ---------------------------------------------------------------- timing of sections

class Sections:
    """Wall time of the outermost wrapped calls (a call inside another wrapped call counts in its caller)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.depth = 0
        self.results: dict[str, Any] = {}

    def wrap(self, fn: Callable, name: str, keep: bool = False) -> Callable:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            t0 = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                self.depth -= 1
                self.calls.append((name, time.perf_counter() - t0))
            if keep and name not in self.results:
                self.results[name] = out
            return out
        return timed

    @contextlib.contextmanager
    def patched(self, targets: list[tuple[Any, str, str]], keep: tuple[str, ...] = ()) -> Iterator[None]:
        saved = [(obj, attr, getattr(obj, attr), attr in vars(obj)) for obj, attr, _ in targets]
        for obj, attr, name in targets:
            setattr(obj, attr, self.wrap(getattr(obj, attr), name, name in keep))
        try:
            yield
        finally:
            for obj, attr, fn, own in saved:
                if own:
                    setattr(obj, attr, fn)
                else:
                    delattr(obj, attr)

    def table(self) -> list[tuple[str, int, float, list[float]]]:
        names: dict[str, list[float]] = {}
        for name, secs in self.calls:
            names.setdefault(name, []).append(secs)
        return sorted(((n, len(s), sum(s), s) for n, s in names.items()), key=lambda r: -r[2])


# ---------------------------------------------------------------- torch-fidelity's side

class ImageSet(torch.utils.data.Dataset):
    """uint8 C×H×W tensors, one per item: torch-fidelity's Dataset input."""

    def __init__(self, images: np.ndarray):
        self.images = torch.from_numpy(np.ascontiguousarray(images))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def register_evaluator(ev: E.Evaluator) -> None:
    """Register ``ev`` with torch-fidelity as a feature extractor: `features` (N×dim) and `logits` (N×classes)."""
    import torch_fidelity
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class EvaluatorExtractor(FeatureExtractorBase):
        def __init__(self, name: str, features_list: list[str], **kwargs: Any):
            super().__init__(name, features_list)
            self.net, self.head = ev.net, ev.head

        @staticmethod
        def get_provided_features_list() -> tuple[str, ...]:
            return "features", "logits"

        @staticmethod
        def get_default_feature_layer_for_metric(metric: str) -> str:
            return "logits" if metric == "isc" else "features"

        @staticmethod
        def can_be_compiled() -> bool:
            return False

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # torch-fidelity hands uint8 N×C×H×W batches: converted exactly as Evaluator.features does
            if x.dtype != torch.uint8:
                raise TypeError(f"expected uint8 images, got {x.dtype}")
            f = self.net(to_float(x, ev.device)).float()
            out = {"features": f}
            if "logits" in self.features_list:
                out["logits"] = self.head(f).float()
            return tuple(out[k] for k in self.features_list)

    torch_fidelity.register_feature_extractor(EXTRACTOR, EvaluatorExtractor)


def run_torch_fidelity(fake: np.ndarray, real: np.ndarray, e: EvaluateParams, save_cpu_ram: bool
                       ) -> tuple[float, dict[str, float], Sections]:
    import torch_fidelity
    from torch_fidelity import metrics as tfm

    sec = Sections()
    names = ("create_feature_extractor", "extract_featuresdict_from_input_id_cached", "isc_featuresdict_to_metric",
             "fid_featuresdict_to_statistics_cached", "fid_statistics_to_metric", "kid_featuresdict_to_metric",
             "prc_featuresdict_to_metric")
    with sec.patched([(tfm, f, f) for f in names]):
        t0 = time.perf_counter()
        out = torch_fidelity.calculate_metrics(
            input1=ImageSet(fake), input2=ImageSet(real), fid=True, kid=True, isc=True, prc=True,
            feature_extractor=EXTRACTOR, cache=False, verbose=False, cuda=False, batch_size=500,
            kid_subsets=e.kid_subsets, kid_subset_size=min(e.kid_subset_size, len(fake), len(real)),
            prc_neighborhood=e.pr_k, rng_seed=e.seed, save_cpu_ram=save_cpu_ram)
        secs = time.perf_counter() - t0
    return secs, {k: float(v) for k, v in out.items()}, sec


# ---------------------------------------------------------------- ours, with a breakdown

def _targets(ev: E.Evaluator, model) -> list[tuple[Any, str, str]]:
    """Every call `report.evaluate` makes at its top level, as (owner, attribute, label); G is built on the
    model's first draw, inside the first `generate`."""
    out: list[tuple[Any, str, str]] = [
        (model, "discriminator", "discriminator"), (model, "data_conditions", "data_conditions"),
        (model, "generate", "generate (fake samples)"),
        (ev, "features_and_labels", "evaluator features+labels of fakes"),
    ]
    out += [(M, f, f"metrics.{f}") for f in ("fid", "kid", "precision_recall", "density_coverage")]
    out += [(conditional, f, f"conditional.{f}") for f in ("per_label_accuracy", "instance_label_agreement")]
    out += [(instances, f, f"instances.{f}") for f in ("score", "held_out_neighbors")]
    out += [(memorisation, "memorisation", "memorisation.memorisation"), (ppl, "path_length", "ppl.path_length")]
    out += [(probe, f, f"probe.{f}") for f in ("discriminator_features", "linear_probe")]
    out += [(pictures, f, f"pictures.{f}") for f in ("instance_panel", "nearest_panel", "sample_grid", "latent_walk",
                                                      "latent_arithmetic", "loss_plot")]
    return out


def run_ours(x: report.Inputs, images: np.ndarray, p: Params, device: torch.device
             ) -> tuple[float, float, report.Report, Sections]:
    sec = Sections()
    embed_held = x.embed_held
    x.embed_held = sec.wrap(embed_held, "embed_held (pixel encoder)")
    try:
        with sec.patched(_targets(x.evaluator, x.model), keep=("generate (fake samples)",)), \
                tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            x.real_features = x.evaluator.features(images, p.evaluate.batch_size)
            t1 = time.perf_counter()
            rep = report.evaluate(x, p, Path(out), device)
            t2 = time.perf_counter()
    finally:
        x.embed_held = embed_held
    return t2 - t0, t1 - t0, rep, sec


# ---------------------------------------------------------------- main

def _warm_imports() -> None:
    """Import what either side imports lazily, so neither pays a first import inside its timing."""
    for name in ("faiss", "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing", "torch_fidelity",
                 "torch_fidelity.metric_fid", "torch_fidelity.metric_kid", "torch_fidelity.metric_prc"):
        importlib.import_module(name)


def _breakdown(sections, whole: float, timed: float, rest_label: str) -> None:
    """Each wrapped call's seconds and share of ``whole``, then what ``timed`` spent outside them."""
    accounted = 0.0
    for name, n, total, each in sections.table():
        accounted += total
        detail = "  [" + ", ".join(f"{s:.2f}" for s in each) + "]" if n > 1 else ""
        print(f"  {total:7.2f} s  {100 * total / whole:5.1f}%  {name} ×{n}{detail}")
    rest = timed - accounted
    print(f"  {rest:7.2f} s  {100 * rest / whole:5.1f}%  {rest_label}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-real", type=int, default=10_000, help="real images (MNIST test, first N)")
    ap.add_argument("--n-fake", type=int, default=10_000, help="generated images (evaluate.n_samples)")
    ap.add_argument("--filters", type=int, default=32, help="G and D base width")
    ap.add_argument("--evaluator-epochs", type=int, default=1, help="evaluator training epochs (timing does not "
                    "depend on its accuracy)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--save-cpu-ram", action="store_true", help="torch-fidelity's save_cpu_ram (no DataLoader "
                    "workers, chunked precision/recall); default: its default, off")
    ap.add_argument("--rounds", type=int, default=1, help="timed rounds of each side, alternating which goes "
                    "first; the median round counts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    # torch-fidelity's default DataLoader starts 4 workers whatever the cores; torch warns each time
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    if args.n_real <= N_HELD:
        raise SystemExit(f"--n-real must exceed the {N_HELD} held-out images")

    t_setup = time.perf_counter()
    p = Params(seed=args.seed, device="cpu",
               train=TrainParams(family="icgan", class_conditional=True, g_filters=args.filters,
                                 d_filters=args.filters),
               evaluator=EvaluatorParams(kind="classifier", epochs=args.evaluator_epochs),
               evaluate=EvaluateParams(n_samples=args.n_fake, kid_subset_size=1000))
    e = p.evaluate
    images, labels = load_real(args.n_real)
    held, held_labels = images[-N_HELD:], labels[-N_HELD:]
    embed = pixel_embed(images)
    h = embed(images)
    neighbors = knn(h, 10, NeighborsParams(use_gpu=False), seed=p.seed).indices
    weights = fresh_weights(p, images, labels, h, neighbors)
    state, ev_metrics = E.train(images, labels, p, device)
    ev = E.Evaluator(state, device)
    x = report.Inputs(model=load_model(weights, device), images=images, labels=labels, held_images=held, held_labels=held_labels,
                      real_features=np.zeros((0, ev.dim), np.float32),
                      held_features=ev.features(held, e.batch_size), evaluator=ev, h=h, neighbors=neighbors,
                      embed_held=embed, inception_note="off in this benchmark (evaluator space only)")
    # the generated images report.evaluate will draw, by the same calls
    y, hc, _ = x.model.data_conditions(e.n_samples, e.seed, h, labels)
    fake = x.model.generate(e.n_samples, seed=e.seed, labels=y, features=hc, batch_size=e.batch_size)
    register_evaluator(ev)
    _warm_imports()
    t_setup = time.perf_counter() - t_setup
    print(f"setup {t_setup:.1f} s: {args.n_real:,} real MNIST test images (last {N_HELD} as held-out), "
          f"{args.n_fake:,} generated; evaluator {ev.kind} dim {ev.dim}, {args.evaluator_epochs} epoch(s) "
          f"{ {k: round(v, 4) for k, v in ev_metrics.items() if k.startswith('final_')} }; "
          f"G/D {args.filters} filters; torch threads {torch.get_num_threads()}")

    # -- timed: ours and torch-fidelity, same process, same images; rounds alternate the order, medians count
    ours_runs, tf_runs = [], []
    for r in range(args.rounds):
        for side in (("ours", "tf") if r % 2 == 0 else ("tf", "ours")):
            if side == "ours":
                ours_runs.append(run_ours(x, images, p, device))
            else:
                tf_runs.append(run_torch_fidelity(fake, images, e, args.save_cpu_ram))
    if args.rounds > 1:
        print(f"rounds: ours {[round(o[0], 2) for o in ours_runs]} s, torch-fidelity "
              f"{[round(t[0], 2) for t in tf_runs]} s (medians below)")
    secs_ours, secs_real_f, rep, sec = sorted(ours_runs, key=lambda o: o[0])[(len(ours_runs) - 1) // 2]
    secs_tf, tf, tf_sec = sorted(tf_runs, key=lambda t: t[0])[(len(tf_runs) - 1) // 2]
    drawn = sec.results.get("generate (fake samples)")
    same_images = drawn is not None and np.array_equal(drawn, fake)

    scores = {k: v for k, v in rep.metrics.items() if k not in BOOKKEEPING}
    ratio = secs_ours / secs_tf
    # in the pipeline the real features are the evaluator stage's, computed once per evaluator
    ratio_cached = (secs_ours - secs_real_f) / secs_tf
    print(f"\nours (ganops)     : {secs_ours:7.2f} s = real features {secs_real_f:.2f} s + report.evaluate "
          f"{secs_ours - secs_real_f:.2f} s; {len(scores)} metrics + {len(rep.pictures)} pictures")
    print(f"torch-fidelity    : {secs_tf:7.2f} s; {len(tf)} metrics (save_cpu_ram={args.save_cpu_ram})")
    print(f"ratio ours / tf   : {ratio:7.2f}  (goal ≤ 1.5)   same generated images: {same_images}")
    print(f"  with the real features cached, as the pipeline has them: {ratio_cached:.2f}")

    print("\nbreakdown of report.evaluate (outermost wrapped calls):")
    _breakdown(sec, secs_ours, secs_ours - secs_real_f, "(inline code between the calls)")
    print("\nbreakdown of torch-fidelity's calculate_metrics:")
    _breakdown(tf_sec, secs_tf, secs_tf, "(the rest)")

    print("\nsame figures, both sides:")
    pairs = [("fid", f"fid_{report.SPACE}", "frechet_inception_distance"),
             ("kid mean", f"kid_{report.SPACE}_mean", "kernel_inception_distance_mean"),
             ("precision", f"precision_{report.SPACE}", "precision"), ("recall", f"recall_{report.SPACE}", "recall")]
    for label, ours_key, tf_key in pairs:
        print(f"  {label:10s} ours {scores.get(ours_key, float('nan')):.6g}  "
              f"torch-fidelity {tf.get(tf_key, float('nan')):.6g}")
    print(f"\nmetrics ours ({len(scores)}): {', '.join(sorted(scores))}")
    print(f"pictures ours ({len(rep.pictures)}): {', '.join(sorted(rep.pictures))}")
    print(f"metrics torch-fidelity ({len(tf)}): {', '.join(sorted(tf))}")

    result = {"benchmark": "eval_speed", "baseline": "torch_fidelity.calculate_metrics (fid, kid, isc, prc), same "
              "extractor and images", "n_real": args.n_real, "n_fake": args.n_fake, "device": "cpu",
              "threads": torch.get_num_threads(), "seconds_ours": round(secs_ours, 3),
              "seconds_real_features": round(secs_real_f, 3), "seconds_torch_fidelity": round(secs_tf, 3),
              "ratio": round(ratio, 3), "ratio_real_features_cached": round(ratio_cached, 3),
              "metrics_ours": len(scores), "metrics_torch_fidelity": len(tf),
              "goal_ratio": 1.5, "rounds": args.rounds,
              "same_images": bool(same_images)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
