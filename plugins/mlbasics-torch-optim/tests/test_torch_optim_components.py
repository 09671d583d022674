"""Each component: its declared params reach torch with the right meaning, and bad values are refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlbasics import ComponentSpec, Registry, ValidationError


def test_the_plugin_provides_its_components(plugin_specs: list[ComponentSpec]) -> None:
    assert sorted((s.kind, s.name) for s in plugin_specs) == [
        ("loss", "huber"),
        ("loss", "l1"),
        ("loss", "smooth-l1"),
        ("optimizer", "adam"),
        ("optimizer", "adamw"),
        ("optimizer", "lbfgs"),
        ("optimizer", "rmsprop"),
    ]
    # Factories are strings, imported only when a component is built: listing stays fast.
    assert all(isinstance(s.factory, str) for s in plugin_specs)
    assert [s.name for s in plugin_specs if "closure" in s.tags] == ["lbfgs"]


def _weights() -> list[torch.Tensor]:
    return [nn.Parameter(torch.zeros(3))]


def test_adam_params_reach_torch(registry: Registry) -> None:
    optimizer = registry.build(
        "optimizer", "adam", _weights(), lr=0.1, beta1=0.8, beta2=0.99, eps=1e-6, amsgrad=True
    )
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"], group["amsgrad"]) == (
        0.1,
        (0.8, 0.99),
        1e-6,
        0.0,
        True,
    )


def test_adamw_decays_weights_by_default(registry: Registry) -> None:
    optimizer = registry.build("optimizer", "adamw", _weights())
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 0.01


def test_rmsprop_params_reach_torch(registry: Registry) -> None:
    optimizer = registry.build(
        "optimizer", "rmsprop", _weights(), lr=0.02, alpha=0.9, momentum=0.5, centered=True
    )
    assert isinstance(optimizer, torch.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["momentum"], group["centered"]) == (0.02, 0.9, 0.5, True)


def test_lbfgs_line_search_choice(registry: Registry) -> None:
    strong = registry.build("optimizer", "lbfgs", _weights())
    assert isinstance(strong, torch.optim.LBFGS)
    assert strong.param_groups[0]["line_search_fn"] == "strong_wolfe"
    plain = registry.build("optimizer", "lbfgs", _weights(), line_search="none", max_iter=5)
    assert (plain.param_groups[0]["line_search_fn"], plain.param_groups[0]["max_iter"]) == (None, 5)


@pytest.mark.parametrize(
    ("name", "params", "problem"),
    [
        ("adam", {"lr": 0.0}, "optimizer 'adam': param 'lr' must be > 0, got 0.0"),
        ("adam", {"beta1": 1.0}, "optimizer 'adam': param 'beta1' must be < 1, got 1.0"),
        ("adamw", {"weight_decay": -0.1}, "optimizer 'adamw': param 'weight_decay' must be >= 0, got -0.1"),
        (
            "rmsprop",
            {"centered": "yes"},
            "optimizer 'rmsprop': param 'centered' expected bool, got 'yes' (str)",
        ),
        (
            "lbfgs",
            {"line_search": "wolfe"},
            "optimizer 'lbfgs': param 'line_search' must be one of strong_wolfe, none; got 'wolfe'",
        ),
        ("lbfgs", {"max_iter": 0}, "optimizer 'lbfgs': param 'max_iter' must be >= 1, got 0"),
        ("huber", {"delta": 0}, "loss 'huber': param 'delta' must be > 0, got 0.0"),
        ("smooth-l1", {"beta": -1}, "loss 'smooth-l1': param 'beta' must be >= 0, got -1.0"),
        (
            "adam",
            {"betas": [0.9, 0.9]},
            "optimizer 'adam': unknown param 'betas'; did you mean 'beta2' or 'beta1'?",
        ),
    ],
)
def test_bad_values_are_refused_before_torch_sees_them(
    registry: Registry, name: str, params: dict[str, object], problem: str
) -> None:
    kind = "loss" if name in {"huber", "smooth-l1"} else "optimizer"
    with pytest.raises(ValidationError) as error:
        registry.resolve(kind, name, params)
    assert error.value.problems == (problem,)


PREDICTION = torch.tensor([[0.0], [1.0], [5.0]])
TARGET = torch.tensor([[0.5], [1.0], [1.0]])  # residuals -0.5, 0, 4


def test_l1_is_the_mean_absolute_error(registry: Registry) -> None:
    assert float(registry.build("loss", "l1")(PREDICTION, TARGET)) == pytest.approx((0.5 + 0 + 4) / 3)


def test_huber_is_quadratic_inside_delta_and_linear_outside(registry: Registry) -> None:
    # ½r² for |r| <= delta, delta·(|r| - ½delta) beyond: ½·0.25, 0, 1·(4 - 0.5)
    expected = (0.125 + 0 + 3.5) / 3
    assert float(registry.build("loss", "huber")(PREDICTION, TARGET)) == pytest.approx(expected)
    # delta 10: every residual is inside, so it is half the mean squared error
    assert float(registry.build("loss", "huber", delta=10.0)(PREDICTION, TARGET)) == pytest.approx(
        (0.25 + 0 + 16) / 2 / 3
    )


@pytest.mark.parametrize("beta", [0.25, 1.0, 3.0])
def test_smooth_l1_is_huber_divided_by_beta(registry: Registry, beta: float) -> None:
    smooth = float(registry.build("loss", "smooth-l1", beta=beta)(PREDICTION, TARGET))
    huber = float(registry.build("loss", "huber", delta=beta)(PREDICTION, TARGET))
    assert smooth == pytest.approx(huber / beta)


def test_smooth_l1_with_beta_zero_is_l1(registry: Registry) -> None:
    smooth = float(registry.build("loss", "smooth-l1", beta=0.0)(PREDICTION, TARGET))
    assert smooth == pytest.approx(float(registry.build("loss", "l1")(PREDICTION, TARGET)))
