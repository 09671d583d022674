"""Noticing that training diverged, and saying why in words a student can act on.

:func:`mlbasics.fit` always runs a :class:`DivergenceCheck` first at every sync point (never per
step: the losses are on the CPU there anyway). It stops training with a
:class:`mlbasics.DivergenceError` when

- a loss is NaN or infinite,
- a parameter of the model is NaN or infinite (one small reduction per sync point), or
- with a ``threshold``, a loss exceeds ``threshold`` times the first epoch's loss.

The message names the epoch, the last finite loss and the most likely cause, once: feature columns
on scales orders of magnitude apart ("standardize them, --standardize features"), or a learning
rate too large, with the rate the loss's own growth implies ("learning rate 2 is too large for this
data: the loss grew 8e33-fold in 32 epochs; try lr ≤ 0.4", see :func:`implied_learning_rate`), or
else the data or the model. Since the check runs before every other callback, no checkpoint is
ever written from a diverged state: the last checkpoint on disk is the last finite one.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from mlbasics.core.callbacks import Callback
from mlbasics.engine.setup import Setup
from mlbasics.errors import DivergenceError, ValidationError


class DivergenceCheck(Callback):
    """Stops training once the loss or a parameter is no longer finite, or (with ``threshold``)
    once the loss exceeds ``threshold`` times the first epoch's loss."""

    def __init__(self, threshold: float | None = None) -> None:
        self.check_threshold(threshold)
        self.threshold = threshold
        self._parameters: list[torch.Tensor] = []

    @staticmethod
    def check_threshold(threshold: float | None) -> None:
        """Refuse a threshold that is not a finite number > 1."""
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or threshold <= 1
        ):
            raise ValidationError([f"divergence threshold must be a finite number > 1, got {threshold!r}"])

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        # Detached views share the parameters' storage, so they see every in-place update; made
        # once, because walking the model's modules at every sync point costs more than the check.
        self._parameters = [
            p.detach().view(-1) if p.is_contiguous() else p.detach() for p in setup.model.parameters()
        ]

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        # The chunk's losses are already Python floats at the end of the history: checking them
        # there costs a microsecond, where tensor reductions would cost tens at every sync point.
        history = setup.history
        start = len(history) - len(losses)  # epochs done before this chunk
        bad = next((i for i, loss in enumerate(history[start:]) if not math.isfinite(loss)), None)
        if bad is not None:
            index = start + bad
            what = f"the loss became {history[index]}"
            raise _diverged(setup, index, what, _growth_hint(setup, history[:index], overflowed=True))
        if self.threshold is not None and history[0] > 0:
            limit = self.threshold * history[0]
            over = next((i for i, loss in enumerate(history[start:]) if loss > limit), None)
            if over is not None:
                index = start + over
                what = (
                    f"the loss {history[index]:.3g} exceeds the divergence threshold, "
                    f"{self.threshold:g} × the first epoch's loss {history[0]:.3g}"
                )
                raise _diverged(setup, index, what, _growth_hint(setup, history[: index + 1]))
        # A parameter that stopped being finite makes the next loss non-finite, so only the last
        # update of the chunk can hide one: one reduction over all parameters finds it.
        parameters = self._parameters or [p.detach() for p in setup.model.parameters()]
        flat = [p if p.ndim == 1 else p.reshape(-1) for p in parameters]
        if flat and not bool(torch.cat(flat).isfinite().all()):
            name = next(n for n, p in setup.model.named_parameters() if not bool(p.isfinite().all()))
            what = f"parameter {name!r} is no longer finite after the update of epoch {epoch}"
            raise _diverged(setup, epoch, what, _growth_hint(setup, history[:epoch]))


