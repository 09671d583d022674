"""From an experiment to a trained model: validate, build the components on the device, train.

The loop is the lecture's own loop (zero the gradients, forward, loss, backward, step) and adds
nothing per step that the lecture's loop does not do: no ``.item()``, no progress update. Each
step's loss stays on the device; at each sync point the losses since the last one are copied out
in one transfer, and only then do callbacks (progress bars, checks, checkpoints) run. Sync points
come every ``log_every`` epochs if it is set; otherwise a :class:`SyncSchedule` places them: the
first after one epoch, then at intervals that double while an interval takes well under
:data:`SYNC_SECONDS`, up to about 100 per run and at most :data:`MAX_SYNC_INTERVAL` epochs, so a
run of a billion epochs shows progress (and is checked for divergence) within seconds, and the
losses waiting on the device never take more than a bounded buffer.
On CUDA the steps of each interval are, where safe, replays of one captured CUDA graph (see
:mod:`mlbasics.engine.steppers`). After every eager step the loop reads one flag, :attr:`Setup.interrupt`,
so that Ctrl-C or SIGTERM (see :mod:`mlbasics.engine.interrupts`) stops it at a step boundary. At every
sync point the loss and the parameters are checked for divergence (:mod:`mlbasics.training.divergence`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import torch

from mlbasics.core.callbacks import Callback, CallbackError, StopTraining, callback_failed
from mlbasics.core.registry import shown_params
from mlbasics.devices import synchronize
from mlbasics.engine.experiment import Experiment
from mlbasics.engine.interrupts import signal_name
from mlbasics.engine.results import TrainResult
from mlbasics.engine.setup import Setup, part_rows
from mlbasics.engine.steppers import Stepper, stepper_for
from mlbasics.errors import (
    MlbasicsError,
    PluginBugError,
    SaveError,
    TrainingError,
    ValidationError,
    is_out_of_memory,
    one_line,
)

#: sync interval is never longer; a longer ``log_every`` is copied out in pieces of this size (its
#: callbacks still run every ``log_every`` epochs). This bounds the memory of the losses in flight
#: (and the history buffer of a CUDA graph) however many epochs a run has.
MAX_SYNC_INTERVAL: Final = 10_000
#: An automatic sync interval doubles only while the doubled one is expected to take at most this
#: long, and halves once one takes more than twice this: progress stays live for a slow model too.
SYNC_SECONDS: Final = 0.5


def sync_interval(experiment: Experiment, callbacks: Sequence[Callback] = ()) -> int:
    """The most epochs between copies of the loss off the device: ``log_every``, or about 100 per
    run (at most :data:`MAX_SYNC_INTERVAL`), or less if a callback asks for it
    (:attr:`Callback.sync_every`)."""
    interval = experiment.log_every or min(MAX_SYNC_INTERVAL, max(1, experiment.epochs // 100))
    return min([interval, *(c.sync_every for c in callbacks if c.sync_every)])


class SyncSchedule:
    """Where the training loop's sync points fall.

    With ``log_every`` set: every ``log_every`` epochs, or every ``sync_every`` of a callback that
    asks for less (as ever: exact, the same on every machine). Otherwise the interval starts at one
    epoch and doubles after each sync point while the doubled interval would take at most
    :data:`SYNC_SECONDS`, up to :func:`sync_interval`; it halves again when one takes more than
    twice that. Each sync point falls on a multiple of the current interval and of every callback's
    ``sync_every`` (so checkpoints come at exact multiples). The losses computed do not depend on
    where the sync points fall; only what callbacks see between them does.
    """

    def __init__(self, experiment: Experiment, callbacks: Sequence[Callback] = ()) -> None:
        #: The longest interval this schedule gives.
        self.limit = sync_interval(experiment, callbacks)
        self.automatic = experiment.log_every is None
        #: The current interval: fixed, or (automatic) grown from 1 towards :attr:`limit`.
        self.interval = 1 if self.automatic else self.limit
        self._every = sorted({c.sync_every for c in callbacks if c.sync_every})

    def next(self, done: int, end: int) -> int:
        """The epochs to train after ``done`` before the next sync point (``end``: the last epoch)."""
        steps = min(every - done % every for every in [self.interval, *self._every])
        return max(1, min(steps, end - done))

    def record(self, epochs: int, seconds: float) -> None:
        """``epochs`` were trained in ``seconds`` (the steps and the copy, not the callbacks)."""
        if not self.automatic or epochs < 1:
            return
        per_epoch = seconds / epochs
        if per_epoch * 2 * self.interval <= SYNC_SECONDS:
            self.interval = min(2 * self.interval, self.limit)
        elif per_epoch * self.interval > 2 * SYNC_SECONDS:
            self.interval = max(1, self.interval // 2)


def fit(setup: Setup, callbacks: Sequence[Callback] = (), *, stepper: Stepper | None = None) -> TrainResult:
    """Train the prepared ``setup`` up to the experiment's epochs and return the result.

    The loop takes its steps from ``stepper`` (by default :func:`mlbasics.engine.steppers.stepper_for`:
    eager, a CUDA graph, or a closed-form solve) and tells ``callbacks`` what happens, in their
    order. It checks nothing itself: divergence, progress, checkpoints come as callbacks (see
    :func:`mlbasics.training.runner.run`, which adds the usual ones).

    A callback that cannot write what it must (a :class:`Checkpointer` on a full disk) raises
    :class:`mlbasics.SaveError`: training stops there, every callback's ``on_train_end`` still gets
    the result so far, and the error is raised with that result as its ``result``, so the training
    done is never lost silently.
    """
    epochs = setup.end_epoch
    for callback in callbacks:
        _call(callback, "before training", callback.on_train_start, setup, epochs)
    result: TrainResult | None = None
    failure: SaveError | None = None
    try:
        result, failure = _run(setup, epochs, callbacks, stepper)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise TrainingError(_out_of_memory(setup, exc)) from exc
    finally:
        ended = _end(setup, callbacks, result)  # with an error in flight, that error wins
    failure = failure or ended
    if failure is not None:
        failure.result = result
        raise failure
    assert result is not None
    return result


def _out_of_memory(setup: Setup, exc: BaseException) -> str:
    """One line for a training step that ran out of memory: which model, how big, how many rows."""
    model = setup.components["model"]
    sizes = shown_params(model.params)
    rows = setup.n_train
    return (
        f"out of memory training model {model.name!r}{f' ({sizes})' if sizes else ''} on {setup.device} "
        f"with {rows:,} rows, in epoch {len(setup.history) + 1}; choose smaller sizes ({one_line(exc)})"
    )


def _end(setup: Setup, callbacks: Sequence[Callback], result: TrainResult | None) -> SaveError | None:
    """Every callback's ``on_train_end``; a :class:`SaveError` of one does not keep it from the rest."""
    failure = None
    for callback in callbacks:
        try:
            _call(callback, "at the end of training", callback.on_train_end, setup, result)
        except SaveError as exc:
            failure = failure or exc
        except CallbackError:
            if result is not None:  # with an error in flight, that error is the one to report
                raise
    return failure


