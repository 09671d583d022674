"""Training an experiment: :func:`train` from settings, :func:`run` for a prepared setup.

The path is experiment -> registry -> components (:mod:`mlbasics.setup`) -> the training loop
(:mod:`mlbasics.loop`) with its callbacks (:mod:`mlbasics.callbacks`) -> a result
(:mod:`mlbasics.results`). :func:`run` is the one place where a run's callbacks are put together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlbasics.callbacks import Callback
from mlbasics.checkpoints import Checkpointer, check_run_folder
from mlbasics.errors import ValidationError
from mlbasics.experiment import Experiment, with_settings
from mlbasics.loop import fit
from mlbasics.registry import Registry
from mlbasics.results import TrainResult
from mlbasics.setup import Setup, prepare

if TYPE_CHECKING:
    from mlbasics.progress import ProgressBar


def train(
    experiment: Experiment | None = None,
    /,
    *,
    registry: Registry | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    live: bool = False,
    save: str | Path | None = None,
    checkpoint_every: int | None = None,
    overwrite: bool = False,
    divergence_threshold: float | None = None,
    **settings: Any,
) -> TrainResult:
    """Train an experiment and return its :class:`TrainResult`.

    ``settings`` override fields of ``experiment`` (or of the default experiment, the lecture's MLP):
    ``dataset``, ``model``, ``loss``, ``optimizer`` (a name, a ``{"name": ..., **params}`` dict or a
    :class:`Component`), ``epochs``, ``device``, ``seed``, ``log_every``, ``cuda_graph``.
    ``progress=True`` shows a progress bar on stderr (in a Jupyter notebook, under the cell).
    ``live=True`` draws the loss curve under the running cell of a Jupyter notebook, updated as
    training goes on (:class:`mlbasics.notebook.LivePlot`; outside a notebook it draws nothing).

    ``save`` names a run folder to checkpoint into (at the end, and every ``checkpoint_every``
    epochs); a folder that already holds a run, or that another run is saving into, is refused
    unless ``overwrite`` (the latter always). Continue a saved run with :func:`mlbasics.resume`.
    If a checkpoint cannot be written (a full disk), a :class:`mlbasics.SaveError` says which one
    is the last good one and carries the result in its ``result``. ``divergence_threshold``: see
    :func:`run`.
    """
    experiment = with_settings(experiment or Experiment(), settings, caller="train()")
    if checkpoint_every is not None and save is None:
        raise ValidationError(["train(): checkpoint_every needs save (a run folder)"])
    if save is not None:
        check_run_folder(save, overwrite=overwrite)  # before building anything: it may take long
    setup = prepare(experiment, registry)
    checkpointer = None
    if save is not None:  # locked (and created) only now: a mistake in the experiment creates nothing
        checkpointer = Checkpointer(save, every=checkpoint_every, overwrite=overwrite)
    return run(
        setup,
        callbacks,
        progress=progress,
        live=live,
        checkpointer=checkpointer,
        divergence_threshold=divergence_threshold,
    )


def run(
    setup: Setup,
    callbacks: Sequence[Callback] = (),
    *,
    progress: bool | ProgressBar = False,
    live: bool = False,
    checkpointer: Checkpointer | None = None,
    divergence_threshold: float | None = None,
    signals: bool = False,
    anomaly_detection: bool = False,
) -> TrainResult:
    """Train ``setup`` with the usual company: the one place a run is put together, for
    :func:`train`, :func:`mlbasics.resume`, :func:`mlbasics.sweep` and the command line.

    In the order they see each sync point: the divergence check (first, so nothing sees a diverged
    state; ``divergence_threshold``: stop once the loss exceeds that many times the first epoch's,
    NaN/inf always stops), the progress bar (``progress``: ``True`` or a :class:`ProgressBar` of
    the caller's), the experiment's own callbacks (``callbacks = [...]``, built by
    :func:`mlbasics.prepare`), ``callbacks``, the ``checkpointer`` (last: it saves the others'
    state), and the live loss curve (``live``). ``signals``: Ctrl-C and SIGTERM stop training at a
    step boundary (the result says so) instead of raising. ``anomaly_detection``: run under
    :func:`torch.autograd.detect_anomaly` and name the operation that produced a NaN (slow).
    """
    from mlbasics.divergence import DivergenceCheck

    company: list[Callback] = [DivergenceCheck(divergence_threshold)]
    if progress:
        from mlbasics.progress import ProgressBar

        company.append(progress if isinstance(progress, ProgressBar) else ProgressBar())
    company += [*setup.callbacks, *callbacks]
    if checkpointer is not None:
        company.append(checkpointer)
    if live:
        from mlbasics.notebook import LivePlot

        company.append(LivePlot())
    with contextlib.ExitStack() as stack:
        if signals:
            from mlbasics.interrupts import stop_on_signals

            stack.enter_context(stop_on_signals(setup))
        if anomaly_detection:
            from mlbasics.anomaly import detect_anomaly

            stack.enter_context(detect_anomaly(setup))
        return fit(setup, company)
