"""ImageNet-pretrained ResNet-50 encoders, read from the local torch.hub cache and never downloaded.

``resnet50``: torchvision's supervised weights. ``swav``: SwAV (Caron et al. 2020, the encoder
IC-GAN uses), facebookresearch/swav's 800-epoch checkpoint. Both give the 2048-d pooled features.
A missing file is an EncoderError that says which file to download, from where, and the full
path to put it at (DESIGN.md §5: offline first). encoder.pt stores only the config and the weights
file's name: the ~100 MB weights stay in the hub cache instead of being copied per dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ganops.embed.base import EncoderError

# (file name, URL), preferred first. V2 is torchvision's current default; V1 is accepted too.
FILES: dict[str, list[tuple[str, str]]] = {
    "resnet50": [("resnet50-11ad3fa6.pth", "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"),
                 ("resnet50-0676ba61.pth", "https://download.pytorch.org/models/resnet50-0676ba61.pth")],
    "swav": [("swav_800ep_pretrain.pth.tar", "https://dl.fbaipublicfiles.com/deepcluster/swav_800ep_pretrain.pth.tar")],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_HEAD_PREFIXES = ("fc.", "projection_head.", "prototypes.")   # heads we do not use: features are the pool


def cache_dir() -> Path:
    """``<torch hub dir>/checkpoints``: $TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weights_file(encoder: str, name: str | None = None) -> Path:
    """The cached weights file for ``encoder``; an EncoderError saying what to download when absent."""
    folder = cache_dir()
    for fname, _url in FILES[encoder]:
        if (name is None or fname == name) and (folder / fname).is_file():
            return folder / fname
    fname, url = next((f, u) for f, u in FILES[encoder] if name is None or f == name)
    raise EncoderError(
        f"embed.encoder={encoder} needs the pretrained weights file {fname}, which is not in the torch hub "
        f"cache {folder}. Nothing is downloaded automatically: download {url} and save it as {folder / fname} "
        f"(or set TORCH_HOME to a folder whose hub/checkpoints holds it), or use embed.encoder=simclr.")


def _resnet_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise EncoderError(f"cannot read {path} ({e}); delete it and download it again") from e
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise EncoderError(f"{path} does not hold a state dict (got {type(raw).__name__}); download it again")
    state = {k.removeprefix("module."): v for k, v in raw.items()}
    return {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}


class PretrainedEncoder(nn.Module):
    """Float images in [0, 1] (1 or 3 channels, any size) → resize, grey→RGB, ImageNet-normalise → 2048-d."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        from torchvision.models import resnet50

        self.config = dict(config)
        self.net = resnet50(weights=None)
        self.net.fc = nn.Identity()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = int(self.config["image_size"])
        if x.shape[-2:] != (size, size):
            down = x.shape[-1] > size or x.shape[-2] > size
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=down)
        return self.net((x - self.mean) / self.std)


def load(encoder: str, image_size: int, in_channels: int, weights: str | None = None) -> PretrainedEncoder:
    """The pretrained encoder on the CPU, in eval mode."""
    path = weights_file(encoder, weights)
    model = PretrainedEncoder({"arch": "resnet50", "variant": encoder, "weights_file": path.name,
                               "image_size": image_size, "in_channels": in_channels})
    missing, unexpected = model.net.load_state_dict(_resnet_state(path), strict=False)
    if missing or unexpected:
        raise EncoderError(f"{path} is not a ResNet-50 checkpoint for embed.encoder={encoder}: "
                           f"missing {list(missing)[:4]}, unexpected {list(unexpected)[:4]}. Download it again "
                           f"from {dict(FILES[encoder])[path.name]}.")
    return model.eval()
