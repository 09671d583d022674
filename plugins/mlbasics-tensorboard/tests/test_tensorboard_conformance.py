"""The plugin's callback honours mlbasics' contracts: the conformance checks of ``mlbasics.testing``
(each check is its own test; see mlbasics' docs/testing.md)."""

from __future__ import annotations

from pathlib import Path

import mlbasics_tensorboard
import pytest
import torch

from mlbasics import Registry
from mlbasics.testing.conformance import Check, checks_for, parametrize_with_checks

REGISTRY = Registry.isolated(mlbasics_tensorboard)

try:
    checks_for(REGISTRY.specs(plugin="tensorboard"), registry=REGISTRY)
except KeyError:  # an mlbasics whose kit has no checks for the kind "callback" yet
    pytest.skip("this mlbasics' conformance kit has no callback checks", allow_module_level=True)


@pytest.fixture(autouse=True)
def _in_a_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks build the callback with its defaults, which write a new folder under ./runs."""
    monkeypatch.chdir(tmp_path)


@parametrize_with_checks(REGISTRY.specs(plugin="tensorboard"), registry=REGISTRY)
def test_tensorboard_components_conform(check: Check, device: torch.device) -> None:
    check(device)
