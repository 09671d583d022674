"""Errors that users cause and can fix.

Every :class:`MlbasicsError` means "your input is wrong", never "mlbasics is broken": the CLI prints
it as one line per problem on stderr and exits with status 2, without a traceback.
:class:`PluginBugError` means a plugin's own code failed: the CLI prints one line and exits with
status 1. Anything else that escapes is a bug in mlbasics and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlbasics.engine.results import TrainResult


class MlbasicsError(Exception):
    """Base class of all errors caused by user input (names, params, files, devices)."""


class ValidationError(MlbasicsError):
    """One or more problems found before anything was built or trained.

    All problems of one build or experiment are collected and reported together, one per line.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("ValidationError needs at least one problem")
        super().__init__("\n".join(self.problems))


class UnknownComponentError(ValidationError):
    """A component name that no active plugin provides."""


class PluginError(MlbasicsError):
    """A plugin failed to load, or two plugins provide the same component name."""


class ComponentBuildError(MlbasicsError):
    """A component's factory refused the params it was given, or ran out of memory building it.

    Which exceptions count as the user's (exit status 2) rather than the plugin's
    (:class:`PluginBugError`, exit status 1) is decided by :func:`caused_by_params`. ``error`` is the
    factory's own exception (also the ``__cause__``).
    """

    def __init__(self, message: str, *, error: BaseException) -> None:
        super().__init__(message)
        self.error = error


class PluginBugError(Exception):
    """A plugin's code failed in a way no input explains (a ``KeyError`` in its factory, a
    ``sys.exit()``): the plugin's fault, not the user's. Deliberately not an :class:`MlbasicsError`;
    the CLI prints it as one line and exits with status 1. ``error`` is the original exception."""

    def __init__(self, message: str, *, error: BaseException) -> None:
        super().__init__(message)
        self.error = error


class DeviceError(MlbasicsError):
    """The requested device does not exist or is not available on this machine."""


class DataError(MlbasicsError):
    """A data file (CSV, TOML, checkpoint) is missing or malformed; the message names file and line."""


class SaveError(DataError):
    """A file or run folder could not be written: the disk is full, the file system is read-only, a
    name is too long, another run holds the folder. The message names the place and the reason.

    Raised by :func:`mlbasics.fit` (and so by ``train``/``resume``) when a checkpoint could not be
    written, it keeps what was trained: ``result`` is the :class:`mlbasics.TrainResult` up to the
    epoch training stopped at (the failed checkpoint's), which is in memory only. ``None`` when
    nothing had been trained yet.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        #: Why the operating system refused, e.g. "No space left on device".
        self.reason = reason or message
        self.result: TrainResult | None = None


class TrainingError(MlbasicsError):
    """Training cannot go on (for example, the loss stopped being finite)."""


class DivergenceError(TrainingError):
    """The loss or a parameter stopped being finite, or the loss grew past the divergence threshold.

    Keeps what a user needs to see what happened: the epoch, the last finite loss, and the whole
    loss history up to the sync point where the divergence was found (non-finite values included),
    which ``mlbasics.plot(error)`` draws. ``suggested_lr`` is the learning rate the message
    suggests, where it names the learning rate as the cause (``None`` otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int,
        last_finite_loss: float | None,
        history: list[float],
        suggested_lr: float | None = None,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.last_finite_loss = last_finite_loss
        self.history = history
        self.suggested_lr = suggested_lr


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message ("" if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def one_line(exc: BaseException) -> str:
    """``exc`` in one line for a message that reports it: ``TypeName: first line of its message``
    (the type name alone if it has no message)."""
    line = first_line(exc)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


#: Words in the messages of the ``RuntimeError`` torch raises when an allocation fails (the CPU
#: allocator's "not enough memory", CUDA's and MPS's "out of memory").
_OUT_OF_MEMORY = ("not enough memory", "out of memory", "can't allocate memory", "cannot allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed: ``MemoryError``, ``torch.OutOfMemoryError`` (a
    ``RuntimeError``), or a ``RuntimeError`` whose message says so."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(words in str(exc).lower() for words in _OUT_OF_MEMORY)


def caused_by_params(exc: BaseException) -> bool:
    """The rule for an exception a component's factory raises: the params the user chose caused it
    (exit status 2) when it is a ``ValueError`` or ``TypeError`` (how a factory refuses a value its
    declaration let through), an ``OverflowError``, or running out of memory (sizes the user chose);
    anything else is a bug in the plugin (exit status 1). One exception to it: a ``TypeError`` raised
    by calling the factory at all (its signature does not take its declared params) is the
    plugin's bug too; :func:`mlbasics.core.registry.build_error` checks that."""
    return isinstance(exc, ValueError | TypeError | OverflowError) or is_out_of_memory(exc)
