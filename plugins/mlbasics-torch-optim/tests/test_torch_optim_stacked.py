"""The stacked forms of Adam, AdamW and RMSprop: each follows its torch.optim optimizer step by step,
and a sweep with them trains every member as one vmapped ensemble, as it would train alone.

Tolerances, from an argument rather than from one CPU's rounding:

* Step by step (the same gradients fed to both): every operation of a stacked update is the
  elementwise operation torch.optim applies, or, for a hyperparameter that differs between
  members, the same arithmetic with the hyperparameter as a float32 tensor instead of a Python
  float: the same optimizer with each hyperparameter moved by less than one float32 ulp (a β of
  0.999 by 6e-8, used consistently in the average and in its bias correction, so the two cancel to
  first order). Each step therefore differs by a few float32 roundings of the update, a few ulps
  (eps = 2**-24 relative) of values of order 1: after 20 steps that stays well inside
  ``assert_close``'s float32 tolerance (atol 1e-5, rtol 1.3e-6).
* A whole sweep (gradients computed batched and alone): ``linear`` on ``synthetic-linear`` with true
  weights (4, 5, 6) and bias 7, learning rates <= 0.02, 100 epochs. Every parameter is then still at
  least 0.5 from its true value and the loss above 1 (both asserted): each member is on its way to
  the optimum, its gradient components are far from zero, and the step, lr·m/(√v + eps) (or
  lr·g/(√v + eps)), changes relatively by about as much as the gradient does. A batched reduction
  over the n = 100 samples sums in another order, which changes a sum by at most n·eps ≈ 6e-6 of
  its terms' magnitudes; with terms of one size and a gradient far from zero, a gradient by about
  as much relatively, and a step by twice that (1.2e-5), i.e. 0.02 · 1.2e-5 = 2.4e-7 absolutely,
  plus one ulp of a parameter below 8 (4.8e-7) where the two results round apart. Over 100 steps
  that is at most 7.2e-5 in any parameter: ``PARAMETER_ATOL`` (the differences measured are 1e-7
  to 5e-7, so an order-of-magnitude slip in this estimate still passes, while a wrong update, off
  by a rounding of lr or a lost momentum term, moves parameters by 1e-3 or more). A residual then
  changes by at most (1 + Σ|x_j|)·7.2e-5 with |x_j| < 5 for 100 standard-normal samples, so the
  loss, a mean of squared residuals of size >= 1, changes relatively by less than ``LOSS_RTOL``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from mlbasics_torch_optim import optimizers, stacked

import mlbasics
from mlbasics import Registry
from mlbasics.sweeps.ensemble import stacked_hyper

#: Far from where the models start (nn.Linear's weights and bias start within 0.6 of 0).
FAR: dict[str, Any] = {"name": "synthetic-linear", "weights": [4.0, 5.0, 6.0], "bias": 7.0}
PARAMETER_ATOL = 7.2e-5
LOSS_RTOL = 2 * (1 + 3 * 5) * PARAMETER_ATOL  # 2·Δr/r with r >= 1

ADAM = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False}
RMSPROP = {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False}

CASES: list[
    tuple[str, Callable[..., torch.optim.Optimizer], Callable[..., Any], dict[str, Any], list[dict[str, Any]]]
] = [
    ("adam shared", optimizers.adam, stacked.adam, ADAM, [{}] * 3),
    ("adam lr", optimizers.adam, stacked.adam, ADAM, [{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.003}]),
    (
        "adam betas, decay",
        optimizers.adam,
        stacked.adam,
        ADAM,
        [{"beta1": 0.5, "weight_decay": 0.1}, {"beta2": 0.9}, {"beta1": 0.0, "beta2": 0.5, "eps": 1e-3}],
    ),
    ("adam amsgrad", optimizers.adam, stacked.adam, ADAM | {"amsgrad": True}, [{"lr": 0.1}, {"lr": 0.05}]),
    ("adamw shared", optimizers.adamw, stacked.adamw, ADAM | {"weight_decay": 0.01}, [{}] * 2),
    (
        "adamw decay",
        optimizers.adamw,
        stacked.adamw,
        ADAM,
        [{"weight_decay": 0.1}, {"weight_decay": 0.0}, {"lr": 0.1, "weight_decay": 0.01}],
    ),
    ("rmsprop shared", optimizers.rmsprop, stacked.rmsprop, RMSPROP, [{}] * 2),
    (
        "rmsprop per member",
        optimizers.rmsprop,
        stacked.rmsprop,
        RMSPROP,
        [{"lr": 0.1, "momentum": 0.9}, {"alpha": 0.5}, {"weight_decay": 0.1, "momentum": 0.3}],
    ),
    (
        "rmsprop centered",
        optimizers.rmsprop,
        stacked.rmsprop,
        RMSPROP | {"centered": True, "momentum": 0.5},
        [{"lr": 0.1}, {"lr": 0.01, "alpha": 0.9}],
    ),
]


@pytest.mark.parametrize(
    ("factory", "update", "defaults", "members"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_stacked_update_follows_the_optimizer_step_by_step(
    factory: Callable[..., torch.optim.Optimizer],
    update: Callable[..., Any],
    defaults: dict[str, Any],
    members: list[dict[str, Any]],
) -> None:
    settings = [defaults | member for member in members]
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(len(settings), 4, 3, generator=generator)
    grads = [torch.randn(len(settings), 4, 3, generator=generator) for _ in range(20)]
    singles = [start[m].clone() for m in range(len(settings))]
    torch_optimizers = [factory([p], **s) for p, s in zip(singles, settings, strict=True)]
    hyper = stacked_hyper(settings, start.device, start.dtype)
    assert isinstance(hyper, dict)
    params, state = {"w": start.clone()}, {}
    for grad in grads:
        for m, (p, optimizer) in enumerate(zip(singles, torch_optimizers, strict=True)):
            p.grad = grad[m].clone()
            optimizer.step()
        with torch.no_grad():
            params, state = update(params, {"w": grad}, state, hyper)
        torch.testing.assert_close(params["w"], torch.stack(singles))  # float32 tolerance: see above


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_each_member_of_a_vmapped_sweep_trains_as_it_would_alone(registry: Registry, name: str) -> None:
    experiment = mlbasics.Experiment(dataset=FAR, model="linear", optimizer=name, epochs=100, device="cpu")
    grid = {"optimizer.weight_decay": [0.0, 0.1]}
    result = mlbasics.sweep(experiment, seeds=[0, 1], lrs=[0.01, 0.02], grid=grid, registry=registry)
    assert (result.mode, result.reason) == ("vmap", None)
    assert len(result.members) == 8
    for member in result.members:
        alone = mlbasics.train(member.experiment, registry=registry)
        learned = torch.cat([alone.parameters["weight"].flatten(), alone.parameters["bias"]])
        gap = float((learned - torch.tensor([*FAR["weights"], FAR["bias"]])).abs().min())
        assert gap >= 0.5, "the tolerances assume every member is still far from the optimum"
        assert min(alone.history) > 1
        torch.testing.assert_close(
            member.history, torch.tensor(alone.history), rtol=LOSS_RTOL, atol=0, msg=member.label
        )
        for key, value in alone.parameters.items():
            torch.testing.assert_close(
                member.parameters[key], value, rtol=0, atol=PARAMETER_ATOL, msg=f"{member.label}: {key}"
            )


def test_lbfgs_declares_no_stacked_form(registry: Registry) -> None:
    """L-BFGS needs a closure (a line search re-evaluates the loss): its sweeps run one after another."""
    assert registry.get("optimizer", "lbfgs").stacked is None
    assert {spec.name for spec in registry.specs("optimizer", plugin="torch-optim") if spec.stacked} == {
        "adam",
        "adamw",
        "rmsprop",
    }