def _diverged(setup: Setup, index: int, what: str, hint: Hint) -> DivergenceError:
    """``index``: the 0-based position in the history of the first bad loss (the epoch is index + 1)."""
    history = list(setup.history)
    finite = [(i, v) for i, v in enumerate(history[:index]) if math.isfinite(v)]
    epoch = min(index + 1, len(history))
    if finite:
        last_epoch, last = finite[-1][0] + 1, finite[-1][1]
        last_text = f"last finite loss {last:.6g} at epoch {last_epoch}"
    else:
        last, last_text = None, "no finite loss before it"
    message = (
        f"training diverged at epoch {epoch} of {setup.experiment.epochs}: {what} ({last_text}); {hint.text}"
    )
    return DivergenceError(message, epoch=epoch, last_finite_loss=last, history=history, suggested_lr=hint.lr)


class Hint(NamedTuple):
    """What probably went wrong, in words, and the learning rate to try instead (if that is it)."""

    text: str
    lr: float | None = None


#: Feature columns whose typical sizes differ by this factor or more are said to need scaling.
SCALE_RATIO = 100.0
#: The rows of a memory-mapped table that the scale check reads (it is a hint, not a statistic).
_SCALE_ROWS = 100_000


def _growth_hint(setup: Setup, finite_history: list[float], *, overflowed: bool = False) -> Hint:
    """The most likely cause, named once. Where the loss grew (or was not finite at once, on
    finite data), the steps were too large: because the feature columns' sizes are orders of
    magnitude apart (standardizing them is the fix), else because the learning rate is (with the
    rate the loss's own growth implies). Otherwise the data or the model. ``overflowed``: the loss
    after ``finite_history`` was not finite (it outgrew the floating-point range)."""
    lr = setup.components["optimizer"].params.get("lr")
    step = (
        f"learning rate {lr:g} is too large for this data"
        if isinstance(lr, float)
        else "the optimizer's steps are too large for this data"
    )
    if not finite_history:
        steps = _steps_per_epoch(setup)
        if _data_finite(setup):
            scales = _unscaled_columns(setup)
            if scales is not None:
                return Hint(scales)
            if steps > 1 and isinstance(lr, float):
                smaller = smaller_learning_rate(lr)
                return Hint(
                    f"the loss was not finite from the first epoch, whose {steps} mini-batch steps already "
                    f"went astray on finite data: {step}; try lr ≤ {smaller:g}",
                    smaller,
                )
        return Hint(
            "the loss was not finite from the first epoch: check the data and the model for NaN or inf "
            "(anomaly detection, --detect-anomaly, finds the operation)"
        )
    first, last = finite_history[0], finite_history[-1]
    lowest = min(range(len(finite_history)), key=finite_history.__getitem__)
    low = finite_history[lowest]
    if len(finite_history) > 1 and not (low > 0 and last > 10 * low):
        return Hint(
            "the loss was not growing before it stopped being finite, so the step size is probably not "
            "to blame: rerun with anomaly detection (--detect-anomaly) to find the operation that made a NaN"
        )
    scales = _unscaled_columns(setup)
    if scales is not None:
        return Hint(scales)
    suggested = implied_learning_rate(setup, finite_history, overflowed=overflowed)
    remedy = f"try lr ≤ {suggested:g}" if suggested is not None else "make them smaller"
    if len(finite_history) == 1:
        return Hint(
            f"{step} (the loss went from {first:.3g} to not finite in one epoch); {remedy}", suggested
        )
    epochs = len(finite_history) - 1 - lowest
    since = f" since epoch {lowest + 1}" if lowest else ""
    return Hint(
        f"{step}: the loss grew {_fold(last / low)}-fold in {epochs} epoch{'s' if epochs != 1 else ''}{since}; "
        f"{remedy}",
        suggested,
    )


