"""Every component of this plugin honours mlbasics' contracts: the conformance checks of
``mlbasics.testing`` (each check is its own test; see mlbasics' docs/testing.md)."""

from __future__ import annotations

import mlbasics_torch_optim
import torch

from mlbasics import Registry
from mlbasics.testing.conformance import Check, parametrize_with_checks

REGISTRY = Registry.isolated(mlbasics_torch_optim)


@parametrize_with_checks(REGISTRY.specs(plugin="torch-optim"), registry=REGISTRY)
def test_torch_optim_components_conform(check: Check, device: torch.device) -> None:
    check(device)
