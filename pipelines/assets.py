"""The assets: dataset → embeddings → neighborhoods → generator. Each is one call into ganops."""


import base64
from pathlib import Path

import dagster as dg

from ganops import stages
from pipelines.resources import ComputeDevice, GanopsParams, MlflowTracking, effective_params

GROUP = "data_prep"
TRAIN_GROUP = "training"


def _image_md(path: Path, alt: str) -> dg.MetadataValue:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def _metadata(result: stages.StageResult) -> dict[str, object]:
    meta: dict[str, object] = {
        "path": dg.MetadataValue.path(str(result.path)),
        "content_hash": result.meta.get("content_hash", ""),
    }
    for key, value in result.metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        meta[key] = dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.float(float(value))
    for name, png in result.images.items():
        meta[name] = _image_md(png, name)
    if result.run_id:
        meta["mlflow_run_id"] = result.run_id
    if result.url:
        meta["mlflow_run"] = dg.MetadataValue.url(result.url)
    return meta


def _run(context: dg.AssetExecutionContext, stage: str, params: GanopsParams, mlflow: MlflowTracking,
         device: ComputeDevice) -> dg.MaterializeResult:
    p = effective_params(params, mlflow, device)
    context.log.info(f"{stage}: dataset={p.data.dataset} encoder={p.embed.encoder} k={p.neighbors.k} "
                     f"family={p.train.family}")
    result = stages.run_stage(stage, p, params.root())
    return dg.MaterializeResult(metadata=_metadata(result))


@dg.asset(group_name=GROUP, kinds={"python", "numpy"},
          description="Images (uint8 N×C×H×W) and manifest of `data.dataset`, with a summary and a sample grid.")
def dataset(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
            device: ComputeDevice) -> dg.MaterializeResult:
    return _run(context, "dataset", params, mlflow, device)


@dg.asset(group_name=GROUP, deps=[dataset], kinds={"pytorch", "numpy"},
          description="L2-normalised features of every image from `embed.encoder` (trained here when self-supervised).")
def embeddings(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
               device: ComputeDevice) -> dg.MaterializeResult:
    return _run(context, "embeddings", params, mlflow, device)


@dg.asset(group_name=GROUP, deps=[embeddings], kinds={"faiss", "numpy"},
          description="IC-GAN k-NN neighborhoods A_i (cosine, FAISS; the instance excluded) with diagnostics.")
def neighborhoods(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
                  device: ComputeDevice) -> dg.MaterializeResult:
    return _run(context, "neighbors", params, mlflow, device)


@dg.asset(group_name=TRAIN_GROUP, deps=[neighborhoods], kinds={"pytorch", "mlflow"},
          description="The trained GAN of `train.family` (G, D and G's EMA), registered in MLflow as "
                      "`ganops-<dataset>-<family>`; metadata holds the final losses and a sample grid.")
def generator(context: dg.AssetExecutionContext, params: GanopsParams, mlflow: MlflowTracking,
              device: ComputeDevice) -> dg.MaterializeResult:
    return _run(context, "train", params, mlflow, device)
