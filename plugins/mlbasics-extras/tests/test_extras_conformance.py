"""Every component of this plugin honours mlbasics' contracts: the conformance checks of
``mlbasics.testing`` (each check is its own test; see mlbasics' docs/testing.md)."""

from __future__ import annotations

import mlbasics_extras
import torch

from mlbasics import Registry
from mlbasics.testing.conformance import Check, parametrize_with_checks

REGISTRY = Registry.isolated(mlbasics_extras)


@parametrize_with_checks(REGISTRY.specs(plugin="extras"), registry=REGISTRY)
def test_extras_components_conform(check: Check, device: torch.device) -> None:
    check(device)
