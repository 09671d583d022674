"""The built-in metrics: the usual scores of a regression, in the data's own units."""

from __future__ import annotations

import torch

from mlbasics.engine.metrics import Metric


def _rows_and_outputs(value: torch.Tensor) -> torch.Tensor:
    return value.mean(dim=(-2, -1))


def mse() -> Metric:
    """Mean squared error: mean over rows and outputs of (prediction - target)²."""
    return Metric(lambda p, t: _rows_and_outputs((p - t) ** 2))


def rmse() -> Metric:
    """Root mean squared error, in the target's units."""
    return Metric(lambda p, t: _rows_and_outputs((p - t) ** 2).sqrt())


def mae() -> Metric:
    """Mean absolute error, in the target's units."""
    return Metric(lambda p, t: _rows_and_outputs((p - t).abs()))


def max_error() -> Metric:
    """The largest absolute error of any row and output."""
    return Metric(lambda p, t: (p - t).abs().amax(dim=(-2, -1)))


def _one_minus_ratio(residual: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """1 - residual / total per output, averaged over outputs; where the targets are constant
    (total 0): 1 for a perfect fit and 0 otherwise (as scikit-learn's scores do)."""
    constant = total == 0
    ratio = residual / torch.where(constant, torch.ones_like(total), total)
    per_output = torch.where(constant, (residual == 0).to(residual.dtype), 1 - ratio)
    return per_output.mean(dim=-1)


def _squares_about_mean(value: torch.Tensor) -> torch.Tensor:
    return ((value - value.mean(dim=-2, keepdim=True)) ** 2).sum(dim=-2)


def r2() -> Metric:
    """The coefficient of determination, 1 - SS_res / SS_tot per output, averaged over outputs
    (scikit-learn's ``r2_score`` with ``multioutput="uniform_average"``). 1 is a perfect fit, 0 is
    no better than the targets' mean; constant targets give 1 for a perfect fit and 0 otherwise
    (as scikit-learn's does)."""

    def score(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        residual = ((target - prediction) ** 2).sum(dim=-2)
        return _one_minus_ratio(residual, _squares_about_mean(target))

    return Metric(score, mode="max", best=1.0)


def explained_variance() -> Metric:
    """1 - Var(target - prediction) / Var(target), averaged over outputs: R² that ignores a
    constant offset of the predictions."""

    def score(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _one_minus_ratio(_squares_about_mean(target - prediction), _squares_about_mean(target))

    return Metric(score, mode="max", best=1.0)
