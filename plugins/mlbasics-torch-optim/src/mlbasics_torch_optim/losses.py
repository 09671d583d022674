"""The losses: torch.nn's regression losses, averaged over the samples like mlbasics' mse."""

from __future__ import annotations

from torch import nn


def l1() -> nn.L1Loss:
    return nn.L1Loss()


def huber(delta: float) -> nn.HuberLoss:
    return nn.HuberLoss(delta=delta)


def smooth_l1(beta: float) -> nn.SmoothL1Loss:
    return nn.SmoothL1Loss(beta=beta)
