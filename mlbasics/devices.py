"""Choosing the device to train on. Asking for one that is not there, or that torch cannot use, is an
error (one line), never a fallback."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from mlbasics.errors import DeviceError, first_line

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES: Final = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: What to do when the device asked for is not here: said after the reason.
ON_THE_CPU: Final = (
    'train on the CPU with --device cpu (device="cpu" in Python), or with --device auto, which '
    "uses a GPU only where there is one"
)


def check_device_name(name: object) -> str | None:
    """Why ``name`` is not a device name mlbasics understands, or ``None`` if it is one (checked
    without torch: an experiment is validated before anything imports it)."""
    if isinstance(name, str) and _DEVICE.match(name):
        return None
    return f"unknown device {name!r}; use {DEVICE_CHOICES}"


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; any other name must be available as asked."""
    import torch

    problem = check_device_name(name)
    if problem:
        raise DeviceError(problem)
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            return torch.device("cpu")
        _check_usable(f"auto (chose {device.type})", device)
        return device
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:  # a well-formed name torch still refuses (cuda:99999999999)
        raise DeviceError(f"device {name!r} is not one torch accepts ({first_line(exc)})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a build without CUDA"
            raise DeviceError(
                f"device {name!r} is not available: no CUDA GPU found (torch {torch.__version__}, {build}); "
                f"{ON_THE_CPU}"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"device {name!r} does not exist: {count} CUDA device(s) found, cuda:0 to cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(
            f"device {name!r} is not available: this machine or torch build has no MPS support; {ON_THE_CPU}"
        )
    if device.type != "cpu":
        _check_usable(repr(name), device)
    return device


def _check_usable(name: str, device: torch.device) -> None:
    """Put one number on ``device``: a device that is listed but cannot be used (a driver too old
    for this torch, a GPU in exclusive use by another process, a build without kernels for it) fails
    here with one line, not inside the first training step."""
    import torch

    try:
        torch.zeros(1, device=device)
    except (
        RuntimeError,
        ValueError,
        AssertionError,
    ) as exc:  # torch's device errors; AssertionError: no CUDA build
        raise DeviceError(f"device {name} cannot be used: {first_line(exc)}") from None


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (so timings measure the work, not its launch)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
