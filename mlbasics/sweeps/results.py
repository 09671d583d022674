"""What a sweep produced: :class:`SweepResult`, its :class:`SweepMember` s, and how they rank.

Kept apart from :mod:`mlbasics.sweeps.grid` (which trains them) so that a sweep spread over torchrun's
ranks (:mod:`mlbasics.sweeps.distributed`) can assemble one without importing the trainer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import torch

from mlbasics.core.registry import suggest
from mlbasics.engine.experiment import Experiment
from mlbasics.engine.interrupts import signal_name
from mlbasics.errors import ValidationError

VMAP: Final = "vmap"
SEQUENTIAL: Final = "sequential"


@attrs.frozen(kw_only=True, eq=False)
class SweepMember:
    """One point of the grid: its values, its experiment, and what training it gave."""

    index: int
    values: dict[str, Any]
    experiment: Experiment
    #: The loss per epoch (float32, on the CPU), as :attr:`TrainResult.history` holds it.
    history: torch.Tensor
    parameters: dict[str, torch.Tensor]
    #: The loss on the validation rows after training (``None`` without a validation part).
    validation_loss: float | None = None
    #: The loss on the test rows, evaluated once at the end (``None`` without a test part).
    test_loss: float | None = None
    #: Every metric's value after training, named as :attr:`TrainResult.metrics` names them:
    #: ``"r2"`` (training rows), ``"validation_r2"``, ``"test_r2"`` (empty without metrics).
    metrics: dict[str, float] = attrs.field(factory=dict)
    #: The epochs of the sync points at which the metrics were computed (int64, on the CPU) ...
    sync_epochs: torch.Tensor = attrs.field(factory=lambda: torch.empty(0, dtype=torch.int64))
    #: ... and each metric's values there, by value name (``"r2"``, ``"validation_r2"``; float64).
    metric_history: dict[str, torch.Tensor] = attrs.field(factory=dict)
    #: Why training stopped before the experiment's epochs (a callback, a divergence), if it did.
    stopped: str | None = None
    #: The epoch whose weights ``parameters`` are, where a callback put them back at the end (early
    #: stopping's ``restore_best``), and their loss on the training rows; ``validation_loss`` and
    #: ``metrics`` are theirs too (see :attr:`TrainResult.restored_epoch`).
    restored_epoch: int | None = None
    restored_loss: float | None = None

    @property
    def final_loss(self) -> float:
        """The last epoch's loss, or the restored weights' (:attr:`restored_epoch`)."""
        return float(self.history[-1]) if self.restored_loss is None else self.restored_loss

    @property
    def ranking_loss(self) -> float:
        """The loss members are ranked by: the validation loss where there is one, else the final loss."""
        return self.final_loss if self.validation_loss is None else self.validation_loss

    def value(self, name: str) -> float:
        """A value by its name: ``"loss"`` (the final loss), ``"validation_loss"``, ``"test_loss"``
        or a metric's (``"r2"``, ``"validation_r2"``, ``"test_r2"``); NaN where the member has none."""
        value = {
            "loss": self.final_loss,
            "validation_loss": self.validation_loss,
            "test_loss": self.test_loss,
        }.get(name, self.metrics.get(name))
        return math.nan if value is None else value

    @property
    def label(self) -> str:
        """``seed=3, optimizer.lr=0.1``"""
        return values_label(self.values)

    def __repr__(self) -> str:
        from mlbasics.show import display

        return display.sweep_member(self)


def values_label(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in values.items())


#: What a member's name keeps of its values; anything else becomes ``_``.
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._=+-]+")


def member_name(index: int, values: Mapping[str, Any], count: int) -> str:
    """``03_seed=3_optimizer.lr=0.1``: member ``index`` of a grid of ``count``, zero-padded so the
    names sort in grid order, then its values, safe in a file name. A callback that writes files
    names each member's own after it (:attr:`mlbasics.Setup.member`), as mlbasics-tensorboard's
    ``log_sweep`` names each member's folder."""
    width = len(str(max(count - 1, 0)))
    text = "_".join(f"{key}={value}" for key, value in values.items())
    return _UNSAFE.sub("_", f"{index:0{width}d}_{text}" if text else f"{index:0{width}d}")


def _rank_key(member: SweepMember, name: str, sign: float) -> tuple[bool, float, int]:
    value = member.value(name)
    finite = math.isfinite(value)
    return (not finite, sign * value if finite else 0.0, member.index)  # diverged members last


