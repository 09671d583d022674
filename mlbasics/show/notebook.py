"""Jupyter: a live loss curve while training, and outputs that are updated in place.

In a notebook, :class:`LivePlot` (``mlbasics.train(..., live=True)``) draws the loss curve under
the cell and redraws it as training goes on, and the progress bar (``progress=True``) is one line
that changes, not a new line per update. Both use one display output and update it
(IPython's ``display(..., display_id=True)``), which every Jupyter front end shows, with no
widgets to install. Outside a notebook nothing here draws anything.

IPython is not a dependency: it is only looked at when a kernel has already imported it.
"""

from __future__ import annotations

import base64
import importlib
import io
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, RenderableType

from mlbasics.core.callbacks import Callback
from mlbasics.errors import MlbasicsError
from mlbasics.notes import note_once

if TYPE_CHECKING:
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (a notebook, JupyterLab, VS Code, Colab)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class DisplayOutput:
    """One output of the running cell, replaced by each :meth:`show` (at most every ``every``
    seconds, unless ``force``): a progress bar or a plot that changes in place."""

    def __init__(self, *, every: float) -> None:
        self.every = every
        self._handle: Any = None
        self._last = -float("inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every

    def show(self, bundle: dict[str, str], *, force: bool = False) -> None:
        """Show ``bundle`` (MIME type -> data, as IPython's ``display(..., raw=True)`` takes it)."""
        if not force and not self.due():
            return
        # IPython is there (a kernel runs this), but not a dependency: looked up, not imported by name.
        display: Any = importlib.import_module("IPython.display").display
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._last = time.monotonic()


_PRE = (
    '<pre style="white-space: pre; overflow-x: auto; line-height: normal; margin: 0; '
    "font-family: Menlo, 'DejaVu Sans Mono', consolas, 'Courier New', monospace\">{code}</pre>"
)


class RichOutput(DisplayOutput):
    """A rich renderable (a progress bar) as an output updated in place, in HTML and plain text."""

    def __init__(self, *, every: float = 0.1, width: int = 100) -> None:
        super().__init__(every=every)
        self._console = Console(
            record=True, file=io.StringIO(), width=width, force_jupyter=False, color_system="truecolor"
        )

    def render(self, renderable: RenderableType, *, force: bool = False) -> None:
        if not force and not self.due():
            return
        self._console.print(renderable)
        plain = self._console.export_text(clear=False)
        markup = self._console.export_html(inline_styles=True, code_format=_PRE)
        self.show({"text/plain": plain.rstrip("\n"), "text/html": markup}, force=True)


class LivePlot(Callback):
    """The loss curve (and the validation loss, and the first metric's curve), drawn under the
    running cell and redrawn in place (at most every ``every`` seconds, and once at the end) while
    training runs. ``mlbasics.train(..., live=True)`` adds one.

    Outside a Jupyter kernel it draws nothing and says so once. In one it needs matplotlib (the
    ``plot`` extra), and says so before training starts if it is missing.
    """

    def __init__(self, *, every: float = 0.5) -> None:
        self.active = in_notebook()
        if self.active:
            import importlib.util

            if importlib.util.find_spec("matplotlib") is None:
                raise MlbasicsError("a live plot needs matplotlib: pip install 'mlbasics[plot]'")
        self._output = DisplayOutput(every=every)
        self._epochs = 0

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        if not self.active:
            note_once(
                "live plot: not in a Jupyter notebook, so nothing is drawn; result.plot('loss.png') draws the "
                "picture into a file once training is done"
            )
            return
        self._epochs = epochs

    def on_sync(self, setup: Setup, epoch: int, losses: object) -> None:
        if self.active and self._output.due():
            self._draw(setup)

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        if self.active and setup.history:
            self._draw(setup, force=True)

    def _draw(self, setup: Setup, *, force: bool = False) -> None:
        from mlbasics.show.plotting import live_figure

        figure = live_figure(setup, self._epochs)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=80)
        history = setup.history
        name = next(iter(setup.metrics), None)
        metric = f", {name} {setup.values[name]:.4g}" if name is not None and name in setup.values else ""
        summary = f"loss {history[-1]:.4g}{metric} after epoch {len(history)} of {self._epochs}"
        self._output.show(
            {"image/png": base64.b64encode(buffer.getvalue()).decode("ascii"), "text/plain": summary},
            force=force,
        )
