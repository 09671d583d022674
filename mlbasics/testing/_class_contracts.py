"""The contract of a loss or metric that serves classification, as check functions.

Such a component gets the model's outputs -- C logits per row, shaped (..., n, C), or one logit
for two classes, (..., n, 1) -- and class indices, int64 shaped (..., n). The checks probe it so:
with 2, 3 and 5 classes and with one logit (a loss tagged ``one-logit`` gets one logit only; any
other loss C logits), from seeded generators, as :mod:`mlbasics.testing._contracts` probes
regression components.

"Closer to the target" means logits moved from random ones towards ``M`` on the right class
(``M·onehot``; one logit: ``±M``), with ``M`` above any difference of the random logits, so that
every row's right class only gains on every other class as the prediction moves.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Final

import torch

from mlbasics.core.specs import ONE_LOGIT_TAG
from mlbasics.testing._contracts import (
    Problem,
    Subject,
    _close,
    _loss,
    _metric,
    _nonfinite,
    _score,
)

#: (rows, classes) of the probes: classes 1 is one logit for two classes.
_LOSS_SHAPES: Final = ((1, 2), (5, 3), (16, 5), (16, 2))
_ONE_LOGIT_SHAPES: Final = ((1, 1), (5, 1), (16, 1))
_METRIC_SHAPES: Final = ((1, 2), (2, 3), (5, 3), (16, 5), (16, 1), (5, 1))
#: The logit on the right class of a "perfect" prediction: its softmax is 1 in float32 (with up to
#: 5 classes, the others share e^-30 ≈ 1e-13, far below float32's resolution of 1).
_SURE: Final = 30.0


def _classes(width: int) -> int:
    return max(width, 2)


def _logits(
    subject: Subject, generator: torch.Generator, shape: tuple[int, ...], scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits shaped ``shape`` (..., n, C) of size about ``scale`` and random class indices
    (..., n) for them, on the subject's device."""
    logits = scale * torch.randn(shape, generator=generator)
    target = torch.randint(0, _classes(shape[-1]), shape[:-1], generator=generator)
    return logits.to(subject.device), target.to(subject.device)


def _sure(target: torch.Tensor, width: int, margin: float, right: bool = True) -> torch.Tensor:
    """Logits with ``margin`` on each row's class (or, ``right=False``, on the class after it): a
    confident prediction, right or wrong."""
    if width == 1:
        sign = 2 * target.to(torch.float32) - 1
        return (margin * (sign if right else -sign)).unsqueeze(-1)
    classes = target if right else (target + 1) % width
    return margin * torch.nn.functional.one_hot(classes, width).to(torch.float32)


# -- losses ----------------------------------------------------------------------------------------


def _loss_shapes(subject: Subject) -> tuple[tuple[int, int], ...]:
    return _ONE_LOGIT_SHAPES if ONE_LOGIT_TAG in subject.spec.tags else _LOSS_SHAPES


def class_loss_contract(subject: Subject) -> None:
    """On logits and class indices: a finite, non-negative 0-dim tensor with a finite gradient; a
    confident right prediction scores below a uniform one, and that below a confident wrong one."""
    loss = _loss(subject, subject.device)
    generator = subject.generator()
    for n, width in _loss_shapes(subject):
        logits, target = _logits(subject, generator, (n, width), 3.0)
        logits.requires_grad_()
        what = f"logits shaped ({n}, {width}) and class indices shaped ({n},)"
        value = loss(logits, target)
        if not isinstance(value, torch.Tensor) or value.ndim != 0:
            got = f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise Problem(f"returns {got} for {what}; a loss must be a 0-dim tensor")
        number = float(value.detach())
        if not math.isfinite(number) or number < 0:
            raise Problem(f"is {number:.6g} for {what}; a loss must be finite and >= 0")
        value.backward()  # type: ignore[no-untyped-call]
        if logits.grad is None or _nonfinite(logits.grad):
            raise Problem(f"has no finite gradient with respect to the logits ({what})")
        with torch.no_grad():
            right = float(loss(_sure(target, width, 5.0).to(subject.device), target))
            unsure = float(loss(torch.zeros(n, width, device=subject.device), target))
            wrong = float(loss(_sure(target, width, 5.0, right=False).to(subject.device), target))
        if not right < unsure < wrong:
            raise Problem(
                f"scores a confident right prediction {right:.6g}, a uniform one {unsure:.6g} and a "
                f"confident wrong one {wrong:.6g} ({what}); a loss must fall as the right class's "
                "logit rises"
            )


