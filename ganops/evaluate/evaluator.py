"""The evaluator: the network whose feature space scores every generator of a dataset.

Offline, nothing pretrained can be downloaded, so the evaluator is trained inside the pipeline on the
real training images (never the held-out ones): a classifier when the dataset has labels (its
features, and its logits to judge conditional samples), the self-supervised SimCLR encoder
otherwise. Both are the pipeline's small CNN (``ganops.embed``), trained with the evaluator's own
settings, so the evaluator is a separate artifact from the IC-GAN encoder even when the same kind.

Features for the metrics are the network's raw penultimate outputs (not L2-normalised), as FID,
KID and PRDC are defined on an extractor's raw features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganops.core.artifacts import load_torch_file
from ganops.core.device import autocast, cpu_state_dict
from ganops.core.params import EmbedParams, Params
from ganops.embed.base import EncoderError, MetricLog, batches, to_float

FORMAT = 1


def resolve_kind(p: Params, labels: np.ndarray) -> str:
    """`evaluator.kind`, with auto resolved: a classifier needs at least two labelled classes."""
    if p.evaluator.kind != "auto":
        return p.evaluator.kind
    known = np.asarray(labels)[np.asarray(labels) >= 0]
    return "classifier" if np.unique(known).size >= 2 else "simclr"


def _as_embed_params(p: Params, kind: str) -> Params:
    """The encoders' trainers read ``p.embed``: give them the evaluator's settings instead."""
    ev = p.evaluator
    embed = EmbedParams(encoder=kind, dim=ev.dim, epochs=ev.epochs, min_steps=ev.min_steps, batch_size=ev.batch_size,
                        lr=ev.lr)
    return p.model_copy(update={"embed": embed})


def train(images: np.ndarray, labels: np.ndarray, p: Params, device: torch.device, checkpoint: Path | None = None,
          log: MetricLog | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the evaluator on the training images; returns its state (evaluator.pt) and metrics."""
    from ganops.embed import classifier, simclr

    kind = resolve_kind(p, labels)
    q = _as_embed_params(p, kind)
    head = None
    if kind == "classifier":
        family = classifier.CrossDomainClassifier if p.evaluator.augment == "cross_domain" else classifier.Classifier
        model, metrics, head = classifier.train(images, labels, q, device, checkpoint, log, family=family)
        classes = np.unique(labels[labels >= 0]).astype(int).tolist()
    else:
        model, metrics = simclr.train(images, q, device, checkpoint, log)
        classes = []
    state = {"format": FORMAT, "kind": kind, "config": dict(model.config), "weights": cpu_state_dict(model),
             "head": cpu_state_dict(head) if head is not None else None, "classes": classes}
    return state, {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Evaluator:
    """A loaded evaluator: ``features`` (raw, N×dim) and, for a classifier, ``predict`` (class labels)."""

    def __init__(self, state: dict[str, Any], device: torch.device | str = "cpu"):
        from ganops.embed.nets import build

        if not isinstance(state, dict) or state.get("format") != FORMAT or "config" not in state:
            raise EncoderError("evaluator.pt is not an evaluator of this version of ganops; run "
                               "`ganops stage evaluator` again")
        self.device = torch.device(device)
        self.kind: str = state["kind"]
        self.classes: list[int] = list(state.get("classes") or [])
        self.net = build(state["config"])
        self.net.load_state_dict(state["weights"])
        self.net = self.net.to(self.device).eval().requires_grad_(False)
        self.head: nn.Module | None = None
        if state.get("head") is not None:
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(self.net.config["dim"], len(self.classes)))
            self.head.load_state_dict(state["head"])
            self.head = self.head.to(self.device).eval().requires_grad_(False)

    @classmethod
    def load(cls, path: Path, device: torch.device | str = "cpu") -> Evaluator:
        path = Path(path)
        if not path.is_file():
            raise EncoderError(f"{path} does not exist; run `ganops stage evaluator` first")
        return cls(load_torch_file(path, "ganops stage evaluator"), device)

    @property
    def dim(self) -> int:
        return int(self.net.config["dim"])

    @torch.inference_mode()
    def _run(self, images: np.ndarray | torch.Tensor, batch_size: int, with_logits: bool):
        feats, logits = [], []
        cuda = self.device.type == "cuda"
        for sl in batches(len(images), batch_size):
            x = to_float(images[sl], self.device)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(self.device):
                f = self.net(x)
                if with_logits:
                    logits.append(self.head(f).float())
            feats.append(f.float())
        f = torch.cat(feats) if feats else torch.zeros(0, self.dim, device=self.device)
        return f, (torch.cat(logits) if logits else None)

    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
        """Raw features of uint8 N×C×H×W images, float32 N×dim."""
        f, _ = self._run(images, batch_size, False)
        return f.cpu().numpy()

    def features_and_labels(self, images: np.ndarray | torch.Tensor,
                            batch_size: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
        """Features and, for a classifier, the predicted dataset labels (one pass over the images)."""
        f, logits = self._run(images, batch_size, self.head is not None)
        if logits is None:
            return f.cpu().numpy(), None
        return f.cpu().numpy(), np.asarray(self.classes)[logits.argmax(1).cpu().numpy()]

    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
        if self.head is None:
            raise EncoderError("this evaluator is self-supervised (no labels): it cannot classify samples")
        return self.features_and_labels(images, batch_size)[1]
