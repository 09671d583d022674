"""Fixtures for the plugin's own tests: this plugin beside the built-ins, and a reader of event files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlbasics_tensorboard
import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    DEFAULT_SIZE_GUIDANCE,
    EventAccumulator,
)

from mlbasics import ComponentSpec, Registry


@pytest.fixture
def registry() -> Registry:
    """The built-ins (to train with) and this plugin only; strict, so a broken hook fails loudly."""
    return Registry.isolated(mlbasics_tensorboard)


@pytest.fixture
def plugin_specs(registry: Registry) -> list[ComponentSpec]:
    """Every component this plugin provides: what a conformance check runs over."""
    return registry.specs(plugin="tensorboard")


def read_run(folder: str | Path) -> EventAccumulator:
    """A run's folder as TensorBoard reads it: every event file in it, in order, with what a later
    ``SessionLog.START`` purges left out, and every record kept (TensorBoard's default keeps a
    sample of 10,000 scalars and 4 images per tag)."""
    keep_all = dict.fromkeys(DEFAULT_SIZE_GUIDANCE, 0)
    events = EventAccumulator(str(folder), size_guidance=keep_all)
    events.Reload()
    return events


@pytest.fixture
def read() -> Callable[[str | Path], EventAccumulator]:
    return read_run
