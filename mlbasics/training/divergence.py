"""Noticing that training diverged, and saying why in words a student can act on.

:func:`mlbasics.fit` always runs a :class:`DivergenceCheck` first at every sync point (never per
step: the losses are on the CPU there anyway). It stops training with a
:class:`mlbasics.DivergenceError` when

- a loss is NaN or infinite,
- a parameter of the model is NaN or infinite (one small reduction per sync point), or
- with a ``threshold``, a loss exceeds ``threshold`` times the first epoch's loss.

The message names the epoch, the last finite loss and a concrete hint, e.g. "learning rate 1 is too
large for this data: the loss grew 3e12-fold in 29 epochs; try lr ≤ 0.1". Since the check runs
before every other callback, no checkpoint is ever written from a diverged state: the last
checkpoint on disk is the last finite one.
"""

from __future__ import annotations

import math

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
            raise _diverged(setup, index, what, _growth_hint(setup, history[:index]))
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


def _diverged(setup: Setup, index: int, what: str, hint: str) -> DivergenceError:
    """``index``: the 0-based position in the history of the first bad loss (the epoch is index + 1)."""
    history = list(setup.history)
    finite = [(i, v) for i, v in enumerate(history[:index]) if math.isfinite(v)]
    epoch = min(index + 1, len(history))
    if finite:
        last_epoch, last = finite[-1][0] + 1, finite[-1][1]
        last_text = f"last finite loss {last:.6g} at epoch {last_epoch}"
    else:
        last, last_text = None, "no finite loss before it"
    message = f"training diverged at epoch {epoch} of {setup.experiment.epochs}: {what} ({last_text}); {hint}"
    return DivergenceError(message, epoch=epoch, last_finite_loss=last, history=history)


def _growth_hint(setup: Setup, finite_history: list[float]) -> str:
    """What probably went wrong, judged by how the loss moved before it went bad."""
    lr = setup.components["optimizer"].params.get("lr")
    step = (
        f"learning rate {lr:g} is too large for this data"
        if isinstance(lr, float)
        else "the optimizer's steps are too large for this data"
    )
    remedy = f"try lr ≤ {smaller_learning_rate(lr):g}" if isinstance(lr, float) else "make them smaller"
    if not finite_history:
        return (
            "the loss was not finite from the first epoch: check the data and the model for NaN or inf "
            "(anomaly detection, --detect-anomaly, finds the operation)"
        )
    first, last = finite_history[0], finite_history[-1]
    if len(finite_history) == 1:
        return f"{step} (the loss went from {first:.3g} to not finite in one epoch); {remedy}"
    if first > 0 and last > 10 * first:
        epochs = len(finite_history) - 1
        return f"{step}: the loss grew {_fold(last / first)}-fold in {epochs} epoch{'s' if epochs != 1 else ''}; {remedy}"
    return (
        "the loss was not growing before it stopped being finite, so the step size is probably not "
        "to blame: rerun with anomaly detection (--detect-anomaly) to find the operation that made a NaN"
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
