"""Many copies of one small model trained at once, as one batched computation (``torch.func.vmap``).

A model as small as the lecture's MLP leaves a CPU or GPU almost idle: each step is a few dozen
tiny operations, and the time goes into dispatching them. Stacking the parameters of M models
along a new first dimension (``stack_module_state``) and mapping the per-model loss and gradient
over it (``vmap(grad_and_value(...))``) dispatches each operation once for all M models.

The update is torch.optim.SGD's, written out for stacked parameters (:class:`StackedSGD`):
learning rate, momentum and weight decay may differ between members. Where a setting is the same
for all members, the update uses the very operation torch.optim.SGD uses. The batched products
still round differently from one model's in the last bit, so a member's history equals its single
run within float32 tolerance (bitwise only by luck); docs/performance.md says how far that goes.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from mlbasics.devices import synchronize
from mlbasics.errors import one_line
from mlbasics.solvers import ClosedFormSolver

#: torch.optim.SGD's param-group settings, and which of them may differ between members.
_SGD_PER_MEMBER: Final = ("lr", "momentum", "weight_decay")
_SGD_SHARED: Final = ("dampening", "nesterov", "maximize", "differentiable")
_SGD_IGNORED: Final = ("params", "foreach", "fused")  # how the update runs, not what it computes


@attrs.frozen
class SGDSettings:
    """torch.optim.SGD's hyperparameters for each member (tuples) and for all (scalars)."""

    lr: tuple[float, ...]
    momentum: tuple[float, ...]
    weight_decay: tuple[float, ...]
    dampening: float
    nesterov: bool
    maximize: bool


def sgd_settings(optimizers: Sequence[Any], names: Sequence[str]) -> SGDSettings | str:
    """The members' SGD settings, or why their optimizers have no stacked form here.
    ``names`` are the optimizers' registry names, for the message."""
    first = optimizers[0]
    for optimizer, name in zip(optimizers, names, strict=True):
        if isinstance(optimizer, ClosedFormSolver):
            return f"optimizer {name!r} solves in closed form: there are no steps to batch"
        kind = f"{type(optimizer).__module__}.{type(optimizer).__qualname__}"
        if type(optimizer) is not torch.optim.SGD:
            return f"optimizer {name!r} ({kind}) has no stacked form here (only torch.optim.SGD has)"
        if len(optimizer.param_groups) != 1:
            return f"optimizer {name!r} has {len(optimizer.param_groups)} parameter groups; the stacked SGD takes one"
        group = optimizer.param_groups[0]
        unknown = sorted(set(group) - {*_SGD_PER_MEMBER, *_SGD_SHARED, *_SGD_IGNORED})
        if unknown:
            return f"optimizer {name!r} has settings the stacked SGD does not know: {', '.join(unknown)}"
        if group["differentiable"]:
            return f"optimizer {name!r} is differentiable; the stacked SGD is not"
        for key in _SGD_SHARED:
            if group[key] != first.param_groups[0][key]:
                return f"members differ in the optimizer's {key}, which the stacked SGD shares between them"
    groups = [optimizer.param_groups[0] for optimizer in optimizers]
    shared = groups[0]
    return SGDSettings(
        lr=tuple(float(g["lr"]) for g in groups),
        momentum=tuple(float(g["momentum"]) for g in groups),
        weight_decay=tuple(float(g["weight_decay"]) for g in groups),
        dampening=float(shared["dampening"]),
        nesterov=bool(shared["nesterov"]),
        maximize=bool(shared["maximize"]),
    )


class _PerMember:
    """One hyperparameter: a Python number if all members share it (so the update is exactly
    torch.optim.SGD's operation), else a tensor shaped to broadcast over each stacked parameter."""

    def __init__(self, values: Sequence[float], device: torch.device, dtype: torch.dtype) -> None:
        self.shared: float | None = values[0] if len(set(values)) == 1 else None
        self.values = torch.tensor(values, device=device, dtype=dtype)
        self.any_nonzero = any(value != 0 for value in values)

    def like(self, stacked: torch.Tensor) -> torch.Tensor:
        """The values shaped (M, 1, ..., 1) to broadcast over ``stacked`` (M, ...)."""
        return self.values.view(-1, *([1] * (stacked.ndim - 1)))


