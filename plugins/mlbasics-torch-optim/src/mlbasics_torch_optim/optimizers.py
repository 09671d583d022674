"""The optimizers: thin factories mapping the declared params onto torch.optim's arguments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import torch

#: Adam and AdamW take the same arguments; AdamW decouples the weight decay from the gradient.
_Adam = TypeVar("_Adam", torch.optim.Adam, torch.optim.AdamW)


def _adam_like(
    cls: type[_Adam],
    parameters: Iterable[torch.Tensor],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> _Adam:
    return cls(parameters, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


def adam(parameters: Iterable[torch.Tensor], **params: Any) -> torch.optim.Adam:
    return _adam_like(torch.optim.Adam, parameters, **params)


def adamw(parameters: Iterable[torch.Tensor], **params: Any) -> torch.optim.AdamW:
    return _adam_like(torch.optim.AdamW, parameters, **params)


def rmsprop(
    parameters: Iterable[torch.Tensor],
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> torch.optim.RMSprop:
    return torch.optim.RMSprop(
        parameters,
        lr=lr,
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        centered=centered,
    )


def lbfgs(
    parameters: Iterable[torch.Tensor],
    lr: float,
    max_iter: int,
    history_size: int,
    line_search: str,
    tolerance_grad: float,
    tolerance_change: float,
) -> torch.optim.LBFGS:
    return torch.optim.LBFGS(
        parameters,
        lr=lr,
        max_iter=max_iter,
        history_size=history_size,
        line_search_fn=None if line_search == "none" else line_search,
        tolerance_grad=tolerance_grad,
        tolerance_change=tolerance_change,
    )
