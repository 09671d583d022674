"""The built-in models: H(x) = Wx + b, the MLP, and a stack of linear layers without activations."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from torch import nn


def linear(in_features: int, out_features: int, bias: bool) -> nn.Linear:
    return nn.Linear(in_features, out_features, bias=bias)


def mlp(
    in_features: int, out_features: int, hidden: list[int], activation: Callable[[], nn.Module]
) -> nn.Sequential:
    sizes = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(itertools.pairwise(sizes)):
        if index > 0:
            layers.append(activation())
        layers.append(nn.Linear(size_in, size_out))
    return nn.Sequential(*layers)


def linear_stack(in_features: int, out_features: int, hidden: list[int]) -> nn.Sequential:
    sizes = [in_features, *hidden, out_features]
    return nn.Sequential(*(nn.Linear(a, b) for a, b in itertools.pairwise(sizes)))
