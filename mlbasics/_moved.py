"""The module paths of mlbasics 0.1, kept working for one more minor version.

0.2 gave the package's modules folders of their own (``mlbasics.plotting`` became
``mlbasics.show.plotting``, ``mlbasics.ensemble`` became ``mlbasics.sweeps.ensemble``, ...). Code that
still imports an old path gets the module from its new place, the very same module object, with a
:class:`DeprecationWarning` naming the new path. The public names of ``import mlbasics`` never moved.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Final

#: Old module path -> new module path. Paths that are packages now (``mlbasics.data``,
#: ``mlbasics.training``, ``mlbasics.sweeps``) are not here: their packages re-export what the old
#: modules' users imported.
MOVED: Final = {
    f"mlbasics.{old}": f"mlbasics.{new}"
    for old, new in {
        "hookspecs": "core.hookspecs",
        "specs": "core.specs",
        "plugins": "core.plugins",
        "plugin_files": "core.plugin_files",
        "registry": "core.registry",
        "callbacks": "core.callbacks",
        "display": "show.display",
        "plotting": "show.plotting",
        "notebook": "show.notebook",
        "progress": "show.progress",
        "splits": "data.splits",
        "batches": "data.batches",
        "standardization": "data.standardization",
        "experiment": "engine.experiment",
        "setup": "engine.setup",
        "loop": "engine.loop",
        "steppers": "engine.steppers",
        "data_parallel": "engine.data_parallel",
        "metrics": "engine.metrics",
        "results": "engine.results",
        "solvers": "engine.solvers",
        "interrupts": "engine.interrupts",
        "checkpoints": "runs.checkpoints",
        "prediction": "runs.prediction",
        "divergence": "training.divergence",
        "anomaly": "training.anomaly",
        "resuming": "training.resuming",
        "ensemble": "sweeps.ensemble",
        "sweep_results": "sweeps.results",
        "distributed_sweeps": "sweeps.distributed",
    }.items()
}
#: Where the old removal is announced.
REMOVED_IN: Final = "0.3"


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(MOVED[fullname]))


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module at its new one (no second copy: classes stay the same)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.target}; import it from there "
            f"(the old path goes in mlbasics {REMOVED_IN})",
            DeprecationWarning,
            stacklevel=2,  # the import statement: warnings skips the import system's own frames
        )
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system has just given the module the old path's spec: it keeps its own.
        module.__spec__ = self.spec


def install() -> None:
    """Put the finder last on :data:`sys.meta_path` (once): real modules are always found first."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
