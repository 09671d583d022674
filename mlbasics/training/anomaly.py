"""Finding the operation that produced a NaN: training under ``torch.autograd.detect_anomaly``.

Anomaly detection checks every backward operation's output for NaN (slowly: it is a debugging
switch). :func:`detect_anomaly` turns torch's ``RuntimeError`` into one clear
:class:`mlbasics.TrainingError` naming the operation, and keeps torch's traceback of the forward call
that caused it in the error's ``details`` (``mlbasics --debug train --detect-anomaly`` prints it).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from mlbasics.errors import TrainingError

if TYPE_CHECKING:
    from mlbasics.engine.setup import Setup

_ANOMALY = re.compile(r"Function '(?P<function>\w+)' returned nan values in its (?P<output>\d+)\w* output")
_FORWARD_TRACE = "Traceback of forward call that caused the error"


class AnomalyError(TrainingError):
    """A backward operation produced NaN; ``details`` holds the traceback of its forward call."""

    def __init__(self, message: str, *, function: str, details: str | None) -> None:
        super().__init__(message)
        self.function = function
        self.details = details


@contextlib.contextmanager
def detect_anomaly(setup: Setup | None = None) -> Iterator[None]:
    """Run the block under anomaly detection; the first NaN in a backward pass raises
    :class:`AnomalyError`. With ``setup``, the message says which epochs the failing step lies in."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Torch announces the mode and reports the forward traceback as warnings; both are kept
            # off the screen (the traceback goes into the error's details).
            warnings.simplefilter("always")
            with torch.autograd.detect_anomaly(check_nan=True):
                yield
    except RuntimeError as exc:
        match = _ANOMALY.search(str(exc))
        if match is None:
            raise
        function = match["function"]
        operation = re.sub(r"Backward\d*$", "", function) or function
        where = f" in one of epochs {_failing_epochs(setup)}" if setup is not None else ""
        details = next((str(w.message) for w in caught if _FORWARD_TRACE in str(w.message)), None)
        message = (
            f"anomaly detection: the backward pass of {operation} ({function}) returned NaN in its "
            f"output {match['output']}{where}; the forward call that made it is in the details "
            "(--debug shows them)"
        )
        raise AnomalyError(message, function=function, details=details) from exc
    finally:
        # Re-emitted only now that the recording has ended (inside it, each would be recorded into
        # the list being read), and through the user's filters, which the recording bypassed.
        for warning in caught:
            text = str(warning.message)
            if _FORWARD_TRACE in text or "Anomaly Detection has been enabled" in text:
                continue
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


def _failing_epochs(setup: Setup) -> str:
    """The epochs between the last sync point and the next: the failing step is one of them."""
    from mlbasics.engine.loop import sync_interval

    done = len(setup.history)
    interval = setup.interval or sync_interval(setup.experiment)  # the loop's, if it has begun
    end = min(setup.experiment.epochs, done + interval)
    return f"{done + 1} to {end}" if end > done + 1 else str(done + 1)