def _call(callback: Callback, moment: str, method: Callable[..., None], *args: Any) -> None:
    """Call one of ``callback``'s methods. What mlbasics raises on purpose (a stop, a divergence,
    a failed save) passes; anything else is the callback's bug and becomes one line naming it."""
    try:
        method(*args)
    except (StopTraining, MlbasicsError, PluginBugError):
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise
        raise callback_failed(callback, moment, exc) from exc


def _run(
    setup: Setup, epochs: int, callbacks: Sequence[Callback], stepper: Stepper | None
) -> tuple[TrainResult, SaveError | None]:
    history = setup.history  # the epochs done before (a resumed run); extended at every sync
    resumed_from = len(history)
    setup.restored_epoch = None  # set by this run's callbacks only
    stopped = None
    failure = None
    mode = "eager"
    interrupted = 0
    synchronize(setup.device)
    start = time.perf_counter()
    schedule = SyncSchedule(setup.experiment, callbacks)
    capacity = min(schedule.limit, MAX_SYNC_INTERVAL)
    try:
        if stepper is None:
            stepper = stepper_for(setup, epochs=epochs - len(history), interval=capacity, callbacks=callbacks)
        mode = stepper.mode
        while len(history) < epochs:
            steps = setup.interval = schedule.next(len(history), epochs)
            began = time.perf_counter()
            losses = _copied_out(setup, stepper, steps, capacity)
            schedule.record(len(losses), time.perf_counter() - began)
            mode = stepper.mode
            history.extend(losses.tolist())
            for callback in callbacks:
                _call(callback, f"after epoch {len(history)}", callback.on_sync, setup, len(history), losses)
            if setup.interrupt.signal:
                interrupted = setup.interrupt.signal
                raise StopTraining(f"interrupted by {signal_name(interrupted)} after epoch {len(history)}")
    except StopTraining as stop:
        stopped = str(stop) or "stopped by a callback"
    except SaveError as exc:  # the training so far is kept: fit raises this with the result
        failure = exc
        stopped = f"saving failed after epoch {len(history)}"
    synchronize(setup.device)
    seconds = time.perf_counter() - start
    if not history:
        raise ValidationError(["training stopped before the first epoch finished"])
    test_loss = float(setup.evaluate_part(setup.test)) if setup.test is not None else None
    test_metrics = _test_metrics(setup)
    restored: dict[str, float] = _restored_values(setup) if setup.restored_epoch is not None else {}
    result = TrainResult(
        experiment=setup.experiment,
        history=list(history),
        epochs=len(history),
        device=str(setup.device),
        seconds=seconds,
        parameters={name: p.detach().cpu().clone() for name, p in setup.model.named_parameters()},
        components=setup.components,
        model=setup.model,
        dataset=setup.dataset,
        stopped=stopped,
        step_mode=mode,
        interrupted_by=interrupted or None,
        resumed_from=resumed_from,
        validation_history=list(setup.validation_history),
        test_loss=test_loss,
        metric_history={name: list(pairs) for name, pairs in setup.metric_history.items()},
        test_metrics=test_metrics,
        metric_modes={name: metric.mode for name, metric in setup.metrics.items()},
        listed_components=dict(setup.listed),
        split_sizes=_split_sizes(setup),
        standardization=setup.standardization,
        restored_epoch=setup.restored_epoch,
        restored_values=restored,
        confusion=confusion_matrices(setup),
    )
    return result, failure


