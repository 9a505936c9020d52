"""SimCLR views, drawn for a whole batch at once on tensors (no per-image PIL loop).

Every random number comes from the ``torch.Generator`` passed in (on the CPU, then moved), so a
seed gives the same views on any device and a checkpoint that saves the generator resumes exactly.

The policy is geometric first: a random resized crop with aspect jitter, rotation, shear and a
small smooth elastic warp — one ``affine_grid`` + ``grid_sample`` for the batch — then intensity
changes, blur and erasing. Horizontal flips and colour jitter only for 3-channel images: a flipped
digit is another symbol, and a grey image has no colour to jitter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Policy:
    crop_area: tuple[float, float] = (0.35, 1.0)      # fraction of the image area a crop covers (> 1: zoom out)
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    rotate_deg: float = 15.0
    shear: float = 0.15
    shift: float = 0.1                  # extra translation beyond the crop's room (fraction of half-side)
    elastic: float = 0.04               # amplitude of the smooth displacement field (normalised coords)
    brightness: float = 0.3
    contrast: float = 0.4
    saturation: float = 0.4             # 3 channels only
    greyscale_p: float = 0.2            # 3 channels only
    flip_p: float = 0.5                 # 3 channels only
    blur_p: float = 0.3
    erase_p: float = 0.3
    erase_area: tuple[float, float] = (0.02, 0.12)
    stroke_p: float = 0.0               # pen width: thin (threshold or erode) or thicken (dilate) the strokes


def _u(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _geometry(n: int, h: int, w: int, policy: Policy, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Sampling grid N×H×W×2: output pixel → input location (normalised coordinates)."""
    area = _u(g, n, *policy.crop_area)
    log_r = _u(g, n, math.log(policy.aspect[0]), math.log(policy.aspect[1]))
    # an area above 1 zooms out (the object shrinks inside the frame, zeros around it)
    limit = 1.0 if policy.crop_area[1] <= 1 else math.sqrt(policy.crop_area[1] * policy.aspect[1])
    sx = (area * log_r.exp()).sqrt().clamp(max=limit)
    sy = (area / log_r.exp()).sqrt().clamp(max=limit)
    tx = (1 - sx + policy.shift) * _u(g, n, -1, 1)
    ty = (1 - sy + policy.shift) * _u(g, n, -1, 1)
    ang = _u(g, n, -1, 1) * math.radians(policy.rotate_deg)
    sh = _u(g, n, -1, 1) * policy.shear
    if flip:
        sx = torch.where(torch.rand(n, generator=g) < policy.flip_p, -sx, sx)
    cos, sin = ang.cos(), ang.sin()
    # theta = R(ang) @ [[1, sh], [0, 1]] @ diag(sx, sy), then translate.
    theta = torch.stack([
        torch.stack([cos * sx, (cos * sh - sin) * sy, tx], 1),
        torch.stack([sin * sx, (sin * sh + cos) * sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    if policy.elastic > 0:
        # A coarse 4×4 random field, upsampled: smooth local warps (pen-stroke variation).
        field = torch.randn(n, 2, 4, 4, generator=g) * policy.elastic
        grid = grid + F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return grid


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype) / 4
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate"), k.view(1, 1, 1, 3).expand(c, 1, 1, 3), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 1, 1), mode="replicate"), k.view(1, 1, 3, 1).expand(c, 1, 3, 1), groups=c)


def _stroke(x: torch.Tensor, policy: Policy, g: torch.Generator) -> torch.Tensor:
    """Another pen: each selected image is either thresholded (sharp edges, thinner strokes: an upsampled
    8×8 digit drawn like a scanned one), eroded or dilated by a 3×3 window. Draws nothing at p = 0, so a
    policy without it keeps its views bit for bit."""
    if policy.stroke_p <= 0:
        return x
    n = len(x)
    dev = x.device
    on = torch.rand(n, generator=g) < policy.stroke_p
    kind = torch.where(on, torch.randint(1, 4, (n,), generator=g), 0).to(dev).view(n, 1, 1, 1)
    level = _u(g, n, 0.1, 0.5).to(dev).view(n, 1, 1, 1)      # the threshold, as a share of the image's peak
    soft = _u(g, n, 0.05, 0.3).to(dev).view(n, 1, 1, 1)      # its ramp width: 0.05 is nearly binary
    peak = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
    thin = ((x / peak - level) / soft).clamp(0, 1) * peak
    thick = F.max_pool2d(x, 3, 1, 1)
    eroded = -F.max_pool2d(-x, 3, 1, 1)
    return torch.where(kind == 1, thin, torch.where(kind == 2, thick, torch.where(kind == 3, eroded, x)))


def _erase_mask(n: int, h: int, w: int, policy: Policy, g: torch.Generator) -> torch.Tensor:
    """N×1×H×W boolean mask of one random rectangle per selected image."""
    area = _u(g, n, *policy.erase_area)
    log_r = _u(g, n, math.log(0.5), math.log(2.0))
    eh = (area / log_r.exp()).sqrt().clamp(max=1.0)
    ew = (area * log_r.exp()).sqrt().clamp(max=1.0)
    cy, cx = torch.rand(n, generator=g), torch.rand(n, generator=g)
    on = torch.rand(n, generator=g) < policy.erase_p
    ys = (torch.arange(h) + 0.5) / h
    xs = (torch.arange(w) + 0.5) / w
    in_y = (ys[None] - cy[:, None]).abs() < eh[:, None] / 2
    in_x = (xs[None] - cx[:, None]).abs() < ew[:, None] / 2
    return (in_y[:, :, None] & in_x[:, None, :] & on[:, None, None]).unsqueeze(1)


def augment(x: torch.Tensor, g: torch.Generator, policy: Policy = Policy()) -> torch.Tensor:
    """One random view of each image. ``x``: float N×C×H×W in [0, 1]; returns the same shape and range."""
    n, c, h, w = x.shape
    dev = x.device
    colour = c == 3
    grid = _geometry(n, h, w, policy, flip=colour, g=g).to(dev)
    # Zero padding: outside the crop is background (black for digits).
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    bright = _u(g, n, -policy.brightness, policy.brightness).to(dev).view(n, 1, 1, 1)
    contrast = _u(g, n, 1 - policy.contrast, 1 + policy.contrast).to(dev).view(n, 1, 1, 1)
    if colour:
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        sat = _u(g, n, 1 - policy.saturation, 1 + policy.saturation).to(dev).view(n, 1, 1, 1)
        to_grey = (torch.rand(n, generator=g) < policy.greyscale_p).to(dev).view(n, 1, 1, 1)
        sat = torch.where(to_grey, torch.zeros_like(sat), sat)
        x = grey + (x - grey) * sat
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
    else:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean + bright * x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)).clamp(0, 1)

    blur_on = (torch.rand(n, generator=g) < policy.blur_p).to(dev).view(n, 1, 1, 1)
    x = torch.where(blur_on, _blur(x), x)
    x = _stroke(x, policy, g)
    erase = _erase_mask(n, h, w, policy, g).to(dev)
    return x.masked_fill(erase, 0.0)
