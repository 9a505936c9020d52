"""The compute device: ``auto`` picks CUDA, then MPS, then CPU; a device that is asked for but absent is an error."""

from __future__ import annotations

import torch


def resolve(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for (key 'device') but torch sees no CUDA GPU; use auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' was asked for (key 'device') but MPS is not available; use auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise RuntimeError(f"key 'device': value {name!r} is not allowed; expected one of auto, cpu, cuda, mps")
    return torch.device(name)


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
