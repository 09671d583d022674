"""Whether the installed plugins can rebuild a saved run's components faithfully: the same
component names, from the same plugins, at the same or a newer version."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlbasics.errors import PluginError, ValidationError
from mlbasics.experiment import COMPONENT_KINDS
from mlbasics.registry import Registry
from mlbasics.specs import Kind
from mlbasics.training import ComponentInfo

if TYPE_CHECKING:
    from mlbasics.checkpoints import Checkpoint


def provenance_problems(
    checkpoint: Checkpoint, registry: Registry, *, kinds: Sequence[Kind] = COMPONENT_KINDS
) -> list[str]:
    """Why the installed plugins may not rebuild the checkpoint's components faithfully: a
    component no longer provided, provided by another plugin, or by an older version of its plugin."""
    problems = []
    for kind in kinds:
        recorded = checkpoint.components[kind]
        origin = _origin(recorded)
        try:
            spec = registry.get(kind, recorded.name)
        except (ValidationError, PluginError) as exc:
            problems.append(
                f"it was trained with {kind} {recorded.name!r} from {origin}, which is not available here "
                f"({str(exc).splitlines()[0]})"
            )
            continue
        current = ComponentInfo.of(spec, {})
        if current.plugin != recorded.plugin:
            problems.append(
                f"it was trained with {kind} {recorded.name!r} from {origin}, "
                f"but here {_origin(current)} provides it"
            )
        elif (
            recorded.version is not None
            and current.version is not None
            and recorded.version != current.version
        ):
            older = _is_older(current.version, recorded.version)
            if older is not False:
                problems.append(
                    f"it was trained with {kind} {recorded.name!r} from {origin}, but here "
                    f"{recorded.plugin} is version {current.version}"
                    + (", which is older" if older else ", which may behave differently")
                )
    return problems


def _origin(info: ComponentInfo) -> str:
    if info.distribution is None:
        return f"plugin {info.plugin}"
    return f"plugin {info.plugin} ({info.distribution} {info.version})"


def _is_older(version: str, than: str) -> bool | None:
    """Compare release numbers (1.10 > 1.9); ``None`` when they cannot be compared (same release,
    different suffix, or not numbers)."""
    mine, theirs = _release(version), _release(than)
    if mine is None or theirs is None or mine == theirs:
        return None
    return mine < theirs


def _release(version: str) -> tuple[int, ...] | None:
    """``"1.10.2rc1"`` -> ``(1, 10, 2)``."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else None
