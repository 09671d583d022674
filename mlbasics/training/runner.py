"""Training an experiment: :func:`train` from settings, :func:`run` for a prepared setup.

The path is experiment -> registry -> components (:mod:`mlbasics.engine.setup`) -> the training loop
(:mod:`mlbasics.engine.loop`) with its callbacks (:mod:`mlbasics.core.callbacks`) -> a result
(:mod:`mlbasics.engine.results`). :func:`run` is the one place where a run's callbacks are put together.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mlbasics.core.callbacks import Callback, callback_failed, label
from mlbasics.core.registry import Registry
from mlbasics.engine.experiment import Component, Experiment, with_settings
from mlbasics.engine.loop import fit
from mlbasics.engine.results import TrainResult
from mlbasics.engine.setup import Setup, built_as, prepare
from mlbasics.errors import MlbasicsError, PluginError, UnknownComponentError, ValidationError
from mlbasics.runs.checkpoints import Checkpointer, check_run_folder

if TYPE_CHECKING:
    from mlbasics.show.progress import ProgressBar


def train(
    experiment: Experiment | None = None,
    /,
    *,
    registry: Registry | None = None,
    callbacks: Sequence[Callback | str | Mapping[str, Any] | Component] = (),
    progress: bool = False,
    live: bool = False,
    save: str | Path | None = None,
    checkpoint_every: int | None = None,
    overwrite: bool = False,
    divergence_threshold: float | None = None,
    target: str | Sequence[str] | None = None,
    **settings: Any,
) -> TrainResult:
    """Train an experiment and return its :class:`TrainResult`.

    ``settings`` override fields of ``experiment`` (or of the default experiment, the lecture's MLP):
    ``dataset`` (a registered dataset's name, or data held in memory: a ``(features, targets)`` pair
    of NumPy arrays, tensors or lists, a :class:`mlbasics.Dataset`, or a pandas DataFrame with its
    ``target`` column named), ``validation`` and ``test`` (fractions of the rows, or held-out data
    ``(X_val, y_val)``), ``model``, ``loss``, ``optimizer`` (a name, a ``{"name": ..., **params}`` dict or a
    :class:`Component`), ``epochs``, ``device``, ``seed``, ``log_every``, ``cuda_graph``,
    ``metrics``. ``callbacks`` takes :class:`Callback` objects and registered callbacks by name
    (``"early-stopping"`` or ``{"name": "early-stopping", "patience": 50}``): the named ones become
    the experiment's ``callbacks``, saved with it, their state checkpointed with the run.
    ``progress=True`` shows a progress bar on stderr (in a Jupyter notebook, under the cell).
    ``live=True`` draws the loss curve under the running cell of a Jupyter notebook, updated as
    training goes on (:class:`mlbasics.show.notebook.LivePlot`; outside a notebook it draws nothing).

    ``save`` names a run folder to checkpoint into (at the end, and every ``checkpoint_every``
    epochs); a folder that already holds a run, or that another run is saving into, is refused
    unless ``overwrite`` (the latter always). Continue a saved run with :func:`mlbasics.resume`.
    If a checkpoint cannot be written (a full disk), a :class:`mlbasics.SaveError` says which one
    is the last good one and carries the result in its ``result``. ``divergence_threshold``: see
    :func:`run`.
    """
    objects = [callback for callback in callbacks if isinstance(callback, Callback)]
    listed = [callback for callback in callbacks if not isinstance(callback, Callback)]
    if listed:  # named ones are the experiment's (saved with it, state and all)
        settings = {**settings, "callbacks": listed}
    experiment = with_settings(experiment or Experiment(), settings, caller="train()", target=target)
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
        objects,
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

    The divergence check and the progress bar are the registry's callbacks ``divergence-check``
    and ``progress-bar`` (a plugin may override them). Before anything starts, every callback's
    :meth:`Callback.problems` is asked: a run with any is refused in one
    :class:`mlbasics.ValidationError`, and the ``checkpointer``'s folder is let go untouched.
    """
    try:
        if divergence_threshold is not None:
            from mlbasics.training.divergence import DivergenceCheck

            DivergenceCheck.check_threshold(divergence_threshold)  # its own words, before the registry's
        company = [_run_callback(setup, "divergence-check", threshold=divergence_threshold)]
        if progress:
            from mlbasics.show.progress import ProgressBar

            company.append(
                progress if isinstance(progress, ProgressBar) else _run_callback(setup, "progress-bar")
            )
        company += [*setup.callbacks, *callbacks]
        if checkpointer is not None:
            company.append(checkpointer)
        if live:
            from mlbasics.show.notebook import LivePlot

            company.append(LivePlot())
        _check_callbacks(setup, company)
    except BaseException:
        if checkpointer is not None:  # nothing was trained: the run folder is let go (and removed if new)
            checkpointer.close()
        raise
    with contextlib.ExitStack() as stack:
        if signals:
            from mlbasics.engine.interrupts import stop_on_signals

            stack.enter_context(stop_on_signals(setup))
        if anomaly_detection:
            from mlbasics.training.anomaly import detect_anomaly

            stack.enter_context(detect_anomaly(setup))
        return fit(setup, company)


def _run_callback(setup: Setup, name: str, **params: Any) -> Callback:
    """One of the callbacks every run has (tagged ``"run"`` in :mod:`mlbasics.builtin`), built
    through the registry the setup was built from: a plugin may override it. Where that registry
    does not have it (built-ins disabled), the built-in one."""
    registry = setup.registry or _builtins()
    try:
        spec, values = registry.resolve("callback", name, params)
    except (UnknownComponentError, PluginError):
        registry = _builtins()
        spec, values = registry.resolve("callback", name, params)
    callback: Callback = built_as(spec, registry.instantiate(spec, values), Callback)
    callback.label = label(spec)
    return callback


@functools.cache
def _builtins() -> Registry:
    return Registry.isolated()


#: How each of the run's own callbacks is controlled, for an experiment that lists one.
_RUN_CALLBACK_HINTS: Final = {
    "divergence-check": "set its threshold with --divergence-threshold X (divergence_threshold=X in Python)",
    "progress-bar": "it shows unless --quiet or --json (progress=True in Python)",
    "checkpoint": "save the run with --save DIR and --checkpoint-every N (save=DIR, checkpoint_every=N)",
}


def _check_callbacks(setup: Setup, company: Sequence[Callback]) -> None:
    """Refuse, before anything starts, a run whose callbacks cannot work with it: each one's
    :meth:`Callback.problems`, and one of the run's own callbacks listed in the experiment."""
    problems = []
    for info in setup.listed.get("callbacks", []):
        if info.name in _RUN_CALLBACK_HINTS and info.plugin == "builtins":
            problems.append(
                f"callback {info.name!r} is part of every run and cannot be listed in an experiment: "
                f"{_RUN_CALLBACK_HINTS[info.name]}"
            )
    for callback in company:
        try:
            problems += callback.problems(setup)
        except MlbasicsError:
            raise
        except Exception as exc:
            raise callback_failed(callback, "checking the run before training", exc) from exc
    if problems:
        raise ValidationError(problems)
