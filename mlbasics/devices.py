"""Choosing the device to train on. Asking for one that is not there is an error, never a fallback."""

from __future__ import annotations

import torch

from mlbasics.errors import DeviceError
from mlbasics.experiment import check_device_name


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; any other name must be available as asked."""
    problem = check_device_name(name)
    if problem:
        raise DeviceError(problem)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a build without CUDA"
            raise DeviceError(
                f"device {name!r} is not available: no CUDA GPU found (torch {torch.__version__}, {build})"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {name!r} does not exist: {count} CUDA device(s) found, cuda:0 to cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} is not available: this machine or torch build has no MPS support")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (so timings measure the work, not its launch)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
