"""Encoders and feature extraction for the embeddings stage (DESIGN.md §3).

``embed`` trains the encoder named by ``embed.encoder`` when it is trained in the pipeline
(simclr, classifier), loads it from the local cache when pretrained (resnet50, swav), or uses
raw pixels, then extracts L2-normalised float32 features. ``load_encoder`` and ``embed_images``
rebuild a saved encoder.pt and embed new images with the same preprocessing.
"""

from __future__ import annotations

from ganops.embed.api import embed, embed_images, load_encoder
from ganops.embed.base import EmbedResult, EncoderError, extract

__all__ = ["EmbedResult", "EncoderError", "embed", "embed_images", "extract", "load_encoder"]
