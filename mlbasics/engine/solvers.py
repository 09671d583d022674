"""Optimizers that do not iterate: they fit the model's parameters in one step, in closed form.

An optimizer factory may return a :class:`ClosedFormSolver` instead of a ``torch.optim.Optimizer``.
The training loop then calls :meth:`ClosedFormSolver.check` when the experiment is put together (so
an impossible combination fails before anything runs) and :meth:`ClosedFormSolver.solve` once.
"""

from __future__ import annotations

import abc

import torch

from mlbasics.core.specs import ComponentSpec


class ClosedFormSolver(abc.ABC):
    """Fits a model in one step. Subclass it and return an instance from an optimizer factory."""

    @abc.abstractmethod
    def check(self, model: torch.nn.Module, loss: ComponentSpec) -> str | None:
        """Say why this solver cannot fit ``model`` under ``loss``, or return ``None`` if it can."""

    @abc.abstractmethod
    def solve(self, model: torch.nn.Module, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Set ``model``'s parameters, in place, to the minimiser of the loss on the data."""
