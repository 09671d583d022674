"""Stand-ins the tests register as plugins: a plugin built from hook functions, a model that
cannot be captured in a CUDA graph nor vmapped, and the lecture's MLP and MSE in float64."""

from __future__ import annotations

import types
from collections.abc import Callable

import torch
from torch import nn

from mlbasics import ComponentSpec, Registry, hookimpl
from mlbasics.builtin import models as builtin_models


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


class InFloat64(nn.Module):
    """A model computed in float64 (the data stay float32, as mlbasics requires, and are widened)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.model(x.double())
        return result


def _mse_in_float64() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return lambda prediction, target: nn.functional.mse_loss(prediction, target.double())


_MLP = Registry.isolated().get("model", "mlp")

#: ``mlp-float64`` and ``mse-float64``: the built-in mlp (same params, same seeded start) and MSE,
#: computed in float64. For comparing two ways of computing the same training whose float32 runs
#: part because a non-convex network amplifies their different last-bit rounding (batched and
#: unbatched, graph and eager, one CPU and another): the same amplification A of float64 rounding
#: (u = 2^-53) leaves differences of about 2·A·u. FLOAT64_TOLERANCE = 1e-9 (9e6 u) holds unless
#: A > 4e6, that is, unless two float32 runs (u = 2^-24) of the training would end 25% apart:
#: no longer the same training at all. The lecture MLP's 150 epochs have A ≈ 1700.
FLOAT64 = hook_plugin(
    "test-float64",
    mlbasics_models=lambda: [
        ComponentSpec(
            kind="model",
            name="mlp-float64",
            factory=lambda **params: InFloat64(builtin_models.mlp(**params)),
            summary="the built-in mlp, in float64",
            params=_MLP.params,
        )
    ],
    mlbasics_losses=lambda: [
        ComponentSpec(kind="loss", name="mse-float64", factory=_mse_in_float64, summary="MSE in float64")
    ],
)

FLOAT64_TOLERANCE = 1e-9
