"""Rounding-error bounds for the property tests: tolerances derived from the computation, not tuned.

The standard model of floating-point arithmetic (Higham, *Accuracy and Stability of Numerical
Algorithms*, ch. 3): a sum or product chain with m roundings is off by at most γ_m times the same
computation done on absolute values, where γ_m = m·u / (1 - m·u) and u is the unit roundoff.

On CUDA that is float32 arithmetic only with TF32 off: :func:`tf32_off`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def unit_roundoff(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).eps / 2


def gamma(m: int, dtype: torch.dtype) -> float:
    """γ_m: the relative error bound of m chained roundings in ``dtype``."""
    mu = m * unit_roundoff(dtype)
    return mu / (1 - mu)


def underflow_floor(m: int, dtype: torch.dtype, growth: float = 1.0) -> float:
    """An absolute allowance for results that fall below the normal range, where the relative
    model above does not apply: at most m roundings of the smallest normal number, amplified by
    ``growth`` through later multiplications."""
    return m * torch.finfo(dtype).tiny * max(growth, 1.0)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    layers = [layer for layer in model.modules() if isinstance(layer, nn.Linear)]
    assert layers, "no linear layer"
    return layers


def magnitude(layers: list[nn.Linear], x: torch.Tensor) -> torch.Tensor:
    """|W_k|···|W_1|·|x| + Σ_j |W_k|···|W_{j+1}|·|b_j|, in float64: the stack run on absolute values."""
    value = x.detach().double().abs()
    for layer in layers:
        value = value @ layer.weight.detach().double().abs().T
        if layer.bias is not None:
            value = value + layer.bias.detach().double().abs()
    return value


def roundings(layers: list[nn.Linear]) -> int:
    """Roundings along one output of the stack: one per multiply-add of every layer."""
    return sum(layer.in_features + 1 for layer in layers)


def growth(layers: list[nn.Linear]) -> float:
    """How much a stack can amplify an absolute error: the product of its layers' ∞-norms."""
    return math.prod(max(float(layer.weight.detach().abs().sum(dim=1).max()), 1.0) for layer in layers)


def weight_magnitude(layers: list[nn.Linear]) -> torch.Tensor:
    """|W_k|···|W_1| in float64: the bound that W_k···W_1's rounding errors scale with."""
    product = layers[0].weight.detach().double().abs()
    for layer in layers[1:]:
        product = layer.weight.detach().double().abs() @ product
    return product


@contextmanager
def tf32_off() -> Iterator[None]:
    """float32 arithmetic on CUDA, as these bounds assume: TF32 (matmul inputs rounded to 10 mantissa
    bits) is turned off for matmul and cuDNN, and the settings found are restored afterwards."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
