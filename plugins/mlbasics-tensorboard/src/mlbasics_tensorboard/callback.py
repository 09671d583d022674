"""The ``tensorboard`` callback: a run's values at every sync point, and at the end what only the
end knows (test values, the fit, the settings with their final values).

Steps are epochs. The values come from :attr:`mlbasics.Setup.values`, which the loop fills at each
sync point, so logging costs the training loop nothing between sync points and adds no sync point
of its own (TensorBoard's own writer sends the records to disk from a thread of its own).

Resuming: the writer appends to the same folder (for the default folder, the one the run began
in: the callback's state says which) and starts with a ``SessionLog.START`` record at the epoch the
run continues after (``purge_step``). TensorBoard then drops whatever that folder holds from
later epochs -- the tail of an interrupted run past its last checkpoint, which the resumed run
writes again -- so every epoch appears once. A fresh run (epoch 0) into a folder that already
holds a run replaces what TensorBoard shows of it the same way.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from mlbasics import Callback
from mlbasics.notes import note_once
from mlbasics_tensorboard.events import flat_settings, tag, write_hparams

if TYPE_CHECKING:
    import torch

    from mlbasics import Setup, TrainResult

#: What a default run folder is named after, inside ``runs/``.
RUNS: str = "runs"


class TensorBoardLogger(Callback):
    """Writes a run's scalars, fit figure and hparams with :class:`torch.utils.tensorboard.SummaryWriter`.

    Args:
        logdir: the run's folder; ``None``: a new ``runs/<date>_<time>_<model>_<dataset>``.
        flush_secs: the writer sends what is pending to disk at least this often.
        figure: at the end, the fit over the data as the image ``fit`` (data with one feature).
        hparams: at the end, the experiment's settings and final values for the HParams tab.
    """

    def __init__(
        self, logdir: str | None = None, *, flush_secs: int = 10, figure: bool = True, hparams: bool = True
    ) -> None:
        self.logdir = logdir
        self.flush_secs = flush_secs
        self.figure = figure
        self.hparams = hparams
        #: The folder this run writes to, once it is chosen (at the start, or restored on resume).
        self.folder: Path | None = None
        self._writer: SummaryWriter | None = None

    def state_dict(self) -> dict[str, Any]:
        """The folder this run writes to, so that a resumed run continues it."""
        return {} if self.folder is None else {"logdir": str(self.folder)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.logdir is None and isinstance(state.get("logdir"), str):
            self.folder = Path(state["logdir"])

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        if self.folder is None:
            self.folder = Path(self.logdir) if self.logdir is not None else _new_folder(setup)
            member = getattr(setup, "member", None)  # a sweep's member (mlbasics > 0.1)
            if self.logdir is not None and member is not None:  # its own run, as log_sweep lays them out
                self.folder /= member
        start = len(setup.history)  # the epochs done before: non-zero for a resumed run
        self._writer = SummaryWriter(str(self.folder), purge_step=start + 1, flush_secs=self.flush_secs)
        self._writer.add_text("experiment", _as_markdown(setup.experiment.to_toml()), start)

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        assert self._writer is not None
        for name, value in setup.values.items():
            self._writer.add_scalar(tag(name, setup.metrics), value, epoch)

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if result is not None:
                self._write_end(writer, setup, result)
        finally:
            writer.close()

    def _write_end(self, writer: SummaryWriter, setup: Setup, result: TrainResult) -> None:
        step = result.epochs
        test = {} if result.test_loss is None else {"test_loss": result.test_loss}
        for name, value in (test | {f"test_{k}": v for k, v in result.test_metrics.items()}).items():
            writer.add_scalar(tag(name, setup.metrics), value, step)
        if self.figure and result.dataset.n_features == 1:
            if importlib.util.find_spec("matplotlib") is None:
                note_once(
                    "callback 'tensorboard': the fit figure needs matplotlib (pip install 'mlbasics[plot]'); "
                    "it is not written"
                )
            else:
                writer.add_image("fit", _fit_image(result), step, dataformats="HWC")
        if self.hparams:
            write_hparams(writer, run_settings(setup), step=step)


def run_settings(setup: Setup) -> dict[str, Any]:
    """The experiment's settings as the HParams tab shows them: each component's name and every
    param it was built with (defaults included: ``optimizer.lr``, ``model.hidden``), the other
    settings (``epochs``, ``seed``, ...) and the metrics and callbacks by name."""
    settings: dict[str, Any] = {}
    for key, value in setup.experiment.to_dict().items():
        if key in setup.components:
            continue  # below, with the params the component was really built with
        if key in ("metrics", "callbacks"):
            value = ", ".join(info.name for info in setup.listed.get(key, []))
        settings[key] = value
    for kind, info in setup.components.items():
        settings[kind] = info.name
        settings |= {f"{kind}.{param}": value for param, value in info.params.items()}
    return flat_settings(settings)


def _new_folder(setup: Setup) -> Path:
    """A folder no run has used: ``runs/<date>_<time>_<model>_<dataset>``, with ``-2``, ``-3`` ...
    for runs begun in the same second (the members of a sweep). Creating it claims it."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    base = Path(RUNS) / f"{stamp}_{setup.components['model'].name}_{setup.components['dataset'].name}"
    folder, number = base, 1
    while True:
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            number += 1
            folder = base.with_name(f"{base.name}-{number}")


def _as_markdown(toml: str) -> str:
    """TensorBoard's text tab renders Markdown: the experiment as a code block, indented."""
    return "\n".join(f"    {line}" for line in toml.splitlines())


def _fit_image(result: TrainResult) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """mlbasics' training figure (the loss and the fit over the data), drawn by matplotlib's Agg
    renderer as an RGB array; pyplot is not involved, so a notebook's backend is untouched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from mlbasics.show.plotting import training_figure

    canvas: Any = FigureCanvasAgg(training_figure(result))  # matplotlib's canvas is not annotated
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def tensorboard(
    logdir: str | None = None, flush_secs: int = 10, figure: bool = True, hparams: bool = True
) -> TensorBoardLogger:
    """The ``tensorboard`` callback's factory. A ``logdir`` that cannot be a folder (a file is
    there, or the nearest existing folder above it cannot be written to) is refused here, before
    training, as a user error; nothing is created until training starts."""
    if logdir is not None:
        _check_logdir(Path(logdir))
    return TensorBoardLogger(logdir, flush_secs=flush_secs, figure=figure, hparams=hparams)


def _check_logdir(path: Path) -> None:
    try:
        _check_folder(path)
    except OSError as exc:  # a name too long for the file system (asking about it fails too), ...
        raise ValueError(f"logdir {str(path)!r}: {exc.strerror or exc}") from None


def _check_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(f"logdir {str(path)!r} is a file, not a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"logdir {str(path)!r} cannot be made: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"logdir {str(path)!r} cannot be made: {str(existing)!r} is not writable")
