"""A run put together: :func:`train` and :func:`run` (:mod:`.runner`) give the loop its company --
the divergence check (:mod:`.divergence`), NaN hunting (:mod:`.anomaly`), the progress bar, the
live plot, the checkpointer -- and :func:`resume` continues a saved run (:mod:`.resuming`).

Imports: every package but :mod:`mlbasics.sweeps`, and the top-level modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlbasics.training.resuming import resume
    from mlbasics.training.runner import run, train

# ``mlbasics.training.run`` and ``.train`` worked when this package was one module.
_LAZY = {
    "train": "mlbasics.training.runner",
    "run": "mlbasics.training.runner",
    "resume": "mlbasics.training.resuming",
}


def __getattr__(name: str) -> Any:
    # Loaded on first use: importing one module of the package does not import the others.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["resume", "run", "train"]
