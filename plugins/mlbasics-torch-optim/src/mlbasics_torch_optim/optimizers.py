"""The optimizers: thin factories mapping the declared params onto torch.optim's arguments."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(
    parameters: Iterable[torch.Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> torch.optim.Adam:
    return torch.optim.Adam(
        parameters, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )


def adamw(
    parameters: Iterable[torch.Tensor],
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        parameters, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad
    )


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
