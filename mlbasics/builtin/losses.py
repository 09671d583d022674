"""The built-in losses: the mean squared error and the NumPy slide's sum of squares / 2 for
regression; cross-entropy on logits, and on one logit for two classes, for classification."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


def mse() -> nn.Module:
    return nn.MSELoss()


class SumOfSquaresHalf(nn.Module):
    """E = ½·Σ(prediction - target)²: its gradient is the lecture's hand-derived -Xᵀ(y - Xw - b)."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * (prediction - target).pow(2).sum()


def sse_half() -> nn.Module:
    return SumOfSquaresHalf()


class CrossEntropy(nn.Module):
    """-log softmax(H(x))[y], the mean over rows: ``torch.nn.CrossEntropyLoss`` on the model's C
    outputs (logits) and class indices, with its ``label_smoothing`` and class ``weight``."""

    weight: torch.Tensor | None

    def __init__(self, weight: list[float] | None, label_smoothing: float) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.weight is not None and self.weight.shape[0] != prediction.shape[-1]:
            raise ValueError(
                f"weight has {self.weight.shape[0]} values, one per class, but there are "
                f"{prediction.shape[-1]} classes"
            )
        return functional.cross_entropy(
            prediction,
            target,
            weight=None if self.weight is None else self.weight.to(prediction.dtype),
            label_smoothing=self.label_smoothing,
        )


def cross_entropy(weight: list[float] | None, label_smoothing: float) -> nn.Module:
    return CrossEntropy(weight, label_smoothing)


class BinaryCrossEntropy(nn.Module):
    """-[y log σ(z) + (1 - y) log(1 - σ(z))], the mean over rows: ``torch.nn.BCEWithLogitsLoss``
    on the model's one output z (the logit of class 1) and class indices 0 and 1."""

    pos_weight: torch.Tensor | None

    def __init__(self, pos_weight: float | None) -> None:
        super().__init__()
        self.register_buffer(
            "pos_weight", None if pos_weight is None else torch.tensor([pos_weight], dtype=torch.float32)
        )

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape[-1] != 1:
            raise ValueError(
                f"binary-cross-entropy scores one output (the logit of class 1), got {prediction.shape[-1]}"
            )
        return functional.binary_cross_entropy_with_logits(
            prediction[..., 0],
            target.to(prediction.dtype),
            pos_weight=None if self.pos_weight is None else self.pos_weight.to(prediction.dtype),
        )


def binary_cross_entropy(pos_weight: float | None) -> nn.Module:
    return BinaryCrossEntropy(pos_weight)
