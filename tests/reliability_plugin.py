"""A test plugin whose components draw from the global random generators (torch's and Python's),
break on purpose, or come in versions: what the reliability tests need beyond the built-ins."""

from __future__ import annotations

import random
import types
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from mlbasics import ComponentSpec, Dataset, Param, PluginInfo, Registry, hookimpl
from mlbasics.core.plugins import PluginSet, PluginSettings


class DropoutLinear(nn.Module):
    """H(x) = Wx + b after dropout: every training step draws from torch's global generator."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=0.3)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(self.dropout(x))
        return out


class JitterSGD(torch.optim.SGD):
    """SGD whose step size wobbles by up to 10 %, drawn from Python's ``random`` at every step."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float) -> None:
        super().__init__(params, lr=lr, momentum=momentum)
        for group in self.param_groups:
            group["base_lr"] = lr

    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            group["lr"] = group["base_lr"] * (1 + 0.1 * random.random())
        return super().step(closure)


class PoisonSGD(torch.optim.SGD):
    """SGD that writes NaN into the last parameter after ``after`` steps: the loss it has already
    reported stays finite, only the parameter shows the damage."""

    def __init__(self, params: Iterable[torch.Tensor], after: int) -> None:
        super().__init__(params, lr=0.01)
        self.after = after
        self.steps = 0

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        result = super().step(closure)
        self.steps += 1
        if self.steps >= self.after:
            self.param_groups[0]["params"][-1].fill_(float("nan"))
        return result


def nan_data() -> Dataset:
    return Dataset.from_rows([(1.0, 2.0), (2.0, float("nan"))])


SPECS = {
    "model": [
        ComponentSpec(
            kind="model", name="dropout-linear", factory=DropoutLinear, summary="dropout, then linear"
        )
    ],
    "optimizer": [
        ComponentSpec(
            kind="optimizer",
            name="jitter-sgd",
            factory=JitterSGD,
            summary="SGD with a random step size",
            params=(
                Param(name="lr", type=float, default=0.01, gt=0),
                Param(name="momentum", type=float, default=0.0, ge=0, lt=1),
            ),
        ),
        ComponentSpec(
            kind="optimizer",
            name="poison-sgd",
            factory=PoisonSGD,
            summary="SGD that breaks a parameter",
            params=(Param(name="after", type=int, default=1, ge=1),),
        ),
    ],
    "dataset": [ComponentSpec(kind="dataset", name="nan-data", factory=nan_data, summary="a NaN target")],
    # Chosen through a model's param (model.activation=wobble): its provenance is recorded too.
    "activation": [
        ComponentSpec(kind="activation", name="wobble", factory=nn.Softsign, summary="x / (1 + |x|)")
    ],
}


def plugin() -> types.SimpleNamespace:
    namespace = types.SimpleNamespace(
        mlbasics_models=hookimpl(lambda: SPECS["model"]),
        mlbasics_optimizers=hookimpl(lambda: SPECS["optimizer"]),
        mlbasics_datasets=hookimpl(lambda: SPECS["dataset"]),
        mlbasics_activations=hookimpl(lambda: SPECS["activation"]),
    )
    namespace.__name__ = "reliability"
    return namespace


def registry(version: str | None = None, *, with_plugin: bool = True) -> Registry:
    """The built-ins plus (unless ``with_plugin=False``) this plugin, installed as distribution
    ``mlbasics-reliability`` at ``version`` (no distribution when ``None``)."""
    from mlbasics import builtin

    plugins = PluginSet(PluginSettings(entry_points=False, strict=True))
    plugins.add(builtin, info=PluginInfo(name="builtins"))
    if with_plugin:
        distribution = None if version is None else "mlbasics-reliability"
        plugins.add(plugin(), info=PluginInfo(name="reliability", distribution=distribution, version=version))
    return Registry(plugins)
