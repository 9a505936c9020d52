"""The compute device: ``auto`` picks CUDA, then MPS, then CPU; a device that is asked for but absent is an error."""

from __future__ import annotations

import torch

from ganops.core.errors import UserError


class DeviceError(UserError, ValueError):
    """The `device` key asks for a device this machine does not have."""


def resolve(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device=cuda: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is false); "
                          "set device=auto or device=cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("device=mps: MPS is not available on this machine; set device=auto or device=cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device={name!r} is not allowed; expected one of auto, cpu, cuda, mps")
    return torch.device(name)


def free_memory(device: torch.device) -> int:
    """Bytes a new allocation can take on ``device``: the GPU's free memory, or the host's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def cpu_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a module's state (what checkpoints and weight files hold)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}


def autocast(device: torch.device):
    """bf16 autocast on CUDA (DESIGN: GPU paths use AMP); a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def place(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` on ``device``, in channels_last on CUDA (its convolutions' fast layout)."""
    module = module.to(device)
    return module.to(memory_format=torch.channels_last) if device.type == "cuda" else module
