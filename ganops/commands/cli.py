"""The command line: ``ganops stage NAME``, ``ganops run``, ``ganops params``, ``ganops sample``,
``ganops translate``, ``ganops leaderboard``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

from ganops.core import params as P
from ganops.core.errors import describe, user_errors


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. --set neighbors.k=20 (repeatable)")
    parser.add_argument("--root", default=".", help="project root holding data/ and mlflow.db (default: .)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def _nproc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nproc", type=int, default=None, metavar="N",
                        help="train on N processes on this machine (one per GPU), launched with torchrun: "
                             "distributed.nproc_per_node=N")


def build_parser() -> argparse.ArgumentParser:
    from ganops.core.identity import ALL_STAGES, STAGES
    from ganops.core.params import DOMAINS

    parser = argparse.ArgumentParser(prog="ganops", description="GAN research pipeline: stages and tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    stage = sub.add_parser("stage", help="run one stage")
    stage.add_argument("name", choices=ALL_STAGES)
    stage.add_argument("--domain", choices=DOMAINS, default=None,
                       help="dataset / evaluator: build it for this side of the domain transfer (transfer.source "
                            "or transfer.target's data keys); classifier (DTN's f) runs on the source")
    _common(stage)
    _nproc(stage)
    run = sub.add_parser("run", help="run the chain of stages in order")
    run.add_argument("--until", choices=STAGES, default=None, help="stop after this stage")
    run.add_argument("--transfer", action="store_true",
                     help="run the domain-transfer chain of transfer.family instead: both domains' datasets, "
                          "DTN's f, the judges, the translator, its evaluation")
    _common(run)
    _nproc(run)
    tr = sub.add_parser("translate", help="translate your own images (a folder) with the trained domain-transfer model")
    tr.add_argument("--in", dest="inp", required=True, type=Path, help="folder of source-domain images (searched "
                    "recursively)")
    tr.add_argument("--out", required=True, type=Path, help="folder for the translations: one per input, under the "
                    "same relative name")
    tr.add_argument("--force", action="store_true", help="overwrite translations that already exist in --out")
    tr.add_argument("--skip-corrupt", action="store_true", help="translate the readable images and list the "
                    "unreadable ones (default: refuse, naming them)")
    tr.add_argument("--reverse", action="store_true", help="cyclegan: translate target-domain images to the source")
    tr.add_argument("--model", default=None, metavar="champion|VERSION",
                    help="a registered version (models:/ganops-<source>-to-<target>-<family>@champion, or a version "
                         "number) instead of the translator artifact of these parameters")
    _common(tr)
    show = sub.add_parser("params", help="print the effective parameters (validated) as YAML")
    _common(show)
    smp = sub.add_parser("sample", help="generate images with the trained generator into a PNG grid")
    smp.add_argument("--n", type=int, default=None, help="number of samples (default 64)")
    smp.add_argument("--out", default="samples.png", help="PNG file to write (default samples.png)")
    smp.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    smp.add_argument("--instance", type=Path, default=None,
                     help="IC-GAN: an image file; samples are generated from its neighborhood")
    smp.add_argument("--instances", default=None, metavar="DATASET|FOLDER",
                     help="IC-GAN: condition on every image of another dataset (a data.dataset name, or a folder "
                          "of images), embedded with the encoder G was trained with, in its order (a folder's "
                          "sorted paths); the grid shows each instance before its samples, --npy holds them all")
    smp.add_argument("--per-instance", type=int, default=1, help="with --instances: samples per instance (default 1)")
    smp.add_argument("--instances-root", default=None, metavar="DIR",
                     help="with --instances and a downloadable dataset: its cache (default data.root when it is the "
                          "training dataset, else data/raw)")
    smp.add_argument("--instances-limit", type=int, default=None, metavar="N",
                     help="with --instances: the first N images only")
    smp.add_argument("--skip-corrupt", action="store_true", help="with --instances and a folder: skip unreadable "
                     "files (listed in the log) instead of refusing them")
    smp.add_argument("--label", type=int, default=None, help="cgan / class-conditional icgan: the class (with "
                     "--instances: given to every instance, the class swap)")
    smp.add_argument("--npy", action="store_true", help="also write the uint8 N×C×H×W array next to the PNG")
    smp.add_argument("--model", default=None, metavar="champion|VERSION",
                     help="sample a registered version (models:/ganops-<dataset>-<family>@champion, or a version "
                          "number) instead of the generator artifact of these parameters")
    _common(smp)
    board = sub.add_parser("leaderboard", help="print every family's evaluation on the dataset, best FID first")
    _common(board)
    return parser


def _sample(args: argparse.Namespace, p: P.Params) -> int:
    import numpy as np

    from ganops.commands.sample import sample
    from ganops.core.artifacts import atomic_save_npy
    from ganops.core.visual import save_grid

    if args.seed < 0:
        raise P.ParamsError(f"--seed {args.seed}: a noise seed is an integer ≥ 0")
    if Path(args.out).suffix.lower() != ".png":
        raise P.ParamsError(f"--out {args.out}: the grid is written as PNG; give a file name ending in .png")
    if args.instances is not None:
        return _sample_instances(args, p)
    extra = [f for f, v in (("--per-instance", args.per_instance != 1), ("--instances-root", args.instances_root),
                            ("--instances-limit", args.instances_limit), ("--skip-corrupt", args.skip_corrupt))
             if v]
    if extra:
        raise P.ParamsError(f"{extra[0]} applies with --instances only")
    n = 64 if args.n is None else args.n
    if n < 1:
        raise P.ParamsError(f"--n {n}: the number of samples must be ≥ 1")
    images = sample(p, Path(args.root), n, args.seed, args.instance, args.label, model=args.model)
    out = save_grid(images, Path(args.out), nrow=int(np.ceil(np.sqrt(len(images)))))
    if args.npy:
        atomic_save_npy(out.with_suffix(".npy"), images)
    print(f"sample: {out} ({len(images)} images)")
    return 0


def _sample_instances(args: argparse.Namespace, p: P.Params) -> int:
    from ganops.commands.sample import sample_instances
    from ganops.core.artifacts import atomic_save_npy
    from ganops.evaluate.pictures import instances_grid

    if args.n is not None or args.instance is not None:
        raise P.ParamsError(f"{'--n' if args.n is not None else '--instance'} does not apply with --instances: "
                            "each instance of the dataset gets --per-instance samples")
    if args.instances_limit is not None and args.instances_limit < 1:
        raise P.ParamsError(f"--instances-limit {args.instances_limit}: the number of images must be ≥ 1")
    got = sample_instances(p, Path(args.root), args.instances, args.per_instance, args.seed, args.label,
                           model=args.model, data_root=args.instances_root, limit=args.instances_limit,
                           skip_corrupt=args.skip_corrupt)
    out, shown = instances_grid(Path(args.out), got.instances, got.samples, got.per_instance)
    if args.npy:
        atomic_save_npy(out.with_suffix(".npy"), got.samples)
    n = len(got.instances)
    print(f"sample: {out} ({n} instances × {got.per_instance} sample{'s' if got.per_instance > 1 else ''}"
          f"{'' if shown == n else f'; the picture shows the first {shown}'})"
          + (f", {out.with_suffix('.npy')} ({len(got.samples)} samples, instance by instance)" if args.npy else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # which SIMD build loaded is not news
    try:
        if getattr(args, "nproc", None) is not None:
            if args.nproc < 1:
                raise P.ParamsError(f"--nproc {args.nproc}: the number of processes must be ≥ 1")
            args.overrides.append(f"distributed.nproc_per_node={args.nproc}")
        p = P.load(Path(args.root) / args.params, args.overrides, required=True)
        if args.command == "params":
            sys.stdout.write(yaml.safe_dump(p.model_dump(), sort_keys=False))
            return 0
        if args.command == "sample":
            return _sample(args, p)
        if args.command == "translate":
            from ganops.commands.translate import translate_folder

            report = translate_folder(p, Path(args.root), args.inp, args.out, force=args.force,
                                      skip_corrupt=args.skip_corrupt, reverse=args.reverse, model=args.model)
            print(report.summary())
            return 0
        if args.command == "leaderboard":
            from ganops.evaluate.leaderboard import leaderboard, markdown

            print(markdown(leaderboard(Path(args.root), p)))
            return 0
        from ganops import stages
        from ganops.tracking.runs import RunContext

        ctx = RunContext.from_environment("cli")
        if args.command == "stage":
            results = [stages.run_stage(args.name, p, args.root, ctx, args.domain)]
        elif args.transfer:
            if args.until:
                raise P.ParamsError("--until applies to the generator chain; `ganops run --transfer` runs the "
                                    "whole transfer chain (or run its stages one by one with `ganops stage`)")
            results = stages.run_transfer(p, args.root, ctx)
        else:
            results = stages.run_all(p, args.root, args.until, ctx)
        from ganops.core.distributed import LAUNCHER_ENV

        for r in results:
            # None: a rank other than 0 of a distributed training; under ganops's launcher it prints the result
            if r is not None and not os.environ.get(LAUNCHER_ENV):
                print(f"{r.stage}: {r.path}")
        return 0
    except user_errors() as exc:  # bad input, read-only tree, full disk, …: one line, not a traceback
        _fail(describe(exc))
        return 2
    except Exception as exc:
        from ganops.core.distributed import lost_peer
        from ganops.tracking.store import is_store_failure, store_failure

        if lost_peer(exc):              # another rank died: it is the cause, this rank's traceback is noise
            _fail(lost_peer(exc))
            return 2
        if not is_store_failure(exc):   # a bug: the traceback is what a report needs
            raise
        _fail(str(store_failure(p, Path(args.root), exc)))
        return 2
    except KeyboardInterrupt as exc:   # Ctrl-C: one line, the MLflow run KILLED, the checkpoint kept
        from ganops.core.distributed import LAUNCHER_ENV, launched, report_failure

        message = str(exc) or "interrupted; rerun the same command to continue"
        rank = (launched() or (0, 1, 0))[0]
        # of several ranks rank 0 speaks; under ganops's launcher, through it
        if not (report_failure(message) and (rank or os.environ.get(LAUNCHER_ENV))):
            print(f"ganops: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


def _fail(message: str) -> None:
    """One line on stderr; under torchrun also in the rank's error file, where the launcher (torchrun's
    summary, ``--nproc``) reads it. Of several ranks only rank 0 prints: the others' lines would repeat it."""
    from ganops.core.distributed import LAUNCHER_ENV, launched, report_failure

    rank = (launched() or (0, 1, 0))[0]
    reported = report_failure(message if rank == 0 else f"rank {rank}: {message}")
    if not reported or (rank == 0 and not os.environ.get(LAUNCHER_ENV)):   # ganops's launcher prints it itself
        print(f"ganops: error: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
