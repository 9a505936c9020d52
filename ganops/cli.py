"""The command line: ``ganops stage NAME``, ``ganops run``, ``ganops params``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from ganops import params as P


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's to fix: printed as one clear message, no traceback."""
    from ganops.artifacts import ArtifactError
    from ganops.data.sources import DataSourceError
    from ganops.embed import EncoderError
    from ganops.neighbors import NeighborsError

    return (P.ParamsError, ArtifactError, DataSourceError, EncoderError, NeighborsError)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. --set neighbors.k=20 (repeatable)")
    parser.add_argument("--root", default=".", help="project root holding data/ and mlflow.db (default: .)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def build_parser() -> argparse.ArgumentParser:
    from ganops.stages import STAGES

    parser = argparse.ArgumentParser(prog="ganops", description="GAN research pipeline: stages and tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    stage = sub.add_parser("stage", help="run one stage")
    stage.add_argument("name", choices=STAGES)
    _common(stage)
    run = sub.add_parser("run", help="run the chain of stages in order")
    run.add_argument("--until", choices=STAGES, default=None, help="stop after this stage")
    _common(run)
    show = sub.add_parser("params", help="print the effective parameters (validated) as YAML")
    _common(show)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        p = P.load(Path(args.root) / args.params if not Path(args.params).is_absolute() else args.params,
                   args.overrides)
        if args.command == "params":
            sys.stdout.write(yaml.safe_dump(p.model_dump(), sort_keys=False))
            return 0
        from ganops import stages

        if args.command == "stage":
            results = [stages.run_stage(args.name, p, args.root)]
        else:
            results = stages.run_all(p, args.root, args.until)
        for r in results:
            print(f"{r.stage}: {r.path}")
        return 0
    except _user_errors() as exc:
        print(f"ganops: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
