"""The optimizers' stacked forms: their torch.optim updates for parameters stacked over the members
of a sweep, so that ``mlbasics sweep --optimizer adam`` trains every member as one vmapped ensemble.

Each follows torch.optim's single-tensor update (``_single_tensor_adam``, ``_single_tensor_rmsprop``)
operation by operation. A hyperparameter all members share is a Python number and goes through the
very operation torch.optim uses; one that differs is a tensor with one value per member
(:func:`mlbasics.sweeps.ensemble.per_member` shapes it to broadcast), computed in the parameters' dtype
where torch.optim computes in Python floats, so it rounds a little differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mlbasics.sweeps.ensemble import any_nonzero, is_shared, per_member

Params = dict[str, torch.Tensor]
Grads = Mapping[str, torch.Tensor]
State = dict[str, Any]
Hyper = Mapping[str, Any]


def adam(params: Params, grads: Grads, state: State, hyper: Hyper) -> tuple[Params, State]:
    """torch.optim.Adam's update, for stacked members."""
    return _adam(params, grads, state, hyper, decoupled=False)


def adamw(params: Params, grads: Grads, state: State, hyper: Hyper) -> tuple[Params, State]:
    """torch.optim.AdamW's update (Adam with decoupled weight decay), for stacked members."""
    return _adam(params, grads, state, hyper, decoupled=True)


def _adam(
    params: Params, grads: Grads, state: State, hyper: Hyper, *, decoupled: bool
) -> tuple[Params, State]:
    lr, beta1, beta2, eps, decay = (hyper[k] for k in ("lr", "beta1", "beta2", "eps", "weight_decay"))
    step = state["step"] = state.get("step", 0) + 1
    # torch.optim computes these in Python floats; per-member values are tensors of shape (members,).
    step_size = lr / (1 - beta1**step)
    correction2_sqrt = (1 - beta2**step) ** 0.5
    for name, param in params.items():
        grad = grads[name]
        moments = state.setdefault(name, _zero_moments(param, amsgrad=hyper["amsgrad"]))
        if any_nonzero(decay):
            if decoupled:
                param.mul_(1 - per_member(lr * decay, param))
            elif is_shared(decay):
                grad = grad.add(param, alpha=decay)
            else:
                grad = torch.addcmul(grad, param, per_member(decay, param))
        moments["exp_avg"].lerp_(grad, 1 - per_member(beta1, param))
        if is_shared(beta2):
            moments["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        else:
            b2 = per_member(beta2, param)
            moments["exp_avg_sq"].mul_(b2).addcmul_(grad, grad * (1 - b2))
        second = moments["exp_avg_sq"]
        if hyper["amsgrad"]:
            torch.maximum(moments["max_exp_avg_sq"], second, out=moments["max_exp_avg_sq"])
            second = moments["max_exp_avg_sq"]
        denom = (second.sqrt() / per_member(correction2_sqrt, param)).add_(per_member(eps, param))
        if is_shared(step_size):
            param.addcdiv_(moments["exp_avg"], denom, value=-step_size)
        else:
            param.sub_(moments["exp_avg"] / denom * per_member(step_size, param))
    return params, state


def _zero_moments(param: torch.Tensor, *, amsgrad: bool) -> dict[str, torch.Tensor]:
    names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
    return {name: torch.zeros_like(param) for name in names}


def rmsprop(params: Params, grads: Grads, state: State, hyper: Hyper) -> tuple[Params, State]:
    """torch.optim.RMSprop's update, for stacked members."""
    lr, alpha, eps, decay, momentum = (hyper[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum"))
    for name, param in params.items():
        grad = grads[name]
        slots = state.setdefault(name, {"square_avg": torch.zeros_like(param)})
        if any_nonzero(decay):
            grad = (
                grad.add(param, alpha=decay)
                if is_shared(decay)
                else torch.addcmul(grad, param, per_member(decay, param))
            )
        square_avg = slots["square_avg"]
        if is_shared(alpha):
            square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        else:
            a = per_member(alpha, param)
            square_avg.mul_(a).addcmul_(grad, grad * (1 - a))
        if hyper["centered"]:
            grad_avg = slots.setdefault("grad_avg", torch.zeros_like(param))
            grad_avg.lerp_(grad, 1 - per_member(alpha, param))
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(per_member(eps, param))
        if any_nonzero(momentum):
            # A member without momentum keeps a buffer of 0·buffer + grad/avg: its plain step.
            buffer = slots.setdefault("momentum_buffer", torch.zeros_like(param))
            buffer.mul_(per_member(momentum, param)).addcdiv_(grad, avg)
            direction = buffer
            if is_shared(lr):
                param.add_(direction, alpha=-lr)
            else:
                param.addcmul_(direction, per_member(lr, param), value=-1)
        elif is_shared(lr):
            param.addcdiv_(grad, avg, value=-lr)
        else:
            param.sub_(grad / avg * per_member(lr, param))
    return params, state
