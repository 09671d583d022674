"""Data: what a dataset factory returns (:mod:`.dataset`: :class:`Dataset`, :class:`GroundTruth`),
CSV files read in blocks (:mod:`._csv`) or through a memory-mapped cache (:mod:`._csv_cache`),
held-out rows (:mod:`.splits`), mini-batches (:mod:`.batches`) and standardization.

Imports: :mod:`mlbasics.core`, :mod:`mlbasics.show` and the top-level modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlbasics.data.dataset import Dataset, GroundTruth

# ``from mlbasics.data import Dataset`` worked when this package was one module.
_LAZY = {"Dataset": "mlbasics.data.dataset", "GroundTruth": "mlbasics.data.dataset"}


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


__all__ = ["Dataset", "GroundTruth"]
