"""Properties 1 and 2: a stack of linear layers is one linear layer; with σ between them it is not.

Weights, biases and inputs are drawn by Hypothesis (nn.Linear's initialiser never runs), for stacks
of 1 to 6 layers of widths 1 to 8. Tolerances are rounding-error bounds (tests/_rounding.py): in
float32 they scale with |W_k|···|W_1|·|x|, the stack run on absolute values.
"""

from __future__ import annotations

import pytest
import torch
from _rounding import (
    gamma,
    growth,
    linear_layers,
    magnitude,
    roundings,
    underflow_floor,
    weight_magnitude,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mlbasics import NotCollapsibleError, Registry, collapse
from mlbasics.testing.strategies import linear_stacks, tensors

REGISTRY = Registry.isolated()
NON_LINEAR = [s.name for s in REGISTRY.specs("activation") if "identity" not in s.tags]
DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]


def test_the_builtin_non_linear_activations_are_the_lectures_three() -> None:
    # The parametrisations below run over this list; it must not shrink unnoticed.
    assert sorted(NON_LINEAR) == ["relu", "sigmoid", "tanh"]


def _composed(layers: list[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor]:
    """W = W_k···W_1 and b = Σ_j (W_k···W_{j+1})·b_j, in float64, by the sum formula (collapse()
    uses a running product instead, so the two are computed differently)."""
    weights = [layer.weight.detach().double() for layer in layers]
    product = torch.linalg.multi_dot(weights[::-1]) if len(weights) > 1 else weights[0]
    bias = torch.zeros(layers[-1].out_features, dtype=torch.float64)
    for j, layer in enumerate(layers):
        if layer.bias is None:
            continue
        after = weights[j + 1 :][::-1]
        suffix = after[0] if len(after) == 1 else (torch.linalg.multi_dot(after) if after else None)
        term = layer.bias.detach().double()
        bias = bias + (suffix @ term if suffix is not None else term)
    return product, bias


def _assert_within(actual: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor, what: str) -> None:
    error = (actual.double() - expected.double()).abs()
    worst = int((error - bound).argmax())
    assert bool((error <= bound).all()), (
        f"{what}: error {float(error.flatten()[worst]):.3g} exceeds the rounding bound "
        f"{float(bound.flatten()[worst]):.3g}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=100)
@given(data=st.data())
def test_a_linear_stack_collapses_to_one_linear_layer(dtype: torch.dtype, data: st.DataObject) -> None:
    stack = data.draw(linear_stacks(dtype=dtype), label="stack")
    layers = linear_layers(stack)
    n = data.draw(st.integers(1, 4), label="n")
    x = data.draw(tensors(dtype=dtype, shape=(n, layers[0].in_features)), label="x")

    single = collapse(stack)

    assert isinstance(single, nn.Linear)
    assert (single.in_features, single.out_features) == (layers[0].in_features, layers[-1].out_features)
    assert single.weight.dtype == dtype
    m = roundings(layers) + layers[0].in_features + 1  # the stack's roundings, then single's own
    floor = underflow_floor(m, dtype, growth(layers))
    with torch.no_grad():
        bound = 2 * gamma(m, dtype) * magnitude(layers, x) + floor
        _assert_within(single(x), stack(x), bound, "collapse(model)(x) vs model(x)")

        weight, bias = _composed(layers)
        tolerance = gamma(m, dtype) + gamma(m, torch.float64)  # collapse's rounding + the reference's
        weight_bound = tolerance * weight_magnitude(layers) + floor
        _assert_within(single.weight, weight, weight_bound, "W vs W_k···W_1")
        zeros = torch.zeros(1, layers[0].in_features, dtype=torch.float64)
        bias_bound = tolerance * magnitude(layers, zeros)[0] + floor
        _assert_within(single.bias, bias, bias_bound, "b vs the composed bias")


@settings(max_examples=50)
@given(stack=linear_stacks(depth=st.integers(2, 6)), data=st.data())
def test_identity_activations_between_the_layers_still_collapse(
    stack: nn.Sequential, data: st.DataObject
) -> None:
    gaps = data.draw(st.sets(st.integers(1, len(stack) - 1), min_size=1), label="gaps")
    layers: list[nn.Module] = list(stack)
    for gap in sorted(gaps, reverse=True):
        layers.insert(gap, REGISTRY.build("activation", "identity"))
    model = nn.Sequential(*layers)
    x = data.draw(tensors(dtype=torch.float64, shape=(3, stack[0].in_features)), label="x")
    with torch.no_grad():
        m = roundings(linear_layers(stack)) + stack[0].in_features + 1
        bound = 2 * gamma(m, torch.float64) * magnitude(linear_layers(stack), x)
        bound += underflow_floor(m, torch.float64, growth(linear_layers(stack)))
        _assert_within(collapse(model)(x), model(x), bound, "collapse through identities")


@pytest.mark.parametrize("activation", NON_LINEAR)
@settings(max_examples=25)
@given(stack=linear_stacks(depth=st.integers(2, 6)), data=st.data())
def test_collapse_refuses_a_stack_with_a_non_linear_activation(
    activation: str, stack: nn.Sequential, data: st.DataObject
) -> None:
    gap = data.draw(st.integers(1, len(stack) - 1), label="gap")
    layers: list[nn.Module] = list(stack)
    layers.insert(gap, REGISTRY.build("activation", activation))
    name = type(layers[gap]).__name__
    with pytest.raises(NotCollapsibleError, match=rf"layer {gap} \({name}\) is not linear"):
        collapse(nn.Sequential(*layers))


#: Inputs a, b for each σ at which σ((a + b)/2) differs from (σ(a) + σ(b))/2.
WITNESSES = {"relu": (-1.0, 1.0), "sigmoid": (0.0, 4.0), "tanh": (0.0, 2.0)}


@pytest.mark.parametrize("activation", NON_LINEAR)
def test_a_witness_input_shows_no_linear_layer_equals_the_stack(activation: str) -> None:
    """Every affine map g (every nn.Linear) has g((a + b)/2) = (g(a) + g(b))/2. The stack
    Linear(1, 1) -> σ -> Linear(1, 1) with unit weights and zero biases computes σ itself, and σ
    breaks that identity at the witness inputs a, b: so no single linear layer equals the stack,
    while without σ the same two layers collapse to the identity map."""
    first, second = nn.Linear(1, 1, dtype=torch.float64), nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        for layer in (first, second):
            layer.weight.fill_(1.0)
            layer.bias.zero_()
    model = nn.Sequential(first, REGISTRY.build("activation", activation), second)
    a, b = WITNESSES[activation]
    x = torch.tensor([[a], [(a + b) / 2], [b]], dtype=torch.float64)
    with torch.no_grad():
        at_a, at_midpoint, at_b = model(x)[:, 0].tolist()
        linear_guess = collapse(nn.Sequential(first, second))(x)[:, 0].tolist()
    assert abs(at_midpoint - (at_a + at_b) / 2) > 0.1
    assert abs(linear_guess[1] - (linear_guess[0] + linear_guess[2]) / 2) < 1e-15
    assert (
        max(abs(guess - value) for guess, value in zip(linear_guess, (at_a, at_midpoint, at_b), strict=True))
        > 0.1
    )
