"""The built-in metrics: the usual scores of a regression, in the data's own units, and of a
classification, equal to scikit-learn's of the same names."""

from __future__ import annotations

import math

import torch

from mlbasics.engine.classification import class_count, class_counts, log_probabilities, predicted
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


# -- classification: predictions are logits (..., n, C) or one logit (..., n, 1), targets class
# indices (..., n). Each equals scikit-learn's function of the same name on the predicted classes
# (argmax, or z > 0 for one logit) or, for log-loss and top-k accuracy, on the scores.

#: How ``precision``, ``recall`` and ``f1`` average their per-class values: scikit-learn's
#: ``average``. Macro: the unweighted mean over the classes present in the targets or the
#: predictions; weighted: by each class's rows; micro: from the counts of all classes together
#: (for one label per row, the accuracy).
AVERAGES = ("macro", "weighted", "micro")


def _hits(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per class (..., C): rows predicted right (true positives), rows of the class (support) and
    rows predicted as the class, counted exactly (:func:`mlbasics.engine.classification.class_counts`)."""
    guess = predicted(prediction)
    classes = class_count(prediction)
    right = class_counts(target, classes, weights=(guess == target))
    return right, class_counts(target, classes), class_counts(guess, classes)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's ``zero_division``)."""
    some = denominator > 0
    return torch.where(some, numerator / torch.where(some, denominator, 1), 0)


def _averaged(
    per_class: torch.Tensor, support: torch.Tensor, guessed: torch.Tensor, average: str
) -> torch.Tensor:
    if average == "weighted":
        return (per_class * support).sum(dim=-1) / support.sum(dim=-1)
    present = ((support + guessed) > 0).to(per_class.dtype)  # classes in the targets or predictions
    return (per_class * present).sum(dim=-1) / present.sum(dim=-1)


def _as(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.to(like.dtype)


def accuracy() -> Metric:
    """The share of rows whose predicted class is right."""
    return Metric(lambda p, t: (predicted(p) == t).to(p.dtype).mean(dim=-1), mode="max", best=1.0)


def balanced_accuracy() -> Metric:
    """The mean over classes of the share of each class's rows predicted right (its recall), over
    the classes that have rows: accuracy that a large class cannot dominate."""

    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        right, support, _ = _hits(p, t)
        some = (support > 0).to(right.dtype)
        return _as((_ratio(right, support) * some).sum(dim=-1) / some.sum(dim=-1), p)

    return Metric(score, mode="max", best=1.0)


def _per_class_score(which: str, average: str) -> Metric:
    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        right, support, guessed = _hits(p, t)
        if average == "micro":  # every class's counts together: right over all rows
            return _as(right.sum(dim=-1) / support.sum(dim=-1), p)
        if which == "precision":
            per_class = _ratio(right, guessed)
        elif which == "recall":
            per_class = _ratio(right, support)
        else:  # F1 = 2·tp / (2·tp + fp + fn), the harmonic mean of precision and recall
            per_class = _ratio(2 * right, support + guessed)
        return _as(_averaged(per_class, support, guessed, average), p)

    return Metric(score, mode="max", best=1.0)


def precision(average: str) -> Metric:
    """Of the rows predicted as a class, the share that are of it; averaged over the classes."""
    return _per_class_score("precision", average)


def recall(average: str) -> Metric:
    """Of a class's rows, the share predicted as it; averaged over the classes."""
    return _per_class_score("recall", average)


def f1(average: str) -> Metric:
    """The harmonic mean of precision and recall per class; averaged over the classes."""
    return _per_class_score("f1", average)


def log_loss() -> Metric:
    """The mean over rows of -log p(true class), the probability clipped to [eps, 1 - eps] with
    eps the dtype's machine epsilon (scikit-learn's ``log_loss``): finite however wrong."""

    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        picked = log_probabilities(p).gather(-1, t.unsqueeze(-1)).squeeze(-1)
        eps = torch.finfo(p.dtype).eps
        return -picked.clamp(math.log(eps), math.log1p(-eps)).mean(dim=-1)

    return Metric(score, mode="min", best=0.0)


def top_k_accuracy(k: int) -> Metric:
    """The share of rows whose class is among the k highest-scoring, as scikit-learn's
    ``top_k_accuracy_score`` ranks them: of equal scores the later class ranks higher; for two
    classes (or one logit) top-1 is the accuracy of the predicted class and top-2 always 1."""

    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if p.shape[-1] <= 2:
            hit = predicted(p) == t if k == 1 else torch.ones(t.shape, dtype=torch.bool, device=t.device)
            return hit.to(p.dtype).mean(dim=-1)
        mine = p.gather(-1, t.unsqueeze(-1))
        later = torch.arange(p.shape[-1], device=p.device) > t.unsqueeze(-1)
        above = (p > mine).sum(dim=-1) + ((p == mine) & later).sum(dim=-1)
        return (above < k).to(p.dtype).mean(dim=-1)

    return Metric(score, mode="max", best=1.0)
