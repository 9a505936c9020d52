"""The embeddings stage's entry points: ``embed`` (train if needed, then extract), and
``load_encoder`` / ``embed_images`` to embed new images exactly as the dataset was embedded."""

from __future__ import annotations

import importlib
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ganops.catalog.encoders import ENCODER_SPECS, ENCODERS
from ganops.core.artifacts import load_torch_file
from ganops.core.device import cpu_state_dict, place
from ganops.core.params import Params
from ganops.embed import classifier, pretrained, simclr
from ganops.embed.base import EmbedResult, EncoderError, MetricLog, check_images, extract, extract_pieces
from ganops.embed.nets import build
from ganops.embed.pixel_encoder import PixelEncoder, mean_image

FORMAT = 1      # encoder.pt layout version
_log = logging.getLogger(__name__)


def fit_encoder(images: np.ndarray, labels: np.ndarray | None, p: Params, device: torch.device,
                checkpoint: Path | None = None, log: MetricLog | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """``p.embed.encoder`` ready to extract: trained first when it is trained in the pipeline (resumed from
    ``checkpoint``: one finished there comes back without training), else built (pixels: the mean image)."""
    e = p.embed
    check_images(images, labels)
    spec = ENCODER_SPECS.get(e.encoder)
    if spec is None:
        raise EncoderError(f"key embed.encoder: value {e.encoder!r} is not allowed; expected one of {', '.join(ENCODERS)}")
    module, _, attr = spec.impl.partition(":")
    return getattr(importlib.import_module(module), attr)(images, labels, p, device, checkpoint, log)


def embed(images: np.ndarray, labels: np.ndarray | None, p: Params, device: torch.device,
          checkpoint: Path | None = None, log: MetricLog | None = None, pieces: Path | None = None) -> EmbedResult:
    """Features of every image with ``p.embed.encoder`` (training it first when it is trained in the pipeline);
    with ``pieces`` (a folder) they are written there a batch at a time (in pieces of ``data.shard_rows`` images,
    spread over the ranks: ``extract_pieces``) and come back memory-mapped on rank 0, None on the others."""
    e = p.embed
    t0 = time.perf_counter()
    model, metrics = fit_encoder(images, labels, p, device, checkpoint, log)
    spec = ENCODER_SPECS[e.encoder]
    t1 = time.perf_counter()
    if pieces is None:
        features = extract(model, images, device, e.extract_batch_size)
    else:   # a piece per dataset shard, spread over the ranks, kept by a killed run
        features = extract_pieces(model, images, device, e.extract_batch_size, pieces, p.data.shard_rows,
                                  log=_log.info)
    metrics["extract_seconds"] = time.perf_counter() - t1
    metrics["total_seconds"] = time.perf_counter() - t0
    state: dict[str, Any] | None = None
    if spec.saved:
        state = {"format": FORMAT, "encoder": e.encoder, "config": dict(model.config),
                 "weights": cpu_state_dict(model) if spec.trained else None}
    return EmbedResult(features, state, metrics)


# The encoders of ganops.catalog.encoders.ENCODER_SPECS: (images, labels, p, device, checkpoint, log) -> (model, metrics)

def _pixels(images, labels, p: Params, device, checkpoint, log) -> tuple[nn.Module, dict[str, Any]]:
    return PixelEncoder(mean_image(images)).to(device), {}


def _simclr(images, labels, p: Params, device, checkpoint, log) -> tuple[nn.Module, dict[str, Any]]:
    return simclr.train(images, p, device, checkpoint, log)


def _classifier(images, labels, p: Params, device, checkpoint, log) -> tuple[nn.Module, dict[str, Any]]:
    if labels is None:
        raise EncoderError("embed.encoder=classifier needs labels; none were given")
    model, metrics, _ = classifier.train(images, labels, p, device, checkpoint, log)
    return model, metrics


def _pretrained(images, labels, p: Params, device, checkpoint, log) -> tuple[nn.Module, dict[str, Any]]:
    return place(pretrained.load(p.embed.encoder, p.embed.image_size, images.shape[1]), device), {}


def load_encoder(path_or_state: Path | str | dict[str, Any], device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the encoder saved as encoder.pt (a path, bytes already loaded, or the state dict), in eval mode."""
    device = torch.device(device)
    state = path_or_state
    if isinstance(state, (bytes, bytearray)):
        state = torch.load(io.BytesIO(state), map_location="cpu", weights_only=True)
    elif isinstance(state, (str, Path)):
        path = Path(state)
        if not path.is_file():
            raise EncoderError(f"{path} does not exist; run `ganops stage embeddings` first "
                               "(embed.encoder=pixels saves no encoder.pt)")
        state = load_torch_file(path, "ganops stage embeddings")
    if not isinstance(state, dict) or "config" not in state:
        raise EncoderError("not an encoder.pt state: expected a dict with 'config' and 'weights' "
                           "(embed.encoder=pixels has no encoder to load)")
    config = state["config"]
    if config.get("arch") == "resnet50":
        model: nn.Module = pretrained.load(config["variant"], int(config["image_size"]),
                                           int(config["in_channels"]), config.get("weights_file"))
    else:
        model = build(config)
        model.load_state_dict(state["weights"])
    return place(model, device).eval()


def _adapter(config: dict[str, Any]):
    """Convert user images to the channel count and side the encoder was trained on (float, in [0, 1])."""
    want_c = int(config.get("in_channels", 3))
    side = config.get("resolution")

    def adapt(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != want_c:
            if want_c == 1:   # ITU-R 601 luma, as PIL's convert("L")
                x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
            else:
                x = x.expand(-1, 3, -1, -1)
        if side and tuple(x.shape[-2:]) != (side, side):
            down = x.shape[-1] > side
            x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=down)
        return x

    return adapt


def embed_as_dataset(images: np.ndarray, p: Params, root: Path) -> np.ndarray:
    """h of uint8 N×C×R×R images (held-out ones, a user's), embedded exactly as the dataset of ``p`` in the
    project at ``root`` was: with its encoder.pt, or for ``pixels`` its mean image."""
    from ganops.core import artifacts as A
    from ganops.data import store

    if p.embed.encoder == "pixels":
        encoder = PixelEncoder(mean_image(store.load_images(A.dataset_dir(root, p))))
        return extract(encoder, images, torch.device("cpu"))
    return embed_images(A.embeddings_dir(root, p) / "encoder.pt", images)


def embed_images(encoder: nn.Module | Path | str | dict[str, Any], images: np.ndarray,
                 device: torch.device | str = "cpu", batch_size: int = 512) -> np.ndarray:
    """L2-normalised features of new uint8 images (N×C×H×W, C×H×W or H×W), preprocessed as the dataset was.

    Images of the dataset's shape give exactly the dataset's features; other channel counts or sides are
    converted first (grey↔RGB, bilinear resize to the training side).
    """
    device = torch.device(device)
    model = encoder if isinstance(encoder, nn.Module) else load_encoder(encoder, device)
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise EncoderError(f"embed_images takes uint8 images (0..255), got {images.dtype}")
    if images.ndim == 2:
        images = images[None, None]
    elif images.ndim == 3:
        images = images[None]
    check_images(images)
    return extract(model, images, device, batch_size, transform=_adapter(getattr(model, "config", {})))
