"""What a finished artifact shows, read back from disk: the result a door that did not build it (Dagster's
`artifacts_on_disk` sensor, after `dvc repro` or the CLI) shows, the same as the door that built it.

The artifact gives its metrics (meta.json) and pictures; MLflow gives the rest: the stage's run (tagged with the
artifact's content hash), the logged model of a generator or translator, the registered version of an
evaluation and the registry's decision on it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from ganops.core import artifacts as A
from ganops.core.identity import ON_INSTANCES
from ganops.core.params import Params
from ganops.stages.common import CONTENT_TAG, StageResult, pictures
from ganops.tracking.store import has_store

KIND = {"evaluate": "generator", ON_INSTANCES: "generator", "evaluate_transfer": "transfer"}
MODEL_STAGE = {"evaluate": "train", ON_INSTANCES: "train", "evaluate_transfer": "transfer"}


def result_on_disk(stage: str, p: Params, root: Path, meta: dict[str, Any] | None = None) -> StageResult | None:
    """The finished artifact of ``stage`` for ``p`` as a StageResult (``meta``: its meta.json, when the caller
    has read it already); None when there is none (or it is being replaced right now)."""
    out = A.stage_dir(root, p, stage)
    if meta is None:
        try:
            meta = json.loads((out / A.META).read_text())
        except (OSError, ValueError):
            return None
    result = StageResult(stage, out, dict(meta.get("metrics", {})), meta, pictures(stage, out))
    if has_store(p, root):
        with contextlib.suppress(Exception):   # a store that cannot answer leaves the links out, not the artifact
            _from_mlflow(result, p, root)
    return result


def _from_mlflow(result: StageResult, p: Params, root: Path) -> None:
    from ganops.tracking import registry
    from ganops.tracking.runs import run_url

    client = registry.mlflow_client(p, root)
    content = result.meta["content_hash"]
    exp = client.get_experiment_by_name(p.tracking.experiment)
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], f"tags.`{CONTENT_TAG}` = '{content}' and "
                                  f"tags.`ganops.stage` = '{result.stage}'", order_by=["attributes.start_time DESC"],
                                  max_results=1)
        if runs:
            result.run_id = runs[0].info.run_id
            result.url = run_url(p, exp.experiment_id, result.run_id)
    if result.stage in ("train", "transfer"):
        logged = registry.logged_model(p, root, content)
        result.logged_model = logged.model_id if logged else None
    elif result.stage in KIND:
        kind = KIND[result.stage]
        version = registry.version_of(p, root, result.meta.get("upstream", {}).get(MODEL_STAGE[result.stage], ""), kind)
        if version:
            result.registered_model = registry.registered_model_name(p, kind)
            result.model_version = version
            tags: dict[str, Any] = client.get_model_version(result.registered_model, version).tags
            if "ganops.decision" in tags and result.stage != ON_INSTANCES:   # the evaluation's decision
                result.decision = {"promote": tags["ganops.decision"] == "promoted",
                                   "reason": tags.get("ganops.decision_reason", "")}