class StackedSGD:
    """torch.optim.SGD (``_single_tensor_sgd``) applied to parameters stacked over members."""

    def __init__(self, settings: SGDSettings, device: torch.device, dtype: torch.dtype) -> None:
        self.settings = settings
        self.lr = _PerMember(settings.lr, device, dtype)
        self.momentum = _PerMember(settings.momentum, device, dtype)
        self.weight_decay = _PerMember(settings.weight_decay, device, dtype)
        self._buffers: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> None:
        for name, param in params.items():
            direction = self._direction(name, param, grads[name])
            if self.lr.shared is not None:
                param.add_(direction, alpha=-self.lr.shared)
            else:
                param.addcmul_(direction, self.lr.like(param), value=-1)

    def _direction(self, name: str, param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if s.maximize:
            grad = -grad
        decay = self.weight_decay
        if decay.shared is not None:
            if decay.shared != 0:
                grad = grad.add(param, alpha=decay.shared)
        else:
            grad = torch.addcmul(grad, param, decay.like(param))  # + 0·param for members without
        momentum = self.momentum
        if not momentum.any_nonzero:
            return grad
        buffer = self._buffers.get(name)
        if buffer is None:
            buffer = self._buffers[name] = grad.detach().clone()
        elif momentum.shared is not None:
            buffer.mul_(momentum.shared).add_(grad, alpha=1 - s.dampening)
        else:
            buffer.mul_(momentum.like(param)).add_(grad, alpha=1 - s.dampening)
        if s.nesterov:
            if momentum.shared is not None:
                direction = grad.add(buffer, alpha=momentum.shared)
            else:
                direction = torch.addcmul(grad, buffer, momentum.like(param))
        else:
            direction = buffer
        if momentum.shared is None:
            # Members without momentum step along the plain gradient, as torch.optim.SGD does.
            direction = torch.where(momentum.like(param) != 0, direction, grad)
        return direction


def model_problem(models: Sequence[nn.Module], name: str) -> str | None:
    """Why these member models cannot be stacked, or ``None``."""
    first = models[0]
    if any(True for _ in first.buffers()):
        return f"model {name!r} has buffers (such as running statistics), which the ensemble does not carry"
    shapes = [(n, p.shape, p.dtype) for n, p in first.named_parameters()]
    if not shapes:
        return f"model {name!r} has no parameters to train"
    if not all(p.requires_grad for p in first.parameters()):
        return f"model {name!r} has frozen parameters (requires_grad=False), which the ensemble would train"
    for model in models[1:]:
        if (
            type(model) is not type(first)
            or [(n, p.shape, p.dtype) for n, p in model.named_parameters()] != shapes
        ):
            return "members' models differ in their layers or shapes"
    return None


@attrs.frozen(kw_only=True, eq=False)
class EnsembleRun:
    """What training a stack of models produced."""

    #: Losses shaped (members, epochs), on the CPU; entry [m, e] is member m's loss at epoch e.
    histories: torch.Tensor
    #: Each member's final parameters, on the CPU.
    parameters: list[dict[str, torch.Tensor]]
    seconds: float


class NotVmappable(Exception):
    """The model or loss failed under vmap; the message says how."""


def train_stacked(
    models: Sequence[nn.Module],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    features: torch.Tensor,
    targets: torch.Tensor,
    settings: SGDSettings,
    *,
    epochs: int,
    interval: int,
    on_sync: Callable[[int], None] | None = None,
) -> EnsembleRun:
    """Train ``models`` (same layers, different values) on the same full batch, each with its own
    SGD settings, for ``epochs``; the losses are copied off the device once per ``interval``.
    Raises :class:`NotVmappable` if the first step fails under vmap (nothing has changed then)."""
    stacked, _ = stack_module_state(list(models))  # new tensors: the models themselves are untouched
    params = {name: value.detach() for name, value in stacked.items()}
    template = copy.deepcopy(models[0]).to("meta")  # structure only, for functional_call

    def member_loss(member: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(template, member, (x,)), y)

    gradient_and_loss = vmap(grad_and_value(member_loss), in_dims=(0, None, None))
    first_param = next(iter(params.values()))
    optimizer = StackedSGD(settings, first_param.device, first_param.dtype)
    synchronize(first_param.device)
    start = time.perf_counter()
    try:
        pending: tuple[dict[str, torch.Tensor], torch.Tensor] | None = gradient_and_loss(
            params, features, targets
        )
    except Exception as exc:
        raise NotVmappable(one_line(exc)) from exc
    chunks: list[torch.Tensor] = []
    done = 0
    while done < epochs:
        n = min(interval, epochs - done)
        losses = []
        for _ in range(n):
            grads, member_losses = pending or gradient_and_loss(params, features, targets)
            pending = None
            optimizer.step(params, grads)
            losses.append(member_losses.detach())
        chunks.append(torch.stack(losses).cpu())  # the one host sync per interval
        done += n
        if on_sync is not None:
            on_sync(done)
    synchronize(first_param.device)
    seconds = time.perf_counter() - start
    members = first_param.shape[0]
    parameters = [{name: value[m].cpu().clone() for name, value in params.items()} for m in range(members)]
    return EnsembleRun(histories=torch.cat(chunks).T.contiguous(), parameters=parameters, seconds=seconds)
