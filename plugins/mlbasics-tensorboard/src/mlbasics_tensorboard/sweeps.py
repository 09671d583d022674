"""A sweep for TensorBoard: one run per member, its swept values as hparams (see :func:`log_sweep`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.tensorboard import SummaryWriter

from mlbasics_tensorboard.events import flat_settings, tag, write_hparams

if TYPE_CHECKING:
    from mlbasics import SweepMember, SweepResult

#: What a member's folder name may hold of its values; anything else becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def log_sweep(result: SweepResult, logdir: str | Path, *, max_points: int = 1000) -> list[Path]:
    """See :func:`mlbasics_tensorboard.log_sweep`."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    root = Path(logdir)
    metric_names = [metric.name for metric in result.experiment.metrics]
    width = len(str(max(len(result.members) - 1, 0)))
    folders = []
    for member in result.members:
        folder = root / member_folder(member, width)
        # purge_step=1: a folder written by an earlier call shows only this sweep's member.
        with SummaryWriter(str(folder), purge_step=1) as writer:
            _write_member(writer, member, metric_names, max_points)
        folders.append(folder)
    return folders


def member_folder(member: SweepMember, width: int) -> str:
    """``03_seed=3_optimizer.lr=0.1``: the member's index, then its values."""
    values = "_".join(f"{key}={value}" for key, value in member.values.items())
    name = f"{member.index:0{width}d}_{values}" if values else f"{member.index:0{width}d}"
    return _UNSAFE.sub("_", name)


def logged_epochs(epochs: int, max_points: int) -> list[int]:
    """The epochs (1-based) a loss curve of ``epochs`` epochs is written at: every one if they are
    at most ``max_points``, else ``max_points`` evenly spaced ones from the first to the last."""
    if epochs <= max_points:
        return list(range(1, epochs + 1))
    spacing = (epochs - 1) / (max_points - 1)
    return sorted({1 + round(i * spacing) for i in range(max_points)})


def _write_member(
    writer: SummaryWriter, member: SweepMember, metric_names: list[str], max_points: int
) -> None:
    history = member.history.tolist()
    for epoch in logged_epochs(len(history), max_points):
        writer.add_scalar("loss/train", history[epoch - 1], epoch)
    end = len(history)
    finals: dict[str, Any] = {
        "validation_loss": member.validation_loss,
        "test_loss": member.test_loss,
        # Per-member metrics ("r2", "validation_r2", "test_r2"), where this mlbasics has them.
        **getattr(member, "metrics", {}),
    }
    for name, value in finals.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            writer.add_scalar(tag(name, metric_names), value, end)
    write_hparams(writer, flat_settings(member.values), step=end)