def _copied_out(setup: Setup, stepper: Stepper, steps: int, capacity: int) -> torch.Tensor:
    """``steps`` steps' losses, on the host: one copy (one host sync), or one per ``capacity``
    steps for a longer interval, so that no more than that many wait on the device."""
    if steps <= capacity:
        return _copy_out(setup, stepper.run(steps))
    parts: list[torch.Tensor] = []
    done = 0
    while steps > done:
        want = min(steps - done, capacity)
        part = stepper.run(want)
        done += len(part)
        if done < steps and len(part) == want:
            parts.append(part.cpu())
            continue
        parts.append(_copy_out(setup, part, before=done - len(part)))  # the last piece
        break
    return torch.cat(parts)


def _copy_out(setup: Setup, losses: torch.Tensor, *, before: int = 0) -> torch.Tensor:
    """Training ``losses`` (on the device) on the host, ``before`` epochs after the history's end.
    The values of the sync point -- the validation loss and every metric on the training and
    validation rows, of the parameters after the last of these steps -- are computed on the device
    and come out in the same transfer, and are recorded in :attr:`Setup.values`,
    :attr:`Setup.validation_history` and :attr:`Setup.metric_history`. The data's file, if it has
    one, is checked for changes here too."""
    setup.dataset.check_unchanged()
    values = _sync_values(setup)
    if not values:
        host = losses.cpu()
    else:
        both = torch.cat([losses, torch.stack(list(values.values())).to(losses.dtype)]).cpu()
        host = both[: len(losses)]
        extra = dict(zip(values, both[len(losses) :].tolist(), strict=True))
        epoch = len(setup.history) + before + len(losses)
        for name, value in extra.items():
            if name == "validation_loss":
                setup.validation_history.append((epoch, value))
            else:
                setup.metric_history.setdefault(name, []).append((epoch, value))
        setup.values.update(extra)
    if len(host):
        setup.values["loss"] = float(host[-1])
    lr = _learning_rate(setup)
    if lr is not None:
        setup.values["lr"] = lr
    return host


