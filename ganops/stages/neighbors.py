"""Stage `neighbors`: FAISS k-NN neighborhoods A_i of every instance, with diagnostics and a panel."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ganops.core import artifacts as A
from ganops.core.params import Params
from ganops.data import store
from ganops.neighbors import diagnostics as nd
from ganops.neighbors import search as nb
from ganops.stages import common as C
from ganops.tracking.runs import RunContext, stage_run

log = logging.getLogger(__name__)
LOW_RECALL = 0.9     # an approximate index that misses more than this share of the true neighbors is warned of


def run(p: Params, root: Path, ctx: RunContext) -> C.StageResult:
    src_data, src_emb = A.dataset_dir(root, p), A.embeddings_dir(root, p)
    ups = C.upstream(root, p, "neighbors")
    out = A.neighbors_dir(root, p)
    with C.guarded(p, root, "neighbors", ups), stage_run(p, root, "neighbors", ctx) as run:
        t0 = time.perf_counter()
        features = store.load_features(src_emb)
        nb.check_features(features, f"the features in {src_emb}")
        labels = store.load_labels(src_data)
        if len(labels) != features.shape[0]:
            raise A.ArtifactError(
                f"the features in {src_emb} have {features.shape[0]} rows but {src_data} has {len(labels)} images."
                " Run `ganops stage embeddings` again.")
        res = nb.knn(features, p.neighbors.k, p.neighbors, seed=p.seed)
        diag = nd.diagnostics(res.indices, res.similarities, labels, features, seed=p.seed)
        collapsed = nd.collapse(diag)
        if collapsed:
            log.warning("neighbors: %s", collapsed)
        if "recall_at_k" in res.info:
            said = (f"{res.info.get('factory', p.neighbors.index)}: recall@{p.neighbors.k} "
                    f"{res.info['recall_at_k']:.3f} against exact search on {res.info['recall_queries']} queries")
            if res.info["recall_at_k"] < LOW_RECALL:
                log.warning("neighbors: %s; raise neighbors.nprobe or neighbors.refine (or use index=exact)", said)
            else:
                log.info("neighbors: %s", said)
        if "gpu_note" in res.info:
            log.info("neighbors: %s", res.info["gpu_note"])
        numbers = {k: v for k, v in res.info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        metrics = {**diag, **numbers}
        search = {k: v for k, v in res.info.items() if not A.is_run_varying(k)}
        with A.atomic_dir(out) as tmp:
            A.atomic_save_npy(tmp / "indices.npy", res.indices)
            A.atomic_save_npy(tmp / "similarities.npy", res.similarities)
            A.atomic_write_json(tmp / "diagnostics.json", {**diag, "search": search,
                                                           **({"warnings": [collapsed]} if collapsed else {})})
            nd.save_panel(store.load_images(src_data), res.indices, tmp / "panel.png",
                          rows=p.neighbors.panel_instances, seed=p.seed, labels=labels,
                          similarities=res.similarities)
            C.write_meta(tmp, p, "neighbors", ups, metrics, extra={"search": search})
        run.metrics({"total_seconds": time.perf_counter() - t0})
        return C.finish("neighbors", p, root, out, run, metrics, ("diagnostics.json",))