# -- metrics ---------------------------------------------------------------------------------------


def class_metric_contract(subject: Subject) -> None:
    """A finite 0-dim float tensor for logits (n, C) (or one logit) and class indices (n,); its
    ``best`` on a confident right prediction, and nothing better than ``best``."""
    metric = _metric(subject)
    generator = subject.generator()
    for n, width in _METRIC_SHAPES:
        logits, target = _logits(subject, generator, (n, width), 3.0)
        what = f"logits shaped ({n}, {width}) and class indices"
        value = float(_score(metric, logits, target))
        if not math.isfinite(value):
            raise Problem(
                f"is {value} for {what}; a metric must be finite on any part, even one of a single row"
            )
        if metric.better(value, metric.best) and not _close(value, metric.best):
            raise Problem(
                f"scores {value:.6g} on random {what}, better than its best {metric.best:g} "
                f"(mode {metric.mode!r}): best is the value of a perfect prediction"
            )
        perfect = float(_score(metric, _sure(target, width, _SURE).to(subject.device), target))
        if not _close(perfect, metric.best):
            raise Problem(
                f"is {perfect:.6g} when the logits put {_SURE:g} on every row's class ({n} rows, "
                f"{_classes(width)} classes), but declares best = {metric.best:g}"
            )


def class_metric_row_order(subject: Subject) -> None:
    """Permuting the rows of the logits and the class indices together does not change the value."""
    metric = _metric(subject)
    generator = subject.generator()
    for n, width in ((5, 3), (16, 5), (16, 1)):
        logits, target = _logits(subject, generator, (n, width), 3.0)
        value = float(_score(metric, logits, target))
        for _ in range(3):
            order = torch.randperm(n, generator=generator).to(subject.device)
            permuted = float(_score(metric, logits[order], target[order]))
            if not _close(permuted, value):
                raise Problem(
                    f"depends on the order of the rows: {value:.6g} for logits shaped ({n}, {width}), "
                    f"{permuted:.6g} for the same rows in another order"
                )


_MEMBERS: Final = 3


def class_metric_batched(subject: Subject) -> None:
    """Logits (3, n, C) and class indices (3, n) give 3 values, each that member's alone."""
    metric = _metric(subject)
    generator = subject.generator()
    for n, width in ((1, 2), (5, 3), (16, 5), (16, 1)):
        logits, target = _logits(subject, generator, (_MEMBERS, n, width), 3.0)
        together = _score(metric, logits, target).tolist()
        for member, value in enumerate(together):
            alone = float(_score(metric, logits[member], target[member]))
            if not _close(value, alone):
                raise Problem(
                    f"gives member {member} of logits shaped {tuple(logits.shape)} the value {value:.6g}, "
                    f"but {alone:.6g} for that member's ({n}, {width}) logits alone: reduce only the last "
                    "two dimensions of the logits (the last of the class indices)"
                )


def class_metric_direction(subject: Subject) -> None:
    """Moving logits towards the right classes never makes the value worse, and makes it better
    somewhere."""
    metric = _metric(subject)
    generator = subject.generator()
    improved = False
    for width, scale in itertools.product((1, 3, 5), (0.1, 1.0, 10.0)):
        logits, target = _logits(subject, generator, (16, width), scale)
        margin = 2 * float(logits.abs().max()) + 1.0  # above any difference of two random logits
        goal = _sure(target, width, margin).to(subject.device)
        values = [
            float(_score(metric, (1 - share) * logits + share * goal, target))
            for share in (0.0, 0.5, 0.75, 1.0)
        ]
        for farther, closer in itertools.pairwise(values):
            if metric.better(farther, closer) and not _close(farther, closer):
                raise Problem(
                    f"scores {closer:.6g} on logits closer to the right classes than logits scoring "
                    f"{farther:.6g} ({_classes(width)} classes), which mode {metric.mode!r} calls worse: "
                    "is the mode right?"
                )
            improved = improved or (metric.better(closer, farther) and not _close(farther, closer))
    if not improved:
        raise Problem(
            "scores every prediction the same, however far its logits move towards the right classes"
        )


#: The checks of a loss or metric that serves classification, by name.
CLASS_CHECKS: Final[dict[str, dict[str, Callable[[Subject], None]]]] = {
    "loss": {"contract": class_loss_contract},
    "metric": {
        "contract": class_metric_contract,
        "row-order": class_metric_row_order,
        "batched": class_metric_batched,
        "direction": class_metric_direction,
    },
}