def _sync_values(setup: Setup) -> dict[str, torch.Tensor]:
    """The values to compute at a sync point, on the device (see :mod:`mlbasics.engine.metrics`)."""
    from mlbasics.engine.metrics import evaluate

    values: dict[str, torch.Tensor] = {}
    if setup.validation is not None:
        values["validation_loss"] = setup.evaluate_part(setup.validation).reshape(())
    if setup.metrics:
        values |= evaluate(setup, (setup.features, setup.targets, setup.train_rows))
        if setup.validation is not None:
            values |= evaluate(setup, setup.validation, "validation_")
    return values


def _restored_values(setup: Setup) -> dict[str, float]:
    """What the weights a callback put back (:attr:`Setup.restored_epoch`) do, evaluated once: the
    loss on the training rows, and what a sync point computes (the validation loss, every metric
    on the training and validation rows). The history's values are those of the last epochs'
    weights, which the model no longer holds."""
    values = {"loss": setup.evaluate(), **_sync_values(setup)}
    return {name: float(value) for name, value in values.items()}


def _learning_rate(setup: Setup) -> float | None:
    groups = getattr(setup.optimizer, "param_groups", None)
    lr = groups[0].get("lr") if groups else None
    return float(lr) if isinstance(lr, int | float) else None


def _test_metrics(setup: Setup) -> dict[str, float]:
    """Every metric on the test rows, once, at the end (empty without a test part or metrics)."""
    from mlbasics.engine.metrics import evaluate

    if setup.test is None or not setup.metrics:
        return {}
    values = evaluate(setup, setup.test)
    return dict(zip(values, torch.stack(list(values.values())).tolist(), strict=True))


def confusion_matrices(setup: Setup) -> dict[str, torch.Tensor]:
    """For class labels, the confusion matrix of each part of the data with the current
    parameters, by part (``"training"``, ``"validation"``, ``"test"``): counts (C, C) computed on
    the device and copied out together. Empty for regression or more than
    :data:`mlbasics.engine.classification.CONFUSION_MAX_CLASSES` classes."""
    from mlbasics.engine.classification import CONFUSION_MAX_CLASSES, confusion_counts
    from mlbasics.engine.metrics import predictions

    classes = setup.dataset.n_classes
    if classes is None or classes > CONFUSION_MAX_CLASSES:
        return {}
    parts = {"training": (setup.features, setup.targets, setup.train_rows)}
    parts |= {
        name: part
        for name, part in (("validation", setup.validation), ("test", setup.test))
        if part is not None
    }
    counts = {name: confusion_counts(*predictions(setup, part)) for name, part in parts.items()}
    host = torch.stack(list(counts.values())).cpu()
    return dict(zip(counts, host, strict=True))


def _split_sizes(setup: Setup) -> dict[str, int]:
    held = {"validation": setup.validation, "test": setup.test}
    return {"train": setup.n_train} | {
        name: 0 if part is None else part_rows(part) for name, part in held.items()
    }
