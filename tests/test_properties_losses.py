"""Properties 6 and 7: what MSE and sse-half are, and that full-batch training does not care about
the order of the samples."""

from __future__ import annotations

import pytest
import torch
from _rounding import gamma, underflow_floor
from hypothesis import given, settings
from hypothesis import strategies as st

from mlbasics import Dataset, Registry
from mlbasics.testing.strategies import datasets, tensors

REGISTRY = Registry.isolated()
LOSSES = ["mse", "sse-half"]


@st.composite
def pairs(draw: st.DrawFn, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A prediction and a target shaped (n, 1); the target is sometimes the prediction itself,
    sometimes equal to it in a few rows only."""
    n = draw(st.integers(1, 16), label="n")
    prediction = draw(tensors(dtype=dtype, shape=(n, 1)), label="prediction")
    target = draw(tensors(dtype=dtype, shape=(n, 1)), label="target")
    keep = draw(st.lists(st.booleans(), min_size=n, max_size=n), label="rows equal")
    target = torch.where(torch.tensor(keep).unsqueeze(1), prediction, target)
    return prediction, target


@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=100)
@given(pair=pairs())
def test_a_loss_is_non_negative_and_zero_exactly_when_prediction_equals_target(
    name: str, pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    prediction, target = pair
    loss = REGISTRY.build("loss", name)
    assert float(loss(prediction, target)) >= 0
    # "Zero iff equal" is exact in float64: the inputs are float32 numbers, so a non-zero
    # difference is at least 2^-149 and its square (2^-298) does not underflow there. (In float32
    # it would: that is rounding, not the loss.)
    value = float(loss(prediction.double(), target.double()))
    assert (value == 0.0) == torch.equal(prediction, target)


@settings(max_examples=100)
@given(pair=pairs())
def test_mse_is_sse_half_times_two_over_n(pair: tuple[torch.Tensor, torch.Tensor]) -> None:
    prediction, target = pair
    n = len(prediction)
    mse = float(REGISTRY.build("loss", "mse")(prediction, target))
    sse_half = float(REGISTRY.build("loss", "sse-half")(prediction, target))
    # Both square the same differences and sum them (in float32): only the summation and the
    # final scaling round differently.
    squares = float(((prediction.double() - target.double()) ** 2).sum())
    bound = 2 * gamma(n + 3, torch.float32) * squares / n + underflow_floor(n + 3, torch.float32)
    assert abs(mse - sse_half * 2 / n) <= bound


@st.composite
def shuffled_problems(draw: st.DrawFn) -> tuple[Dataset, list[int], torch.Tensor, float]:
    data = draw(datasets(n_samples=st.integers(2, 16)), label="dataset")
    order = draw(st.permutations(range(data.n_samples)), label="order")
    weight = draw(tensors(dtype=torch.float32, shape=(1, data.n_features)), label="w")
    bias = draw(tensors(dtype=torch.float32, shape=(1,)), label="b")
    return data, order, weight, float(bias[0])


@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=100)
@given(problem=shuffled_problems())
def test_full_batch_loss_and_gradients_do_not_depend_on_the_sample_order(
    name: str, problem: tuple[Dataset, list[int], torch.Tensor, float]
) -> None:
    data, order, weight, bias = problem
    results = []
    for rows in (list(range(data.n_samples)), order):
        model = REGISTRY.build("model", "linear", in_features=data.n_features)
        with torch.no_grad():
            model.weight.copy_(weight)
            model.bias.fill_(bias)
        value = REGISTRY.build("loss", name)(model(data.features[rows]), data.targets[rows])
        value.backward()
        assert model.weight.grad is not None
        assert model.bias.grad is not None
        results.append((float(value.detach()), model.weight.grad[0].clone(), float(model.bias.grad[0])))
    (loss, grad_w, grad_b), (loss_shuffled, grad_w_shuffled, grad_b_shuffled) = results

    # Reordering changes only the order of the sums over samples. Two orders of a float32 sum of
    # n terms differ by at most 2·γ_n·Σ|terms|, and each term is itself rounded (d + 2 operations).
    n, d = data.n_samples, data.n_features
    x, y = data.features.double(), data.targets.double()
    scale = x.abs() @ weight.double().abs().T + abs(bias) + y.abs()  # bounds |residual| per sample
    per = {"mse": 1 / n, "sse-half": 0.5}[name]
    g = 2 * gamma(n + d + 3, torch.float32)
    floor = underflow_floor(n + d + 3, torch.float32, float(x.abs().max()) + 1)
    assert abs(loss - loss_shuffled) <= g * per * float((scale**2).sum()) + floor
    factor = 2 * per  # d(per·r²)/dr
    assert torch.all(
        (grad_w - grad_w_shuffled).abs().double() <= g * factor * (scale * x.abs()).sum(0) + floor
    )
    assert abs(grad_b - grad_b_shuffled) <= g * factor * float(scale.sum()) + floor
