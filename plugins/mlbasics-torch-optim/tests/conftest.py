"""Fixtures for the plugin's own tests: this plugin beside the built-ins, and nothing else installed."""

from __future__ import annotations

import mlbasics_torch_optim
import pytest

from mlbasics import ComponentSpec, Registry


@pytest.fixture
def registry() -> Registry:
    """The built-ins (to train with) and this plugin only; strict, so a broken hook fails loudly."""
    return Registry.isolated(mlbasics_torch_optim)


@pytest.fixture
def plugin_specs(registry: Registry) -> list[ComponentSpec]:
    """Every component this plugin provides: what a conformance check runs over."""
    return registry.specs(plugin="torch-optim")
