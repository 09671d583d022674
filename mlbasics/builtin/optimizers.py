"""The built-in optimizers: gradient descent, and least squares solved exactly in one step."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mlbasics.solvers import ClosedFormSolver
from mlbasics.specs import ComponentSpec


def sgd(
    parameters: Iterable[torch.Tensor], lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)


class LeastSquares(ClosedFormSolver):
    """Solves min‖[X 1]·θ - y‖² with LAPACK's gelsy (a complete orthogonal factorisation), so
    rank-deficient data still get the minimum-norm solution; about half the time of the SVD-based
    gelsd. Solved in float64 on the CPU: the system is tiny and CUDA's only driver (gels) assumes
    full rank."""

    def check(self, model: nn.Module, loss: ComponentSpec) -> str | None:
        if type(model) is not nn.Linear:
            return f"optimizer 'lstsq' fits only a linear model (torch.nn.Linear), not {type(model).__name__}"
        if "least-squares" not in loss.tags:
            return (
                f"optimizer 'lstsq' minimises squared error; loss {loss.name!r} is not a least-squares loss"
            )
        return None

    @torch.no_grad()
    def solve(self, model: nn.Module, features: torch.Tensor, targets: torch.Tensor) -> None:
        assert isinstance(model, nn.Linear)
        design = features.detach().to("cpu", torch.float64)
        if model.bias is not None:
            design = torch.cat([design, torch.ones(len(design), 1, dtype=torch.float64)], dim=1)
        solution = torch.linalg.lstsq(
            design, targets.detach().to("cpu", torch.float64), driver="gelsy"
        ).solution
        model.weight.copy_(solution[: model.in_features].T)
        if model.bias is not None:
            model.bias.copy_(solution[model.in_features])


def lstsq(parameters: Iterable[torch.Tensor]) -> LeastSquares:
    return LeastSquares()
