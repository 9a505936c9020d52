"""FID, KID and IS in the standard Inception-V3 space, only when its weights are already on this machine.

The numbers papers report come from the 2015 TensorFlow Inception graph; torch-fidelity ports it
bit-faithfully (``FeatureExtractorInceptionV3``: TF1-style bilinear resize to 299, TF's padding-free average
pools, the 1008-way head). Its weights are never downloaded here: they are used when the file is already in
the torch hub cache (``<torch.hub.get_dir()>/checkpoints``) and otherwise the Inception metrics are skipped
with a message saying where to put the file.

Accepted files (``WEIGHT_FILES``, searched in this order):

- torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (what torch-fidelity itself downloads);
- pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``. pytorch-fid builds torchvision's ``Inception3``
  (num_classes=1008, aux_logits=False) with the same blocks patched the same way, and torch-fidelity's
  extractor is adapted from it: the module names (``Conv2d_1a_3x3`` … ``Mixed_7c``, ``fc``), the
  ``BasicConv2d`` = bias-free conv + BatchNorm(eps=1e-3) layout and every tensor shape are identical
  (tests/test_inception.py checks the key/shape sets against torchvision), and both files are conversions of
  the same TF graph constants. So either file loads strictly into torch-fidelity's extractor, and the
  forward pass (hence the numbers) is torch-fidelity's in both cases.

Safety: torch-fidelity 0.4.0 loads ``feature_extractor_weights_path`` with ``torch.load(...,
weights_only=False)``, i.e. it would run arbitrary pickled code. So the file is read here with
``weights_only=True`` first, checked to be a name→tensor mapping, re-serialised into memory, and only that
in-memory copy (tensors we wrote ourselves) is handed to torch-fidelity, which accepts a file-like object.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ganops.evaluate.metrics import fid, kid

# torch-fidelity's own file first (it is what `URL_INCEPTION_V3` serves), then pytorch-fid's (same format).
WEIGHT_FILES: tuple[str, ...] = (
    "weights-inception-2015-12-05-6726825d.pth",
    "pt_inception-2015-12-05-6726825d.pth",
)

POOL, LOGITS = "2048", "logits_unbiased"   # torch-fidelity's feature names: FID/KID use POOL, IS uses LOGITS


def _checkpoints(hub_dir: Path | str | None) -> Path:
    return Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"


def find_weights(hub_dir: Path | str | None = None) -> Path | None:
    """The first of ``WEIGHT_FILES`` present in ``<hub_dir or torch.hub.get_dir()>/checkpoints``, else None."""
    folder = _checkpoints(hub_dir)
    return next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)


def missing_message(hub_dir: Path | str | None = None) -> str:
    """One sentence: which file to place where to enable the Inception metrics, and where to get it."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    target = _checkpoints(hub_dir) / WEIGHT_FILES[0]
    return (f"Inception FID/KID/IS skipped: their weights file {WEIGHT_FILES[0]} is not in the torch hub cache "
            f"(nothing is downloaded here); to enable them, download {URL_INCEPTION_V3} on a connected machine "
            f"and place it at {target} (pytorch-fid's {WEIGHT_FILES[1]} in the same folder works too).")


