"""mlbasics: a pluggable PyTorch toolkit for learning and extending basic machine learning.

The data path reads top to bottom: an :class:`Experiment` names components -> the :class:`Registry`
validates params and builds them from the specs that plugins returned -> :func:`train` runs them on
the device -> a :class:`TrainResult` carries history, parameters and provenance.

Importing ``mlbasics`` does not import torch; the names that need it are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mlbasics.core.hookspecs import hookimpl, hookspec
from mlbasics.core.plugins import PluginRecord, PluginSet, PluginSettings
from mlbasics.core.registry import Registry, default_registry
from mlbasics.core.specs import KINDS, REQUIRED, ComponentSpec, Kind, Param, PluginInfo
from mlbasics.engine.experiment import Component, Experiment
from mlbasics.engine.interrupts import stop_on_signals
from mlbasics.errors import (
    ComponentBuildError,
    DataError,
    DeviceError,
    DivergenceError,
    MlbasicsError,
    PluginBugError,
    PluginError,
    SaveError,
    TrainingError,
    UnknownComponentError,
    ValidationError,
)

if TYPE_CHECKING:
    from mlbasics.analysis import NotCollapsibleError, collapse
    from mlbasics.core.callbacks import Callback, StopTraining
    from mlbasics.data.dataset import Dataset, GroundTruth
    from mlbasics.engine.loop import fit
    from mlbasics.engine.metrics import Metric
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup, prepare
    from mlbasics.engine.solvers import ClosedFormSolver
    from mlbasics.runs.checkpoints import Checkpoint, Checkpointer
    from mlbasics.show.plotting import plot
    from mlbasics.sweeps.grid import SweepMember, SweepResult, sweep
    from mlbasics.training.anomaly import detect_anomaly
    from mlbasics.training.resuming import resume
    from mlbasics.training.runner import train

from mlbasics import _moved
from mlbasics._version import __version__

_moved.install()  # the module paths of 0.1 (mlbasics.show.plotting, ...) still import, with a warning

# Public names whose modules import torch: resolved on first access (PEP 562), so that
# `mlbasics list` and `import mlbasics` stay fast.
_LAZY = {
    "collapse": "mlbasics.analysis",
    "NotCollapsibleError": "mlbasics.analysis",
    "detect_anomaly": "mlbasics.training.anomaly",
    "Checkpoint": "mlbasics.runs.checkpoints",
    "Checkpointer": "mlbasics.runs.checkpoints",
    "resume": "mlbasics.training.resuming",
    "Dataset": "mlbasics.data.dataset",
    "GroundTruth": "mlbasics.data.dataset",
    "ClosedFormSolver": "mlbasics.engine.solvers",
    "Callback": "mlbasics.core.callbacks",
    "Metric": "mlbasics.engine.metrics",
    "Setup": "mlbasics.engine.setup",
    "StopTraining": "mlbasics.core.callbacks",
    "TrainResult": "mlbasics.engine.results",
    "fit": "mlbasics.engine.loop",
    "prepare": "mlbasics.engine.setup",
    "train": "mlbasics.training.runner",
    "sweep": "mlbasics.sweeps.grid",
    "SweepMember": "mlbasics.sweeps.results",
    "SweepResult": "mlbasics.sweeps.results",
    "plot": "mlbasics.show.plotting",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlbasics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def build(kind: str, name: str, /, *args: Any, **params: Any) -> Any:
    """Build one component by kind and name from the installed plugins, e.g.
    ``build("model", "mlp", in_features=1, hidden=[8, 8])``."""
    return default_registry().build(kind, name, *args, **params)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "KINDS",
    "REQUIRED",
    "Callback",
    "Checkpoint",
    "Checkpointer",
    "ClosedFormSolver",
    "Component",
    "ComponentBuildError",
    "ComponentSpec",
    "DataError",
    "Dataset",
    "DeviceError",
    "DivergenceError",
    "Experiment",
    "GroundTruth",
    "Kind",
    "Metric",
    "MlbasicsError",
    "NotCollapsibleError",
    "Param",
    "PluginBugError",
    "PluginError",
    "PluginInfo",
    "PluginRecord",
    "PluginSet",
    "PluginSettings",
    "Registry",
    "SaveError",
    "Setup",
    "StopTraining",
    "SweepMember",
    "SweepResult",
    "TrainResult",
    "TrainingError",
    "UnknownComponentError",
    "ValidationError",
    "__version__",
    "build",
    "collapse",
    "default_registry",
    "detect_anomaly",
    "fit",
    "hookimpl",
    "hookspec",
    "plot",
    "prepare",
    "resume",
    "stop_on_signals",
    "sweep",
    "train",
]
