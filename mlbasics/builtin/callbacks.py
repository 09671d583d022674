"""The built-in callbacks: early stopping, CSV and JSON-lines logs, learning-rate schedules, and the
company every run keeps (the divergence check, the progress bar, the checkpointer).

Each acts at sync points only (see :mod:`mlbasics.engine.loop`), never per step. One that decides
something at given epochs -- a check, a schedule's step, a logged row -- sets
:attr:`mlbasics.Callback.sync_every` to its interval, so that it acts at exact multiples of it, on
any machine and in a resumed run as in one never interrupted. What it must carry over a save and
resume is in its ``state_dict`` (saved in the run folder with each checkpoint).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from mlbasics._files import name_problem, temporary_file
from mlbasics.core.callbacks import Callback, StopTraining, named
from mlbasics.core.registry import suggest
from mlbasics.errors import SaveError

if TYPE_CHECKING:
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup
    from mlbasics.runs.checkpoints import Checkpointer
    from mlbasics.show.progress import ProgressBar
    from mlbasics.training.divergence import DivergenceCheck


# -- the values a callback can watch -------------------------------------------------------------


def watchable_values(setup: Setup) -> list[str]:
    """The values every sync point of ``setup``'s run computes, by name (see :mod:`mlbasics.engine.metrics`):
    ``loss``, ``validation_loss`` (with validation rows), each metric and its ``validation_`` twin."""
    validation = setup.validation is not None
    names = ["loss", *(["validation_loss"] if validation else [])]
    for metric in setup.metrics:
        names += [metric, *([f"validation_{metric}"] if validation else [])]
    return names


def value_mode(setup: Setup, name: str) -> str:
    """Which way value ``name`` is better: a metric's own ``mode``; ``"min"`` for a loss."""
    metric = setup.metrics.get(name.removeprefix("validation_"))
    return metric.mode if metric is not None else "min"


