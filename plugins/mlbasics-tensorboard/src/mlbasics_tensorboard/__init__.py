"""mlbasics-tensorboard: training as TensorBoard shows it.

The ``tensorboard`` callback writes a run's losses, metrics and learning rate at every sync point,
its test values, the fit (for data with one feature) and its settings with their final values
(TensorBoard's HParams tab); :func:`log_sweep` writes a sweep, one run per member.

Only the hook and :func:`log_sweep`'s signature live here (no torch or tensorboard import), so
``mlbasics list`` stays fast and lists the callback as unavailable, with the command that installs
tensorboard, where tensorboard is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlbasics import ComponentSpec, Param, hookimpl

if TYPE_CHECKING:
    from mlbasics import SweepResult

__all__ = ["log_sweep"]

_HERE = __name__


@hookimpl
def mlbasics_callbacks() -> list[ComponentSpec]:
    return [
        ComponentSpec(
            kind="callback",
            name="tensorboard",
            factory=f"{_HERE}.callback:tensorboard",
            summary="Losses, metrics and the learning rate as TensorBoard scalars; the fit as an image; hparams",
            params=(
                Param(
                    name="logdir",
                    type=str,
                    default=None,
                    help="the run's folder (default: a new runs/<date>_<time>_<model>_<dataset>)",
                ),
                Param(
                    name="flush_secs",
                    type=int,
                    default=10,
                    ge=1,
                    help="write what is pending to disk at least this often, in seconds",
                ),
                Param(
                    name="figure",
                    type=bool,
                    default=True,
                    help="at the end, the fit over the data as an image (one feature; needs matplotlib)",
                ),
                Param(
                    name="hparams",
                    type=bool,
                    default=True,
                    help="at the end, the experiment's settings and final values for the HParams tab",
                ),
            ),
            requires=("tensorboard",),
            install_hint="pip install tensorboard",
        )
    ]


def log_sweep(result: SweepResult, logdir: str | Path, *, max_points: int = 1000) -> list[Path]:
    """Write a sweep for TensorBoard: one run per member under ``logdir`` (a folder named after its
    index and values), each with its loss curve (at most ``max_points`` epochs of it, evenly spaced,
    the last one always), its final losses and metrics, and its swept values as hparams, so that the
    HParams tab compares the members. Returns the members' folders, in grid order.

    ``tensorboard --logdir LOGDIR`` shows them."""
    from mlbasics_tensorboard.sweeps import log_sweep as write

    return write(result, logdir, max_points=max_points)
