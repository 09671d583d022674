"""Polynomial regression: a linear model on the powers of the features."""

from __future__ import annotations

import torch
from torch import nn


class PolynomialRegression(nn.Module):
    """H(x) = W·[x, x², …, x^degree] + b. Non-linear in x, linear in W and b: the same regression
    as the lecture's, on features the model makes itself."""

    def __init__(self, in_features: int, out_features: int, degree: int, bias: bool) -> None:
        super().__init__()
        self.degree = degree
        self.linear = nn.Linear(in_features * degree, out_features, bias=bias)

    def powers(self, x: torch.Tensor) -> torch.Tensor:
        """[x, x², …, x^degree] side by side: (n, d) -> (n, d·degree), power by power."""
        return torch.cat([x.pow(k) for k in range(1, self.degree + 1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.linear(self.powers(x))
        return output


def polynomial(in_features: int, out_features: int, degree: int, bias: bool) -> PolynomialRegression:
    return PolynomialRegression(in_features, out_features, degree, bias)