class Watch:
    """One monitored value and its best so far: the part early stopping and a plateau schedule
    share. ``monitor=None`` watches ``validation_loss`` where the run has validation rows, else
    ``loss``; ``mode="auto"`` takes the value's own direction."""

    def __init__(self, monitor: str | None, mode: str, min_delta: float) -> None:
        self.requested = monitor
        self.requested_mode = mode
        self.min_delta = min_delta
        self.monitor = monitor or "loss"
        self.mode = "min" if mode == "auto" else mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        #: The monitor of a state taken back (a resumed run), to tell whether it still applies.
        self.loaded_monitor: str | None = None

    def problems(self, setup: Setup, who: str) -> list[str]:
        """The monitor names no value this run computes: one line, with the names there are."""
        known = watchable_values(setup)
        if self.requested is None or self.requested in known:
            return []
        hint = suggest(self.requested, known)
        if self.requested.startswith("test_"):
            hint = "; the test rows are evaluated once, at the end" + hint
        elif self.requested.startswith("validation_") and setup.validation is None:
            hint = "; the run has no validation rows (hold some out with --validation F)" + hint
        elif not hint:
            hint = "; add a metric with --metric NAME (metrics = [...])"
        return [
            f"{who}: monitor {self.requested!r} names no value this run computes{hint} "
            f"(it computes: {', '.join(known)})"
        ]

    def resolve(self, setup: Setup) -> None:
        """Fill in the defaults from the run: which value, which way is better."""
        if self.requested is None:
            self.monitor = "validation_loss" if setup.validation is not None else "loss"
        self.mode = value_mode(setup, self.monitor) if self.requested_mode == "auto" else self.requested_mode

    def improved(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (the first one always does;
        a NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        best, epoch = state["best"], state["best_epoch"]
        if not (best is None or isinstance(best, float | int)) or not (
            epoch is None or isinstance(epoch, int)
        ):
            raise ValueError(f"malformed best value {best!r} at epoch {epoch!r}")
        self.best, self.best_epoch = best, epoch
        self.loaded_monitor = state["monitor"]

    def keeps(self, loaded: bool) -> bool:
        """Whether a state taken back (``loaded``) still applies: it watched the same value."""
        return loaded and self.loaded_monitor == self.monitor


def _at_check(epoch: int, every: int, setup: Setup) -> bool:
    """Whether ``epoch`` is one of the epochs a callback checking ``every`` epochs acts at: its
    multiples (sync points fall on them), and the run's last epoch."""
    return epoch % every == 0 or epoch >= setup.end_epoch


# -- early stopping -------------------------------------------------------------------------------


class EarlyStopping(Callback):
    """Stops training once the monitored value has not improved by more than ``min_delta`` for
    ``patience`` epochs, checked every ``check_every`` epochs (and at the last epoch). With
    ``restore_best``, training ends with the weights of the best check -- when it stops early and
    when it runs to the end -- and the result says which epoch that was.

    ``loss`` is the training loss as the history holds it: computed before that epoch's update, so
    the weights kept for it are one update later than the loss they were chosen by. Validation
    losses and metrics are computed on the weights at the check itself.
    """

    def __init__(
        self,
        monitor: str | None = None,
        mode: str = "auto",
        patience: int = 100,
        min_delta: float = 0.0,
        check_every: int = 10,
        restore_best: bool = True,
    ) -> None:
        self.watch = Watch(monitor, mode, min_delta)
        self.patience = patience
        self.check_every = check_every
        self.sync_every = check_every
        self.restore_best = restore_best
        #: The epoch ``patience`` counts from: the last improvement, or a restore.
        self.since = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        #: The values of the best check (validation loss, metrics), for the words of the result.
        self.best_values: dict[str, float] = {}
        #: The epoch training was stopped at (``None``: not stopped).
        self.stopped_epoch: int | None = None
        self._loaded = False

    def problems(self, setup: Setup) -> list[str]:
        return self.watch.problems(setup, named(self))

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        self.watch.resolve(setup)
        if not self.watch.keeps(self._loaded):  # a fresh run (a resumed one took its state back)
            self.watch.best = self.watch.best_epoch = None
            self.since, self.best_weights, self.stopped_epoch = len(setup.history), None, None
            self.best_values = {}
        self._loaded = False

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if not _at_check(epoch, self.check_every, setup):
            return
        watch, last = self.watch, epoch >= setup.end_epoch
        value = setup.values[watch.monitor]
        if watch.improved(value):
            watch.best, watch.best_epoch, self.since = value, epoch, epoch
            # What the weights of this epoch scored (the loss is the epoch's before its update).
            self.best_values = {k: v for k, v in setup.values.items() if k not in ("loss", "lr")}
            if self.restore_best:  # a copy on the device: no transfer, no wait
                self.best_weights = {
                    name: tensor.detach().clone() for name, tensor in setup.model.state_dict().items()
                }
            return
        best = f"best {watch.best:.6g} at epoch {watch.best_epoch}"
        if epoch - self.since >= self.patience and not last:
            self.stopped_epoch = epoch
            by = f" by more than {watch.min_delta:g}" if watch.min_delta else ""
            reason = (
                f"{watch.monitor} did not improve{by} for {epoch - self.since} epochs ({best}, "
                f"patience {self.patience}) after epoch {epoch}"
            )
            raise StopTraining(reason + self._restore(setup, epoch))
        if last and self._restored_differs(epoch):
            raise StopTraining(
                f"ran all {epoch} epochs; {watch.monitor} was {best}" + self._restore(setup, epoch)
            )

    def _restored_differs(self, epoch: int) -> bool:
        return self.restore_best and self.best_weights is not None and self.watch.best_epoch != epoch

    def _restore(self, setup: Setup, epoch: int) -> str:
        """Put the best weights back (``restore_best``); the words that say so."""
        if not self._restored_differs(epoch):
            return ""
        assert self.best_weights is not None
        with torch.no_grad():
            for name, tensor in setup.model.state_dict().items():
                tensor.copy_(self.best_weights[name])
        setup.restored_epoch = self.watch.best_epoch  # the result is evaluated on these weights
        self.since = epoch  # a resumed run gets its patience again, from these weights
        others = {k: v for k, v in self.best_values.items() if k != self.watch.monitor}  # it is said already
        scores = ", ".join(f"{name} {value:.6g}" for name, value in others.items())
        return f"; the weights of epoch {self.watch.best_epoch} are restored" + (
            f" ({scores})" if scores else ""
        )

    def state_dict(self) -> dict[str, Any]:
        return self.watch.state_dict() | {
            "since": self.since,
            "stopped_epoch": self.stopped_epoch,
            "best_values": self.best_values,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.watch.load_state_dict(state)
        self.since, self.stopped_epoch = int(state["since"]), state["stopped_epoch"]
        weights = state["best_weights"]
        if weights is not None and not (
            isinstance(weights, dict) and all(isinstance(t, torch.Tensor) for t in weights.values())
        ):
            raise ValueError("best_weights must be a table of tensors")
        values = state["best_values"]
        if not (isinstance(values, dict) and all(isinstance(v, float | int) for v in values.values())):
            raise ValueError("best_values must be a table of numbers")
        self.best_weights, self.best_values = weights, {str(k): float(v) for k, v in values.items()}
        self._loaded = True


# -- logs -----------------------------------------------------------------------------------------


class _Log(Callback):
    """One row per sync point (with ``every``: per multiple of it) at ``path``: epoch, loss,
    validation loss, every metric, learning rate and the seconds since training began. Rows are
    appended and flushed as they come; a resumed run keeps the rows up to the epoch it resumes at
    (rewritten whole, atomically) and appends after them, its seconds going on from the last row's.
    Each member of a sweep writes a file of its own beside ``path``, named after it
    (:attr:`mlbasics.Setup.member`): ``log.csv`` -> ``log-03_seed=3_optimizer.lr=0.1.csv``."""

    suffix = ""

    def __init__(self, path: str, every: int | None = None) -> None:
        #: The path as given; :attr:`path` is the file written (a sweep member's own).
        self.requested = Path(path)
        self.path = self.requested
        self.every = every
        self.sync_every = every
        self.columns: list[str] = []
        self.seconds = 0.0  # of the last row written
        self._file: IO[str] | None = None
        self._resumed_at: int | None = None
        self._started = 0.0
        self._offset = 0.0
        self._loaded = False

    def file(self, setup: Setup) -> Path:
        """The file this run writes: ``path``, or a sweep member's own beside it."""
        path = self.requested
        return path if setup.member is None else path.with_name(f"{path.stem}-{setup.member}{path.suffix}")

    def problems(self, setup: Setup) -> list[str]:
        path = self.file(setup)
        folder = path.parent
        too_long = name_problem(path)  # first: asking whether such a path exists is itself an error
        if too_long is not None:
            return [f"{named(self)}: path {str(path)!r}: {too_long}"]
        if path.is_dir():
            return [f"{named(self)}: path {str(path)!r} is a folder, not a file"]
        if not folder.is_dir():
            return [f"{named(self)}: cannot write {str(path)!r}: folder {str(folder)!r} does not exist"]
        return []

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        self.path = self.file(setup)
        self.columns = ["epoch", *watchable_values(setup), "lr", "seconds"]
        self._resumed_at = len(setup.history) if self._loaded else None
        if not self._loaded:
            self.seconds = 0.0
        self._offset, self._loaded = self.seconds, False
        self._started = time.perf_counter()

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if self.every is not None and epoch % self.every and epoch < setup.end_epoch:
            return
        if self._file is None:
            self._file = self._open()
        self.seconds = self._offset + time.perf_counter() - self._started
        row: dict[str, Any] = {name: setup.values.get(name) for name in self.columns}
        row |= {"epoch": epoch, "seconds": round(self.seconds, 6)}
        self._file.write(self._line(row))
        self._file.flush()

    def _open(self) -> IO[str]:
        """The log, opened to append: fresh (a header), or as it was up to the resumed epoch.
        Opened at the first row, so a failure is a :class:`SaveError` that keeps what was trained."""
        kept = [] if self._resumed_at is None else self._kept_rows(self._resumed_at)
        try:
            _replace_text(self.path, self._header() + "".join(self._line(row) for row in kept))
            return open(self.path, "a", encoding="utf-8", newline="")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SaveError(f"{named(self)}: cannot write {self.path} ({reason})", reason=reason) from None

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def state_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        seconds = state["seconds"]
        if not isinstance(seconds, float | int):
            raise ValueError(f"seconds must be a number, got {seconds!r}")
        self.seconds, self._loaded = float(seconds), True

    def _kept_rows(self, resumed_at: int) -> list[dict[str, Any]]:
        """The rows already written up to the epoch the run resumes at (none if the file is gone)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise SaveError(f"{named(self)}: cannot read {self.path} back to resume it ({exc})") from None
        return [row for row in self._rows(text) if row["epoch"] <= resumed_at]

    def _header(self) -> str:
        raise NotImplementedError

    def _line(self, row: dict[str, Any]) -> str:
        raise NotImplementedError

    def _rows(self, text: str) -> Iterator[dict[str, Any]]:
        """The whole rows of a log written before (a line cut short by a crash is left out)."""
        raise NotImplementedError


class CsvLog(_Log):
    """The log as CSV with a header; empty where a value is missing. Floats are written as
    ``repr``, so they read back exactly."""

    def _header(self) -> str:
        return ",".join(self.columns) + "\n"

    def _line(self, row: dict[str, Any]) -> str:
        return ",".join("" if row.get(name) is None else repr(row[name]) for name in self.columns) + "\n"

    def _rows(self, text: str) -> Iterator[dict[str, Any]]:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:
            with contextlib.suppress(ValueError, TypeError):
                if None in row or any(value is None for value in row.values()):
                    continue  # a line cut short
                yield {name: _number(value) for name, value in row.items()} | {"epoch": int(row["epoch"])}


class JsonLinesLog(_Log):
    """The log as JSON lines, one object per row; a missing or non-finite value is ``null``."""

    def _header(self) -> str:
        return ""

    def _line(self, row: dict[str, Any]) -> str:
        values = {name: _finite(row.get(name)) for name in self.columns}
        return json.dumps(values, allow_nan=False) + "\n"

    def _rows(self, text: str) -> Iterator[dict[str, Any]]:
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                    yield row


def _number(text: str) -> float | None:
    return None if text == "" else float(text)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file beside it, renamed over it."""
    descriptor, temporary = temporary_file(path)  # with the mode a plain write would give it
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# -- learning-rate schedules ----------------------------------------------------------------------


class _Schedule(Callback):
    """Sets the optimizer's learning rates at sync points, at exact multiples of ``every`` epochs:
    the new rate holds for the epochs after it. The rates it started from are part of its state."""

    changes_optimizer = True

    def __init__(self, every: int) -> None:
        self.sync_every = every
        self.every = every
        self.base_lrs: list[float] | None = None
        self._loaded = False

    def problems(self, setup: Setup) -> list[str]:
        if isinstance(setup.optimizer, torch.optim.Optimizer):
            return []
        optimizer = setup.components["optimizer"].name
        return [
            f"{named(self)}: optimizer {optimizer!r} has no learning rate to schedule (it solves in closed form)"
        ]

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        if not self._loaded or self.base_lrs is None:
            self.base_lrs = [float(group["lr"]) for group in self._groups(setup)]
        self._loaded = False

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch % self.every == 0:
            self.step(setup, epoch)

    def step(self, setup: Setup, epoch: int) -> None:
        """Set the rates for the epochs after ``epoch``."""
        assert self.base_lrs is not None
        for group, base in zip(self._groups(setup), self.base_lrs, strict=False):
            group["lr"] = self.rate(base, epoch)

    def rate(self, base: float, epoch: int) -> float:
        raise NotImplementedError

    @staticmethod
    def _groups(setup: Setup) -> list[dict[str, Any]]:
        assert isinstance(setup.optimizer, torch.optim.Optimizer)
        return setup.optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        base = state["base_lrs"]
        if not (isinstance(base, list) and all(isinstance(lr, float | int) for lr in base)):
            raise ValueError(f"base_lrs must be a list of numbers, got {base!r:.60}")
        self.base_lrs, self._loaded = [float(lr) for lr in base], True


class StepSchedule(_Schedule):
    """lr = initial lr · gamma^(epoch // step_size), as ``torch.optim.lr_scheduler.StepLR``."""

    def __init__(self, step_size: int = 1000, gamma: float = 0.1) -> None:
        super().__init__(step_size)
        self.gamma = gamma

    def rate(self, base: float, epoch: int) -> float:
        return base * self.gamma ** (epoch // self.every)


class CosineSchedule(_Schedule):
    """lr = eta_min + (initial lr - eta_min)·(1 + cos(π·epoch/epochs))/2, set every ``every``
    epochs, then eta_min after ``epochs`` (by default the run's epochs, as first started: a run
    resumed for more epochs keeps the curve it began with)."""

    def __init__(self, epochs: int | None = None, eta_min: float = 0.0, every: int = 10) -> None:
        super().__init__(every)
        self.requested_epochs = epochs
        self.epochs = epochs or 1
        self.eta_min = eta_min

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        if not self._loaded:
            self.epochs = self.requested_epochs or setup.experiment.epochs
        super().on_train_start(setup, epochs)

    def rate(self, base: float, epoch: int) -> float:
        progress = min(epoch, self.epochs) / self.epochs
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epochs = state["epochs"]
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        super().load_state_dict(state)
        self.epochs = epochs


class PlateauSchedule(_Schedule):
    """Multiplies the learning rates by ``factor`` (down to ``min_lr``) once the monitored value
    has not improved by more than ``min_delta`` for ``patience`` epochs, checked every
    ``check_every`` epochs; then waits ``patience`` epochs again."""

    def __init__(
        self,
        monitor: str | None = None,
        mode: str = "auto",
        factor: float = 0.1,
        patience: int = 100,
        min_delta: float = 0.0,
        min_lr: float = 0.0,
        check_every: int = 10,
    ) -> None:
        super().__init__(check_every)
        self.watch = Watch(monitor, mode, min_delta)
        self.factor, self.patience, self.min_lr = factor, patience, min_lr
        self.since = 0

    def problems(self, setup: Setup) -> list[str]:
        return super().problems(setup) + self.watch.problems(setup, named(self))

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        self.watch.resolve(setup)
        if not self.watch.keeps(self._loaded):
            self.watch.best = self.watch.best_epoch = None
            self.since = len(setup.history)
        super().on_train_start(setup, epochs)

    def step(self, setup: Setup, epoch: int) -> None:
        value = setup.values[self.watch.monitor]
        if self.watch.improved(value):
            self.watch.best, self.watch.best_epoch, self.since = value, epoch, epoch
        elif epoch - self.since >= self.patience:
            for group in self._groups(setup):
                group["lr"] = max(float(group["lr"]) * self.factor, self.min_lr)
            self.since = epoch

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | self.watch.state_dict() | {"since": self.since}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.watch.load_state_dict(state)
        self.since = int(state["since"])


# -- factories (named by the specs in mlbasics.builtin) -------------------------------------------


def early_stopping(**params: Any) -> EarlyStopping:
    return EarlyStopping(**params)


def csv_logger(path: str, every: int | None = None) -> CsvLog:
    return CsvLog(path, every)


def jsonl_logger(path: str, every: int | None = None) -> JsonLinesLog:
    return JsonLinesLog(path, every)


def lr_step(step_size: int, gamma: float) -> StepSchedule:
    return StepSchedule(step_size, gamma)


def lr_cosine(epochs: int | None, eta_min: float, every: int) -> CosineSchedule:
    return CosineSchedule(epochs, eta_min, every)


def lr_plateau(**params: Any) -> PlateauSchedule:
    return PlateauSchedule(**params)


def divergence_check(threshold: float | None = None) -> DivergenceCheck:
    from mlbasics.training.divergence import DivergenceCheck

    return DivergenceCheck(threshold)


def progress_bar(transient: bool = False) -> ProgressBar:
    from mlbasics.show.progress import ProgressBar

    return ProgressBar(transient=transient)


def checkpoint(folder: str, every: int | None = None, overwrite: bool = False) -> Checkpointer:
    from mlbasics.runs.checkpoints import Checkpointer

    return Checkpointer(folder, every=every, overwrite=overwrite)
