"""The built-in activations: the non-linearities σ that keep a stack of layers from collapsing."""

from __future__ import annotations

from torch import nn


def relu() -> nn.Module:
    return nn.ReLU()


def sigmoid() -> nn.Module:
    return nn.Sigmoid()


def tanh() -> nn.Module:
    return nn.Tanh()


def identity() -> nn.Module:
    return nn.Identity()
