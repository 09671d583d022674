"""Stand-ins the tests register as plugins: a plugin built from hook functions, and a model that
cannot be captured in a CUDA graph nor vmapped."""

from __future__ import annotations

import types

import torch
from torch import nn

from mlbasics import hookimpl


def hook_plugin(name: str, **hooks: object) -> types.SimpleNamespace:
    """A plugin called ``name`` implementing each hook given (hook name -> function)."""
    plugin = types.SimpleNamespace(**{hook: hookimpl(function) for hook, function in hooks.items()})
    plugin.__name__ = name
    return plugin


class ReadsOnTheHost(nn.Module):
    """Reads one of its weights on the host in every forward pass: trains fine alone and eagerly,
    but cannot be captured in a CUDA graph nor stacked under vmap."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 1.0 if float(self.linear.weight.detach().abs().max()) < 1e6 else 0.5
        return self.linear(x) * scale
