"""The built-in models, activations, losses and optimizers (least squares included)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlbasics import ClosedFormSolver, Registry


def test_linear_is_one_nn_linear(registry: Registry) -> None:
    model = registry.build("model", "linear", in_features=3)
    assert isinstance(model, nn.Linear)
    assert (model.in_features, model.out_features) == (3, 1)
    assert registry.build("model", "linear", in_features=2, bias=False).bias is None


def test_mlp_defaults_are_the_lecture_network(registry: Registry) -> None:
    model = registry.build("model", "mlp", in_features=1)
    linear = [layer for layer in model if isinstance(layer, nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linear] == [(1, 6), (6, 10), (10, 6), (6, 1)]
    assert [type(layer).__name__ for layer in model if not isinstance(layer, nn.Linear)] == ["ReLU"] * 3


def test_linear_stack_has_no_activations(registry: Registry) -> None:
    model = registry.build("model", "linear-stack", in_features=2, hidden=[3, 4])
    assert all(isinstance(layer, nn.Linear) for layer in model)
    assert [(layer.in_features, layer.out_features) for layer in model] == [(2, 3), (3, 4), (4, 1)]


@pytest.mark.parametrize(
    ("name", "function"),
    [("relu", torch.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh), ("identity", lambda x: x)],
)
def test_activations(registry: Registry, name: str, function: object) -> None:
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(registry.build("activation", name)(x), function(x))  # type: ignore[operator]


def test_mse_is_the_mean_of_squares(registry: Registry) -> None:
    prediction, target = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[1.0], [0.0], [1.0]])
    assert float(registry.build("loss", "mse")(prediction, target)) == pytest.approx((0 + 4 + 9) / 3)


def test_sse_half_is_half_the_sum_of_squares(registry: Registry) -> None:
    prediction, target = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[1.0], [0.0], [1.0]])
    assert float(registry.build("loss", "sse-half")(prediction, target)) == pytest.approx((0 + 4 + 9) / 2)


def test_sgd_takes_its_declared_params(registry: Registry) -> None:
    weight = nn.Parameter(torch.zeros(2))
    optimizer = registry.build("optimizer", "sgd", [weight], lr=0.5, momentum=0.9, weight_decay=0.1)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.5, 0.9, 0.1)


def test_lstsq_is_exact_on_noise_free_data(registry: Registry) -> None:
    data = registry.build("dataset", "synthetic-linear", weights=[1.5, -2.0, 0.25, 4.0], bias=-3.0)
    model = registry.build("model", "linear", in_features=4)
    solver = registry.build("optimizer", "lstsq", list(model.parameters()))
    assert isinstance(solver, ClosedFormSolver)
    solver.solve(model, data.features, data.targets)
    torch.testing.assert_close(model.weight, torch.tensor([[1.5, -2.0, 0.25, 4.0]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.bias, torch.tensor([-3.0]), atol=1e-5, rtol=0)


def test_lstsq_matches_the_normal_equations_on_the_attendance_table(registry: Registry) -> None:
    data = registry.build("dataset", "attendance")
    model = registry.build("model", "linear", in_features=1)
    registry.build("optimizer", "lstsq", []).solve(model, data.features, data.targets)
    x, y = data.features[:, 0].double(), data.targets[:, 0].double()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert model.weight.item() == pytest.approx(slope.item(), rel=1e-6)
    assert model.bias.item() == pytest.approx((y.mean() - slope * x.mean()).item(), rel=1e-6)


def test_lstsq_handles_rank_deficient_data(registry: Registry) -> None:
    x = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])  # second column = 2 * first
    y = torch.tensor([[5.0], [10.0], [15.0]])
    model = registry.build("model", "linear", in_features=2, bias=False)
    registry.build("optimizer", "lstsq", []).solve(model, x, y)
    torch.testing.assert_close(model(x), y)  # the minimum-norm solution still fits exactly
    torch.testing.assert_close(model.weight, torch.tensor([[1.0, 2.0]]))


def test_lstsq_refuses_what_it_cannot_solve(registry: Registry) -> None:
    solver = registry.build("optimizer", "lstsq", [])
    mse = registry.get("loss", "mse")
    assert solver.check(registry.build("model", "linear", in_features=1), mse) is None
    assert "fits only a linear model" in solver.check(registry.build("model", "mlp", in_features=1), mse)
    l1 = type(mse)(kind="loss", name="l1", factory=nn.L1Loss, summary="mean absolute error")
    assert "loss 'l1' is not a least-squares loss" in solver.check(
        registry.build("model", "linear", in_features=1), l1
    )
