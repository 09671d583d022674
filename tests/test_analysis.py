"""collapse(): a stack of linear layers is one linear layer; anything non-linear is refused by name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlbasics import NotCollapsibleError, Registry, collapse


def test_three_layers_collapse_to_the_product_of_their_weights() -> None:
    torch.manual_seed(0)
    lin1, lin2, lin3 = nn.Linear(2, 4), nn.Linear(4, 3), nn.Linear(3, 1)
    single = collapse(nn.Sequential(lin1, lin2, lin3))
    with torch.no_grad():
        torch.testing.assert_close(single.weight, lin3.weight @ lin2.weight @ lin1.weight)
        torch.testing.assert_close(
            single.bias, lin3.weight @ lin2.weight @ lin1.bias + lin3.weight @ lin2.bias + lin3.bias
        )
        x = torch.randn(10, 2)
        torch.testing.assert_close(single(x), lin3(lin2(lin1(x))))


def test_the_builtin_linear_stack_collapses(registry: Registry) -> None:
    model = registry.build("model", "linear-stack", in_features=3)
    single = collapse(model)
    assert (single.in_features, single.out_features) == (3, 1)
    x = torch.randn(20, 3, dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(single(x), model(x))


def test_identity_activations_and_nesting_are_linear_too(registry: Registry) -> None:
    model = nn.Sequential(
        registry.build("model", "mlp", in_features=2, activation="identity"), nn.Sequential(nn.Linear(1, 2))
    )
    with torch.no_grad():
        x = torch.randn(5, 2)
        torch.testing.assert_close(collapse(model)(x), model(x))


def test_layers_without_bias_and_dtype_are_kept() -> None:
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)).double()
    single = collapse(model)
    assert single.weight.dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(single.bias, torch.zeros(1, dtype=torch.float64))


def test_a_single_linear_layer_is_its_own_collapse() -> None:
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        torch.testing.assert_close(collapse(layer).weight, layer.weight)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_a_non_linear_layer_is_named(registry: Registry, activation: str) -> None:
    model = registry.build("model", "mlp", in_features=1, activation=activation)
    name = type(model[1]).__name__
    with pytest.raises(NotCollapsibleError, match=rf"cannot collapse: layer 1 \({name}\) is not linear"):
        collapse(model)


def test_nothing_to_collapse() -> None:
    with pytest.raises(NotCollapsibleError, match="no linear layer"):
        collapse(nn.Sequential(nn.Identity()))