@attrs.frozen(kw_only=True, eq=False)
class SweepResult:
    """Every member's history and parameters, in grid order, and how they were trained."""

    experiment: Experiment
    axes: tuple[str, ...]
    members: tuple[SweepMember, ...]
    #: "vmap" (one ensemble) or "sequential" (one member after another).
    mode: str
    #: Why the members were trained one after another, if they could not be stacked.
    reason: str | None
    device: str
    #: Seconds spent training (setting the members up is in ``setup_seconds``).
    seconds: float
    setup_seconds: float
    #: Which way each of the experiment's metrics is better, by metric name: ``"min"`` or ``"max"``.
    metric_modes: dict[str, str] = attrs.field(factory=dict)
    #: The signal (Ctrl-C's SIGINT, SIGTERM) that stopped the sweep before it was done, if one did:
    #: the members then hold their histories up to there (their ``stopped`` says so) ...
    interrupted_by: int | None = None
    #: ... and this many members of the grid had not started, and are not in ``members``.
    not_trained: int = 0

    def ranked(self, by: str = "loss") -> list[SweepMember]:
        """The members best first: by default the lowest validation loss first (final training loss
        without a validation part: :attr:`ranked_by`); ``by`` may name one of the experiment's
        metrics instead (``"r2"``), taken on the same rows (:meth:`ranking_value`) and ordered the
        way it is better. Members whose value is not finite come last."""
        name = self.ranking_value(by)
        sign = -1.0 if by != "loss" and self.metric_modes[by] == "max" else 1.0
        return sorted(self.members, key=lambda member: _rank_key(member, name, sign))

    def ranking_value(self, by: str = "loss") -> str:
        """The value :meth:`ranked` orders by for ``by``: ``"validation_loss"`` or ``"loss"``,
        ``"validation_r2"`` or ``"r2"``. Raises :class:`mlbasics.ValidationError` if ``by`` is
        neither ``"loss"`` nor one of the experiment's metrics."""
        if by != "loss" and by not in self.metric_modes:
            names = ", ".join(repr(name) for name in ["loss", *self.metric_modes])
            raise ValidationError(
                [f"cannot rank by {by!r}: the sweep has {names}{suggest(by, ['loss', *self.metric_modes])}"]
            )
        held_out = any(member.validation_loss is not None for member in self.members)
        return ("validation_" if held_out else "") + by

    @property
    def ranked_by(self) -> str:
        """What :meth:`ranked` orders by: ``"validation loss"`` or ``"final loss"``."""
        held_out = any(member.validation_loss is not None for member in self.members)
        return "validation loss" if held_out else "final loss"

    @property
    def best(self) -> SweepMember:
        return self.ranked()[0]

    @property
    def model_steps(self) -> int:
        return sum(len(member.history) for member in self.members)

    def __repr__(self) -> str:
        """A few lines: what was swept, how it was trained, the spread of final losses, the best members."""
        from mlbasics.show import display

        title, rows, best = display.sweep_result(self)
        return display.text(title, rows, best)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary, the best members as a table, and every loss curve."""
        from mlbasics.show import display

        return display.sweep_result_html(self)

    def plot(self, path: str | Path | None = None) -> Any:
        """Every member's loss curve as a matplotlib figure, coloured by the values swept, the best
        in black; with ``path``, also written there as a PNG."""
        from mlbasics.show.plotting import plot

        return plot(self, path)

    def to_dict(self, *, history: bool = False, rank_by: str = "loss") -> dict[str, Any]:
        """A JSON-ready summary, members best first (``rank_by``: see :meth:`ranked`);
        ``history=True`` adds each loss history and metric history."""
        ranked = self.ranked(rank_by)  # first: an unknown rank_by is refused before anything else
        ranked_by = self.ranked_by if rank_by == "loss" else self.ranking_value(rank_by).replace("_", " ")
        return {
            "mode": self.mode,
            "reason": self.reason,
            "device": self.device,
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "axes": list(self.axes),
            **({"ranked_by": ranked_by} if ranked_by != "final loss" else {}),
            **({"metric_modes": self.metric_modes} if self.metric_modes else {}),
            **(
                {"interrupted_by": signal_name(self.interrupted_by), "not_trained": self.not_trained}
                if self.interrupted_by
                else {}
            ),
            "experiment": self.experiment.to_dict(),
            "members": [
                {
                    "index": member.index,
                    "values": member.values,
                    "final_loss": member.final_loss,
                    **(
                        {"validation_loss": member.validation_loss}
                        if member.validation_loss is not None
                        else {}
                    ),
                    **({"test_loss": member.test_loss} if member.test_loss is not None else {}),
                    **({"metrics": member.metrics} if member.metrics else {}),
                    **({"stopped": member.stopped} if member.stopped is not None else {}),
                    **(
                        {"restored_epoch": member.restored_epoch} if member.restored_epoch is not None else {}
                    ),
                    "parameters": {name: value.tolist() for name, value in member.parameters.items()},
                    **({"history": member.history.tolist()} if history else {}),
                    **(
                        {"metric_history": _metric_pairs(member)} if history and member.metric_history else {}
                    ),
                }
                for member in ranked
            ],
        }


def _metric_pairs(member: SweepMember) -> dict[str, list[list[float]]]:
    """``{"r2": [[epoch, value], ...]}``, as :meth:`TrainResult.to_dict` writes a metric history."""
    epochs = member.sync_epochs.tolist()
    return {
        name: [[epoch, value] for epoch, value in zip(epochs, values.tolist(), strict=True)]
        for name, values in member.metric_history.items()
    }


# -- the grid ------------------------------------------------------------------------------------
