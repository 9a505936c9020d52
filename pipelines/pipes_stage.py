"""A rank of a training that Dagster launched through Pipes (``pipelines.pipes``): ``python -m
pipelines.pipes_stage <stage> --root R [--domain D] [--set KEY=VALUE …]`` under torchrun, the parameters in
``GANOPS_PARAMS``. Rank 0 opens the Pipes session: the library's log lines go to the run's log, and the
finished artifact is reported as the asset's materialization (metadata and data version as the in-process
asset reports them). The other ranks train and stay silent."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import yaml

from ganops import stages
from ganops.core import distributed
from ganops.core import params as P
from ganops.core.errors import describe, user_errors
from ganops.tracking.runs import RunContext
from pipelines.pipes import PARAMS_ENV


def _params(sets: list[str]) -> P.Params:
    p = P.validate(yaml.safe_load(os.environ[PARAMS_ENV]))
    p._overrides = tuple(sets)
    return p


class _ToPipes(logging.Handler):
    def __init__(self, pipes):
        super().__init__(logging.INFO)
        self.pipes = pipes

    def emit(self, record: logging.LogRecord) -> None:
        log = self.pipes.log.warning if record.levelno >= logging.WARNING else self.pipes.log.info
        log(f"{record.name}: {record.getMessage()}")


def _pipes_metadata(meta: dict[str, object]) -> dict[str, object]:
    """The asset's metadata (``pipelines.assets.metadata``) in the Pipes protocol's typed form."""
    kinds = {"PathMetadataValue": "path", "UrlMetadataValue": "url", "MarkdownMetadataValue": "md",
             "IntMetadataValue": "int", "FloatMetadataValue": "float", "TextMetadataValue": "text",
             "BoolMetadataValue": "bool"}
    out: dict[str, object] = {}
    for key, value in meta.items():
        kind = kinds.get(type(value).__name__)
        out[key] = {"raw_value": value.value, "type": kind} if kind else value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pipelines.pipes_stage")
    ap.add_argument("stage", choices=stages.TRAINING_STAGES)
    ap.add_argument("--root", default=".")
    ap.add_argument("--domain", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = _params(args.overrides)
    ctx = RunContext.from_environment("dagster")
    rank = (distributed.launched() or (0, 1, 0))[0]
    if rank != 0:
        try:
            stages.run_stage(args.stage, p, args.root, ctx, args.domain)
        except user_errors() as exc:
            distributed.report_failure(f"rank {rank}: {describe(exc)}")
            return 2
        return 0
    from dagster_pipes import open_dagster_pipes

    from pipelines.assets import metadata

    with open_dagster_pipes() as pipes:
        handler, library = _ToPipes(pipes), logging.getLogger("ganops")
        library.addHandler(handler)
        try:
            result = stages.run_stage(args.stage, p, args.root, ctx, args.domain)
        except user_errors() as exc:   # the one line, in the run's log and as the step's failure
            message = describe(exc)
            pipes.log.error(message)
            distributed.report_failure(message)
            print(f"ganops: error: {message}", file=sys.stderr)
            return 2
        finally:
            library.removeHandler(handler)
        pipes.report_asset_materialization(metadata=_pipes_metadata(metadata(result)),
                                           data_version=result.meta["content_hash"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