def implied_learning_rate(
    setup: Setup, finite_history: list[float], *, overflowed: bool = False
) -> float | None:
    """The learning rate that the loss's growth implies would not diverge, rounded down to one
    significant digit; ``None`` where the optimizer has no ``lr``.

    Gradient descent on a quadratic bowl multiplies the error along its steepest direction (the
    Hessian's largest eigenvalue h) by ``lr·h - 1`` per step, and so the loss by ``(lr·h - 1)²``:
    a loss that grows by a factor g per step says ``lr·h = 1 + √g``, and ``lr / (1 + √g)`` is the
    rate with ``lr·h = 1``, the fastest stable one for that direction. The factor is measured from
    the lowest loss to the last finite one. With one finite loss only, followed by one that
    overflowed, the factor is at least what took the loss's sum over a step's values past the
    largest finite number; without even that, a tenth of the rate (:func:`smaller_learning_rate`)."""
    lr = setup.components["optimizer"].params.get("lr")
    if not isinstance(lr, float) or not finite_history:
        return None
    steps = _steps_per_epoch(setup)
    lowest = min(range(len(finite_history)), key=finite_history.__getitem__)
    low, last = finite_history[lowest], finite_history[-1]
    log_growth = None  # the log of the loss's growth per step
    if lowest < len(finite_history) - 1 and low > 0 and last > low:
        log_growth = math.log(last / low) / ((len(finite_history) - 1 - lowest) * steps)
    elif len(finite_history) == 1 and overflowed and last > 0:
        values = min(setup.experiment.batch_size or setup.n_train, setup.n_train) * setup.targets.shape[-1]
        log_growth = max(math.log(torch.finfo(_dtype(setup)).max / (last * values)), 0.0) / steps
    if not log_growth:
        return smaller_learning_rate(lr)
    return _round_down(lr / (1.0 + math.exp(min(log_growth, 700.0) / 2)))


def _round_down(value: float) -> float:
    """``value`` rounded down to one significant digit: 0.455 -> 0.4, 1.3e-6 -> 1e-6."""
    mantissa, exponent = f"{value:.6e}".split("e")
    return float(f"{int(float(mantissa))}e{int(exponent)}")


def _steps_per_epoch(setup: Setup) -> int:
    size, rows = setup.experiment.batch_size, setup.n_train
    if size is None or size >= rows:
        return 1
    return rows // size if setup.experiment.drop_last else -(-rows // size)


def _dtype(setup: Setup) -> torch.dtype:
    parameter = next(setup.model.parameters(), None)
    return parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32


def _training_rows(setup: Setup) -> tuple[torch.Tensor, torch.Tensor]:
    """The training features and targets as held (for a memory-mapped table, its first rows)."""
    if setup.train_rows is None:
        return setup.features, setup.targets
    return setup.features[:_SCALE_ROWS], setup.targets[:_SCALE_ROWS]


def _data_finite(setup: Setup) -> bool:
    features, targets = _training_rows(setup)
    return bool(features.isfinite().all()) and bool(targets.isfinite().all())


def _unscaled_columns(setup: Setup) -> str | None:
    """The hint to standardize, where the feature columns (unscaled) have typical sizes (their root
    mean square) :data:`SCALE_RATIO` or more apart: one learning rate cannot suit them all."""
    if setup.standardization is not None or setup.dataset.n_features < 2:
        return None
    features, _ = _training_rows(setup)
    if not features.is_floating_point() or not bool(features.isfinite().all()):
        return None
    sizes = features.double().square().mean(dim=0).sqrt().tolist()
    names = setup.dataset.feature_names
    sized = [(size, name) for size, name in zip(sizes, names, strict=False) if size > 0]
    if len(sized) < 2:
        return None
    (small, small_name), (big, big_name) = min(sized), max(sized)
    if big < SCALE_RATIO * small:
        return None
    return (
        f"the feature columns' sizes are orders of magnitude apart ({big_name} about {big:.3g}, "
        f"{small_name} about {small:.3g}), so a learning rate small enough for one is too small for "
        f'the other: standardize them, --standardize features (standardize="features" in Python)'
    )


def smaller_learning_rate(lr: float) -> float:
    """A tenth of ``lr``, rounded down to one significant digit: 1 -> 0.1, 0.3 -> 0.03, 0.25 -> 0.02."""
    mantissa, exponent = f"{lr / 10:.6e}".split("e")
    return float(f"{int(float(mantissa))}e{int(exponent)}")


def _fold(factor: float) -> str:
    """3.2e12 -> ``3e12``; 250 -> ``250``."""
    if factor < 1000:
        return f"{factor:.0f}"
    return f"{factor:.0e}".replace("e+", "e")
