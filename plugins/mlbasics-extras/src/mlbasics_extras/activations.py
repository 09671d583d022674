"""The activations: torch.nn's, with their parameters declared by the specs."""

from __future__ import annotations

from torch import nn


def gelu(approximate: str) -> nn.GELU:
    return nn.GELU(approximate=approximate)


def leaky_relu(negative_slope: float) -> nn.LeakyReLU:
    return nn.LeakyReLU(negative_slope=negative_slope)


def silu() -> nn.SiLU:
    return nn.SiLU()


def softplus(beta: float, threshold: float) -> nn.Softplus:
    return nn.Softplus(beta=beta, threshold=threshold)


def elu(alpha: float) -> nn.ELU:
    return nn.ELU(alpha=alpha)