def _safe_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's name→tensor mapping, read with ``weights_only=True`` so no pickled code ever runs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise                                  # missing/unreadable file: the caller's OS-error wording applies
    except Exception as e:                     # refused pickle (UnpicklingError), corrupt archive (RuntimeError)
        raise ValueError(f"Inception weights {path} cannot be read as a plain weights file, i.e. without running "
                         f"pickled code ({_load_reason(e)}); delete it and download it again") from e
    if not (isinstance(state, Mapping) and state
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
        raise ValueError(f"Inception weights {path} do not hold a state dict (a mapping of names to tensors; "
                         f"got {type(state).__name__}); delete it and download it again")
    # a plain dict (no `_metadata`): BatchNorm then fills the `num_batches_tracked` counters that the
    # converted TF weights do not have, so strict loading still works
    return dict(state)


def _load_reason(e: BaseException) -> str:
    """torch's reason, without its advice to retry with ``weights_only=False`` (the one thing not to do)."""
    parts = [p for p in str(e).split("\n\n") if p.strip() and not p.lstrip().startswith(
        ("Weights only load failed", "Check the documentation"))]
    return f"{type(e).__name__}: {_short(' '.join(parts) or e)}"


def _short(e: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + " …"


class InceptionFeatures:
    """torch-fidelity's TF-faithful Inception-V3, loaded from a local weights file; uint8 images → features."""

    def __init__(self, weights: Path | str):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.path = Path(weights)
        state = _safe_state_dict(self.path)
        buffer = io.BytesIO()
        torch.save(state, buffer)              # what torch-fidelity unpickles is our own tensor-only copy
        buffer.seek(0)
        del state
        try:
            # float32 inside (its default): the port is checked against TF in fp32; see `extract`
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", [POOL, LOGITS],
                                                   feature_extractor_weights_path=buffer)
        except RuntimeError as e:              # load_state_dict(strict=True): missing/unexpected keys, shapes
            raise ValueError(f"Inception weights {self.path} do not match torch-fidelity's Inception-V3 "
                             f"({_short(e)}); expected {' or '.join(WEIGHT_FILES)}") from e
        self.net.eval()

    def extract(self, images: np.ndarray, device: torch.device | str = "cpu",
                batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """(pool features N×2048, unbiased logits N×1008), float32, for uint8 images N×C×H×W (C = 1 or 3).

        Any side length: the extractor itself resizes to 299 the way TF1 did. Grey images are repeated to
        three channels. No autocast: the extractor is a bit-faithful port of the TF graph and is meant to
        run in fp32; bf16 would shift the features and so the metrics away from the published numbers.
        (cuDNN's TF32 setting is left as the process has it, which is also what torch-fidelity does.)
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"Inception features need uint8 images N×C×H×W with C 1 or 3; "
                             f"got {images.dtype} {images.shape}")
        device = torch.device(device)
        self.net.to(device)
        pools, logits = [], []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch_size])).to(device)
                if x.shape[1] == 1:
                    x = x.repeat(1, 3, 1, 1)
                pool, logit = self.net(x)
                pools.append(pool.float().cpu().numpy())
                logits.append(logit.float().cpu().numpy())
        if not pools:
            return np.zeros((0, 2048), np.float32), np.zeros((0, 1008), np.float32)
        return np.concatenate(pools), np.concatenate(logits)


def inception_metrics(real_images: np.ndarray | None, fake_images: np.ndarray,
                      weights: Path | str | InceptionFeatures, device: torch.device | str = "cpu",
                      kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
                      real_features: np.ndarray | None = None) -> dict[str, float]:
    """FID and KID (real vs fake pool features) and IS (fake logits), all by torch-fidelity's feature-level code.

    ``weights``: a weights file (see ``find_weights``) or an already loaded ``InceptionFeatures``.
    ``real_features``: cached real pool features (N×2048); then ``real_images`` is not looked at and may be
    None. IS uses torch-fidelity's 10 splits (fewer when there are fewer than 10 fake images), shuffled
    with ``seed`` like KID's subsets.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    model = weights if isinstance(weights, InceptionFeatures) else InceptionFeatures(weights)
    if real_features is None:
        if real_images is None:
            raise ValueError("inception_metrics needs real_images or real_features")
        real_features, _ = model.extract(real_images, device)
    fake_features, fake_logits = model.extract(fake_images, device)
    if len(real_features) < 2 or len(fake_features) < 2:
        raise ValueError(f"Inception metrics need at least 2 real and 2 fake images; got {len(real_features)} "
                         f"and {len(fake_features)}")
    kid_mean, kid_std = kid(real_features, fake_features, subsets=kid_subsets, subset_size=kid_subset_size,
                            seed=seed)
    isc = isc_features_to_metric(torch.from_numpy(fake_logits), splits=min(10, len(fake_logits)), shuffle=True,
                                 rng_seed=seed)
    return {
        "fid_inception": fid(real_features, fake_features),
        "kid_inception_mean": kid_mean,
        "kid_inception_std": kid_std,
        "is_inception_mean": float(isc[KEY_METRIC_ISC_MEAN]),
        "is_inception_std": float(isc[KEY_METRIC_ISC_STD]),
    }
