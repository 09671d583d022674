"""Sweeps: one experiment over a grid of settings (:mod:`.grid`), trained as one vmapped ensemble
(:mod:`.ensemble`) or member by member, what they produced (:mod:`.results`), and the grid shared
among torchrun's ranks (:mod:`.distributed`).

Imports: every other package and the top-level modules (members train through
:func:`mlbasics.training.run`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlbasics.sweeps.grid import sweep
    from mlbasics.sweeps.results import SweepMember, SweepResult

# ``from mlbasics.sweeps import sweep, SweepResult`` worked when this package was one module.
_LAZY = {
    "sweep": "mlbasics.sweeps.grid",
    "SweepMember": "mlbasics.sweeps.results",
    "SweepResult": "mlbasics.sweeps.results",
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


__all__ = ["SweepMember", "SweepResult", "sweep"]
