"""The polynomial model and the activations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mlbasics
from mlbasics import Registry, ValidationError


def test_polynomial_model_is_linear_in_the_powers(registry: Registry) -> None:
    model = registry.build("model", "polynomial", in_features=2, degree=3)
    linear = model.linear
    assert (linear.in_features, linear.out_features) == (6, 1)
    x = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]]))
        linear.bias.fill_(7.0)
        # columns are x1, x2, x1², x2², x1³, x2³
        expected = (
            7
            + x[:, 0]
            + 10 * x[:, 1]
            + 100 * x[:, 0] ** 2
            + 1000 * x[:, 1] ** 2
            + 1e4 * x[:, 0] ** 3
            + 1e5 * x[:, 1] ** 3
        )
        torch.testing.assert_close(model(x)[:, 0], expected)


def test_polynomial_model_fits_the_lecture_curve_exactly(registry: Registry) -> None:
    # y = x² + 3 is a polynomial of degree 2: gradient descent finds w = (0, 1) and b = 3, which the
    # lecture's MLP can only approximate.
    result = mlbasics.train(
        dataset="polynomial",
        model={"name": "polynomial", "degree": 2},
        optimizer={"name": "sgd", "lr": 0.1},
        epochs=1000,
        registry=registry,
    )
    assert result.parameters["linear.weight"][0].tolist() == pytest.approx([0.0, 1.0], abs=1e-4)
    assert result.parameters["linear.bias"].tolist() == pytest.approx([3.0], abs=1e-4)


def test_polynomial_model_degree_is_bounded(registry: Registry) -> None:
    assert registry.check("model", "polynomial", {"in_features": 1, "degree": 0}) == [
        "model 'polynomial': param 'degree' must be >= 1, got 0"
    ]
    assert registry.build("model", "polynomial", in_features=1, bias=False).linear.bias is None


X = torch.linspace(-4, 4, 33, dtype=torch.float64)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("gelu", {}, lambda x: x * 0.5 * (1 + torch.erf(x / 2**0.5))),
        ("gelu", {"approximate": "tanh"}, lambda x: nn.functional.gelu(x, approximate="tanh")),
        ("leaky-relu", {}, lambda x: torch.where(x > 0, x, 0.01 * x)),
        ("leaky-relu", {"negative_slope": 0.2}, lambda x: torch.where(x > 0, x, 0.2 * x)),
        ("silu", {}, lambda x: x * torch.sigmoid(x)),
        ("softplus", {}, lambda x: torch.log1p(torch.exp(x))),
        ("softplus", {"beta": 2.0}, lambda x: torch.log1p(torch.exp(2 * x)) / 2),
        ("elu", {}, lambda x: torch.where(x > 0, x, torch.exp(x) - 1)),
        ("elu", {"alpha": 0.5}, lambda x: torch.where(x > 0, x, 0.5 * (torch.exp(x) - 1))),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_activations_compute_their_formula(
    registry: Registry, name: str, params: dict[str, object], expected: object
) -> None:
    activation = registry.build("activation", name, **params)
    torch.testing.assert_close(activation(X), expected(X))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "params", "problem"),
    [
        (
            "leaky-relu",
            {"negative_slope": -0.1},
            "activation 'leaky-relu': param 'negative_slope' must be >= 0, got -0.1",
        ),
        ("softplus", {"beta": 0}, "activation 'softplus': param 'beta' must be > 0, got 0.0"),
        (
            "gelu",
            {"approximate": "fast"},
            "activation 'gelu': param 'approximate' must be one of none, tanh; got 'fast'",
        ),
        ("silu", {"slope": 1.0}, "activation 'silu': unknown param 'slope'; it takes no params"),
    ],
)
def test_bad_activation_params_are_refused(
    registry: Registry, name: str, params: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError) as error:
        registry.build("activation", name, **params)
    assert error.value.problems == (problem,)


def test_an_mlp_takes_the_plugins_activations(registry: Registry) -> None:
    model = registry.build("model", "mlp", in_features=1, hidden=[4, 4], activation="leaky-relu")
    assert [type(layer).__name__ for layer in model if not isinstance(layer, nn.Linear)] == ["LeakyReLU"] * 2


def test_an_mlp_with_silu_learns_the_sine(registry: Registry) -> None:
    result = mlbasics.train(
        dataset={"name": "sine", "n": 100},
        model={"name": "mlp", "hidden": [16, 16], "activation": "silu"},
        optimizer={"name": "sgd", "lr": 0.1},
        epochs=500,
        registry=registry,
    )
    assert result.final_loss < result.history[0] / 10
