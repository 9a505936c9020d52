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
    """Bytes a new allocation can take on ``device``: the GPU's free memory, or the host's available RAM,
    within the process's cgroup limit where it has one (a container's, a Kubernetes pod's)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    free = int(psutil.virtual_memory().available)
    room = _cgroup_room()
    return free if room is None else min(free, room)


def _cgroup_room() -> int | None:
    """The limit less the usage of this process's memory cgroup (v2, else v1, as mounted in a container);
    None where there is no limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fh:
                limit = fh.read().strip()
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 2 ** 60:    # v1 writes "no limit" as a huge page-rounded number
            return None
        return max(0, int(limit) - usage)
    return None


# oneDNN's CPU convolutions allocate their scratchpad and JIT code when a primitive is created, and report a
# failed allocation there only as "could not create a primitive" (seen with the data segment capped mid-step);
# ganops's networks use primitives oneDNN implements, so that failure is the memory's
_OOM_WORDS = ("can't allocate memory", "not enough memory", "out of memory", "std::bad_alloc",
              "could not create a primitive")


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation that failed: CUDA's OutOfMemoryError, the CPU allocator's or oneDNN's
    RuntimeError, Python's MemoryError."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc) for w in _OOM_WORDS)


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
