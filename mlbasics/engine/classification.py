"""Class labels: what a classifier's outputs mean, and counting its hits, on the device.

A classifier's model has one output per class (``logits``, shaped (..., n, C)), read through a
softmax; or, under a loss tagged :data:`ONE_LOGIT_TAG` (``binary-cross-entropy``), one output for
two classes, the logit of class 1, read through a sigmoid. Every function here takes either form
and keeps any leading dimensions (a vmapped ensemble's members), so the metrics, predictions and
confusion matrices of one model and of a sweep are computed the same way.

Counts are summed in float64 where the device has it (exact up to 2⁵³ rows), in float32 on MPS
(exact up to 2²⁴).
"""

from __future__ import annotations

from typing import Final

import torch
from torch.nn import functional

from mlbasics.core.specs import ONE_LOGIT_TAG as ONE_LOGIT_TAG

#: A confusion matrix is kept for at most this many classes (C² counts).
CONFUSION_MAX_CLASSES: Final = 1000


def class_count(outputs: torch.Tensor) -> int:
    """How many classes outputs shaped (..., n, C) score: C, or 2 for one logit."""
    return max(int(outputs.shape[-1]), 2)


def log_probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (..., n, C) of the classes: log-softmax of C logits; for one logit z,
    (log σ(-z), log σ(z)) -- class 0 and class 1."""
    if outputs.shape[-1] == 1:
        return torch.cat([functional.logsigmoid(-outputs), functional.logsigmoid(outputs)], dim=-1)
    return outputs.log_softmax(dim=-1)


def probabilities(outputs: torch.Tensor) -> torch.Tensor:
    """Probabilities (..., n, C) of the classes: softmax, or (1 - σ(z), σ(z)) for one logit."""
    if outputs.shape[-1] == 1:
        positive = torch.sigmoid(outputs)
        return torch.cat([1 - positive, positive], dim=-1)
    return outputs.softmax(dim=-1)


def predicted(outputs: torch.Tensor) -> torch.Tensor:
    """The predicted class of each row, int64 (..., n): the largest logit (the first of equal
    ones, as ``argmax`` does), or for one logit class 1 where z > 0 (σ(z) > 1/2)."""
    if outputs.shape[-1] == 1:
        return (outputs[..., 0] > 0).to(torch.int64)
    return outputs.argmax(dim=-1)


def count_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def class_counts(labels: torch.Tensor, classes: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """How many rows (or how much ``weights``) each class has: labels (..., n) -> (..., classes),
    in :func:`count_dtype`."""
    dtype = count_dtype(labels.device)
    values = (
        torch.ones(labels.shape, dtype=dtype, device=labels.device) if weights is None else weights.to(dtype)
    )
    totals = torch.zeros(*labels.shape[:-1], classes, dtype=dtype, device=labels.device)
    return totals.scatter_add_(-1, labels, values)


def confusion_counts(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The confusion matrix of one model's outputs (n, C) against class indices (n,): int64
    (C, C), entry [i, j] the rows of class i predicted as class j (scikit-learn's layout)."""
    classes = class_count(outputs)
    cells = target.to(torch.int64) * classes + predicted(outputs)
    return torch.bincount(cells, minlength=classes * classes).reshape(classes, classes)


def normalized(confusion: torch.Tensor) -> torch.Tensor:
    """Each row of a confusion matrix divided by its sum (the share of each true class predicted
    as each class; scikit-learn's ``normalize="true"``); a class without rows is a row of zeros."""
    counts = confusion.to(torch.float64)
    totals = counts.sum(dim=-1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp(min=1), torch.zeros_like(counts))
