"""Metrics: scores of a model's predictions, computed on the device at sync points.

A metric plugin's factory returns a :class:`Metric`: a function of ``(prediction, target)``, both
shaped ``(..., n, k)``, that returns one score per leading index (a scalar for one model, one per
member for a vmapped ensemble), and which way is better. mlbasics computes every metric of the
experiment on the training rows and, where there are some, the validation rows at each sync point,
in the data's own units (predictions and targets are unscaled when the targets were standardized),
and on the test rows once at the end. Their values are named ``"r2"``, ``"validation_r2"`` and
``"test_r2"``; the loss is ``"loss"`` (the epoch's mean, as the history holds it) and
``"validation_loss"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

import attrs
import torch

if TYPE_CHECKING:
    from mlbasics.engine.setup import Part, Setup

#: Rows per forward pass when a part's predictions are gathered from a memory-mapped table.
PREDICTION_ROWS: Final = 65_536

Mode = Literal["min", "max"]


@attrs.frozen
class Metric:
    """A score of predictions against targets.

    ``function(prediction, target)`` reduces the last two dimensions (rows, outputs) and keeps any
    before them. ``mode`` says which way is better (``"min"``: an error; ``"max"``: a score such as
    R²) and ``best`` is its value for a perfect prediction (what the conformance kit checks).
    """

    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    mode: Mode = attrs.field(default="min", validator=attrs.validators.in_(("min", "max")))
    best: float = 0.0

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.function(prediction, target)

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is better than ``than`` (a NaN is never better)."""
        return value < than if self.mode == "min" else value > than


def predictions(setup: Setup, part: Part) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's predictions for a part and the part's targets, on the device, in the data's
    units (no gradients). A memory-mapped part is predicted in batches of :data:`PREDICTION_ROWS`."""
    from mlbasics.data.batches import _rows_on_device

    x, y, rows = part
    with torch.no_grad():
        if rows is None:
            prediction, target = setup.model(x), y
        else:
            pieces = [
                (setup.model(xb), yb)
                for start in range(0, len(rows), PREDICTION_ROWS)
                for xb, yb in [_rows_on_device(setup, x, y, rows[start : start + PREDICTION_ROWS])]
            ]
            prediction = torch.cat([p for p, _ in pieces])
            target = torch.cat([t for _, t in pieces])
    scaling = setup.standardization
    if scaling is not None:
        prediction, target = scaling.outputs(prediction), scaling.outputs(target)
    return prediction, target


def evaluate(setup: Setup, part: Part, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every metric of ``setup`` on ``part``, as scalars on the device, named ``prefix + name``."""
    if not setup.metrics:
        return {}
    prediction, target = predictions(setup, part)
    return {prefix + name: metric(prediction, target).reshape(()) for name, metric in setup.metrics.items()}
