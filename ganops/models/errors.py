"""The training stage's errors: each message names the key or artifact at fault and the fix."""

from __future__ import annotations


class TrainError(RuntimeError):
    """Training cannot start or cannot go on; the message says why and what to do."""


def supported_resolutions() -> tuple[int, ...]:
    return (16, 32, 64, 128, 256, 512, 1024)


def check_resolution(height: int, width: int) -> int:
    allowed = supported_resolutions()
    if height != width or height not in allowed:
        raise TrainError(
            f"data.resolution: images are {height}×{width}, which the DCGAN-style networks do not support; "
            f"allowed values are square powers of two {', '.join(map(str, allowed))}. "
            f"Set data.resolution to one of them and run `ganops stage dataset` again.")
    return height
