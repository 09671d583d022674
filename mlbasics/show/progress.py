"""A rich progress bar for training: epoch, loss (and validation loss), the experiment's first
metric (on the training and validation rows), the speed in what the bar counts (steps/s where an
epoch is one step, epochs/s for mini-batches, model-epochs/s for a sweep) and time left,
refreshed at most 10 times a second and fed only at the loop's sync points, so it costs the loop
nothing per step.

In a Jupyter notebook (and no ``console`` given) the bar is one output of the cell, redrawn in
place at the sync points (:class:`mlbasics.show.notebook.RichOutput`): rich's own live display would
need ipywidgets there, and a terminal's carriage returns would pile up as lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mlbasics.core.callbacks import Callback

if TYPE_CHECKING:
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


class _Speed(ProgressColumn):
    """How fast the bar's count goes, in its ``unit`` ("epochs/s")."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}" if speed else f"- {self.unit}", style="progress.data.speed")


def speed_unit(setup: Setup, *, sweep: bool = False) -> str:
    """What a bar counting ``setup``'s epochs counts per second: ``steps/s`` where an epoch is one
    step (full batch), ``epochs/s`` for an epoch of mini-batches; a sweep's bar counts
    ``model-epochs/s`` (members × epochs)."""
    if sweep:
        return "model-epochs/s"
    return "steps/s" if setup.full_batch else "epochs/s"


class ProgressBar(Callback):
    """Shows training progress on ``console`` (stderr by default).

    ``model_epochs``: a sweep's one bar, counting model-epochs (members × epochs) up to this many
    over every run it is given -- members trained one after another add their epochs to those
    before; a vmapped ensemble's sync points give its model-epochs so far -- and shown until
    :meth:`close`, not just until the end of a run. ``scale``: model-epochs shown per model-epoch
    trained here (under torchrun, rank 0's share of the grid stands for the whole grid)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        transient: bool = False,
        model_epochs: int | None = None,
        scale: float = 1.0,
    ) -> None:
        from mlbasics.show.notebook import RichOutput, in_notebook

        self._notebook = RichOutput() if console is None and in_notebook() else None
        self.console = console or Console(stderr=True)
        self.transient = transient
        self.model_epochs = model_epochs
        self._before = self._epoch = 0  # a sweep's model-epochs in the runs before this one, and in it
        #: Model-epochs shown per model-epoch trained: a torchrun rank's share stands for the grid.
        self._scale = scale
        self._progress: Progress | None = None

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        if self._progress is not None and self.model_epochs is not None:  # a sweep's next member
            self._before, self._epoch = self._before + self._epoch, 0
            return
        self._progress = Progress(
            TextColumn("[bold]epoch" if self.model_epochs is None else "[bold]model-epochs"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("loss [cyan]{task.fields[loss]}{task.fields[validation]}{task.fields[metric]}"),
            _Speed(speed_unit(setup, sweep=self.model_epochs is not None)),
            TimeRemainingColumn(),
            console=self.console,
            transient=self.transient,
            refresh_per_second=10,
            auto_refresh=self._notebook is None,
        )
        done = len(setup.history)  # a resumed run starts where it stopped
        last = f"{setup.history[-1]:.6g}" if done else "-"
        self._task = self._progress.add_task(
            "train",
            total=self.model_epochs or epochs,
            completed=done,
            loss=last,
            validation=self._validation(setup),
            metric=self._metric(setup),
        )
        if self._notebook is not None:
            self._notebook.render(self._progress.get_renderable(), force=True)
        else:
            self._progress.start()

    def on_sync(self, setup: Setup, epoch: int, losses: object) -> None:
        assert self._progress is not None
        last = float(losses[-1])  # type: ignore[index]
        self._epoch = epoch
        self._progress.update(
            self._task,
            completed=round((self._before + epoch) * self._scale),
            loss=f"{last:.6g}",
            validation=self._validation(setup),
            metric=self._metric(setup),
        )
        if self._notebook is not None:
            self._notebook.render(self._progress.get_renderable())

    @staticmethod
    def _validation(setup: Setup) -> str:
        """`` validation 0.123`` once there is a validation loss; nothing without a validation part."""
        if not setup.validation_history:
            return " validation -" if setup.validation is not None else ""
        return f" validation [magenta]{setup.validation_history[-1][1]:.6g}[/]"

    @staticmethod
    def _metric(setup: Setup) -> str:
        """`` · r2 0.987 validation 0.975``: the first metric at the latest sync point, on the
        training rows and (with a validation part) the validation rows; nothing without metrics."""
        name = next(iter(setup.metrics), None)
        if name is None:
            return ""
        shown = [f" · {escape(name)} [green]{_value(setup.values.get(name))}[/]"]
        if setup.validation is not None:
            shown.append(f" validation [magenta]{_value(setup.values.get('validation_' + name))}[/]")
        return "".join(shown)

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        if self.model_epochs is None:
            self.close()
        elif self._progress is not None:  # a sweep's member: every epoch it trained (diverged too)
            self._epoch = len(setup.history)
            self._progress.update(self._task, completed=round((self._before + self._epoch) * self._scale))

    def close(self) -> None:
        """Stop showing progress (a run's bar does at the end of the run, a sweep's only here)."""
        if self._progress is None:
            return
        if self._notebook is not None:
            self._progress.stop_task(self._task)  # the speed shown is then the run's average
            self._notebook.render("" if self.transient else self._progress.get_renderable(), force=True)
        else:
            self._progress.stop()
        self._progress = None
