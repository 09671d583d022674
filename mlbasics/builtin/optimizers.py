"""The built-in optimizers: gradient descent, and least squares solved exactly in one step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from mlbasics.core.specs import ComponentSpec
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.sweeps.ensemble import any_nonzero, is_shared, per_member


def sgd(
    parameters: Iterable[torch.Tensor], lr: float, momentum: float, weight_decay: float
) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)


def stacked_sgd(
    params: dict[str, torch.Tensor],
    grads: Mapping[str, torch.Tensor],
    state: dict[str, Any],
    hyper: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """sgd's stacked form: torch.optim.SGD's update (``_single_tensor_sgd``) for stacked members.

    Reads torch.optim.SGD's arguments: ``lr``, and ``momentum``, ``weight_decay``, ``dampening``,
    ``nesterov`` and ``maximize`` where they are declared (torch.optim.SGD's defaults otherwise),
    so a plugin whose optimizer is a torch.optim.SGD with params of those names can declare this
    same stacked form. Where a value is shared by all members, the update is the very
    operation torch.optim.SGD uses.
    """
    lr, momentum, decay = hyper["lr"], hyper.get("momentum", 0.0), hyper.get("weight_decay", 0.0)
    dampening = hyper.get("dampening", 0.0)
    nesterov, maximize = hyper.get("nesterov", False), hyper.get("maximize", False)
    buffers: dict[str, torch.Tensor] = state.setdefault("momentum_buffer", {})
    for name, param in params.items():
        grad = -grads[name] if maximize else grads[name]
        if is_shared(decay):
            if decay != 0:
                grad = grad.add(param, alpha=decay)
        else:
            grad = torch.addcmul(grad, param, per_member(decay, param))  # + 0·param for members without
        direction = grad
        if any_nonzero(momentum):
            buffer = buffers.get(name)
            if buffer is None:
                buffer = buffers[name] = grad.detach().clone()
            else:
                buffer.mul_(per_member(momentum, param)).add_(grad, alpha=1 - dampening)
            if not nesterov:
                direction = buffer
            elif is_shared(momentum):
                direction = grad.add(buffer, alpha=momentum)
            else:
                direction = torch.addcmul(grad, buffer, per_member(momentum, param))
            if not is_shared(momentum):
                # Members without momentum step along the plain gradient, as torch.optim.SGD does.
                direction = torch.where(per_member(momentum, param) != 0, direction, grad)
        if is_shared(lr):
            param.add_(direction, alpha=-lr)
        else:
            param.addcmul_(direction, per_member(lr, param), value=-1)
    return params, state


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
