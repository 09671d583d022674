"""mlbasics: a pluggable PyTorch toolkit for learning and extending basic machine learning.

The data path reads top to bottom: an :class:`Experiment` names components -> the :class:`Registry`
validates params and builds them from the specs that plugins returned -> :func:`train` runs them on
the device -> a :class:`TrainResult` carries history, parameters and provenance.

Importing ``mlbasics`` does not import torch; the names that need it are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from mlbasics.experiment import Component, Experiment
from mlbasics.hookspecs import hookimpl, hookspec
from mlbasics.interrupts import stop_on_signals
from mlbasics.plugins import PluginRecord, PluginSet, PluginSettings
from mlbasics.registry import Registry, default_registry
from mlbasics.specs import KINDS, REQUIRED, ComponentSpec, Kind, Param, PluginInfo

if TYPE_CHECKING:
    from mlbasics.analysis import NotCollapsibleError, collapse
    from mlbasics.anomaly import detect_anomaly
    from mlbasics.callbacks import Callback, StopTraining
    from mlbasics.checkpoints import Checkpoint, Checkpointer
    from mlbasics.data import Dataset, GroundTruth
    from mlbasics.loop import fit
    from mlbasics.metrics import Metric
    from mlbasics.results import TrainResult
    from mlbasics.resuming import resume
    from mlbasics.setup import Setup, prepare
    from mlbasics.solvers import ClosedFormSolver
    from mlbasics.sweeps import SweepMember, SweepResult, sweep
    from mlbasics.training import train

from mlbasics._version import __version__

# Public names whose modules import torch: resolved on first access (PEP 562), so that
# `mlbasics list` and `import mlbasics` stay fast.
_LAZY = {
    "collapse": "mlbasics.analysis",
    "NotCollapsibleError": "mlbasics.analysis",
    "detect_anomaly": "mlbasics.anomaly",
    "Checkpoint": "mlbasics.checkpoints",
    "Checkpointer": "mlbasics.checkpoints",
    "resume": "mlbasics.resuming",
    "Dataset": "mlbasics.data",
    "GroundTruth": "mlbasics.data",
    "ClosedFormSolver": "mlbasics.solvers",
    "Callback": "mlbasics.callbacks",
    "Metric": "mlbasics.metrics",
    "Setup": "mlbasics.setup",
    "StopTraining": "mlbasics.callbacks",
    "TrainResult": "mlbasics.results",
    "fit": "mlbasics.loop",
    "prepare": "mlbasics.setup",
    "train": "mlbasics.training",
    "sweep": "mlbasics.sweeps",
    "SweepMember": "mlbasics.sweeps",
    "SweepResult": "mlbasics.sweeps",
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
    "prepare",
    "resume",
    "stop_on_signals",
    "sweep",
    "train",
]
