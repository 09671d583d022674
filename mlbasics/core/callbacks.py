"""The callback protocol: what training tells the code that watches it, and how that code stops it.

The training loop (:mod:`mlbasics.engine.loop`) knows only this protocol; progress bars, checkpoints,
divergence checks and plugins' callbacks implement it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mlbasics.errors import PluginBugError, one_line

if TYPE_CHECKING:
    import torch

    from mlbasics.core.specs import ComponentSpec
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup


#: The tag of the callbacks that are part of every run -- the divergence check, the progress bar,
#: the checkpointer -- which :func:`mlbasics.training.runner.run` builds from its arguments; an
#: experiment cannot list them.
RUN_TAG: Final = "run"


class StopTraining(Exception):
    """Raised by a callback to end training early; the result keeps the epochs done so far."""


class CallbackError(PluginBugError):
    """A callback raised an unexpected exception during training; the message names it, and where
    the run was being saved, the last good checkpoint is kept. The CLI exits with status 1."""


class Callback:
    """Hooks into training at the moments the loss is copied off the device. Override any of them;
    raise :class:`StopTraining` to end training early.

    At a sync point, :attr:`mlbasics.Setup.values` holds the values just computed (``"loss"``,
    ``"validation_loss"``, each metric, ``"lr"``); :attr:`mlbasics.Setup.history` every epoch's
    loss. A callback that decides something at given epochs (a schedule, a check every N epochs)
    sets :attr:`sync_every`: sync points then fall on every multiple of it, on any machine, so a
    resumed run sees the same sync points as an uninterrupted one.
    """

    #: The most epochs this callback lets pass between two sync points (``None``: no limit); the
    #: loop syncs at every multiple of it. A checkpointer sets it to its interval.
    sync_every: int | None = None
    #: Whether the callback changes the optimizer's hyperparameters (a learning-rate schedule):
    #: such a run is trained eagerly, since a captured CUDA graph would keep the old values.
    changes_optimizer: bool = False
    #: How errors name this callback: set from its spec for callbacks built from the registry.
    label: str | None = None

    def problems(self, setup: Setup) -> list[str]:
        """What keeps this callback from working with ``setup`` (a monitored value the run does not
        compute), one line each. Asked before training starts, when nothing has run yet: a run
        with any is refused with a :class:`mlbasics.ValidationError`. None by default."""
        return []

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        """Before the first step; ``epochs`` is the epoch training will end at. A resumed run
        starts at ``len(setup.history)``."""

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        """After ``epoch`` epochs in all; ``losses`` (on the CPU) are those since the last call."""

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        """Always called last: with the result, or with ``None`` if training failed with an error."""

    def state_dict(self) -> dict[str, Any]:
        """What this callback must carry over a save and resume: JSON values (numbers, strings,
        lists, dicts) and ``torch.Tensor`` values (saved as safetensors). Empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned (in a resumed run, before ``on_train_start``)."""


def label(spec: ComponentSpec) -> str:
    """How a callback built from ``spec`` is named in errors: "callback 'NAME' from plugin P"."""
    plugin = spec.plugin.name if spec.plugin else "?"
    return f"{spec.kind} {spec.name!r} from plugin {plugin}"


def named(callback: Callback) -> str:
    """The callback's :attr:`Callback.label`, or its class for one passed in from Python."""
    return callback.label or f"callback {type(callback).__qualname__}"


def callback_failed(callback: Callback, moment: str, exc: Exception) -> CallbackError:
    """The one line for a callback that raised ``exc`` at ``moment`` ("after epoch 12")."""
    return CallbackError(f"{named(callback)} failed {moment}: {one_line(exc)}", error=exc)
