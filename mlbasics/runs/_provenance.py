"""Whether the installed plugins can rebuild a saved run's components faithfully: the same
component names, from the same plugins, at the same or a newer version. That includes the
components a component pulled in through its params (a model's ``activation``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from mlbasics.core.registry import Registry
from mlbasics.core.specs import IN_MEMORY, Kind
from mlbasics.engine.experiment import COMPONENT_KINDS, Experiment
from mlbasics.engine.setup import ComponentInfo
from mlbasics.errors import PluginError, ValidationError

if TYPE_CHECKING:
    from mlbasics.runs.checkpoints import Checkpoint


@attrs.frozen
class ProvenanceProblem:
    """Why one recorded component may not be rebuilt faithfully here."""

    line: str
    #: Whether forcing would help: ``False`` when the component cannot be built here at all.
    forceable: bool


def provenance_problems(
    checkpoint: Checkpoint,
    registry: Registry,
    *,
    kinds: Sequence[Kind] = COMPONENT_KINDS,
    experiment: Experiment | None = None,
) -> list[ProvenanceProblem]:
    """Why the installed plugins may not rebuild the checkpoint's components faithfully: a
    component no longer provided (not forceable), provided by another plugin, or by an older
    version of its plugin. With ``experiment`` (what is about to be built), components it replaces
    are not checked: only what is rebuilt from the record matters."""
    problems = []
    for kind in kinds:
        recorded = checkpoint.components[kind]
        if kind == "dataset" and recorded.name == IN_MEMORY:
            continue  # data held in memory: given again by the caller, checked by their hash

        wanted = getattr(experiment, kind) if experiment is not None else None
        if wanted is not None and wanted.name != recorded.name:
            continue
        problems += _check(registry, kind, recorded, f"{kind} {recorded.name!r}")
        for param, used in recorded.uses.items():
            if wanted is not None and wanted.params.get(
                param, recorded.params.get(param)
            ) != recorded.params.get(param):
                continue  # this run chooses another one
            label = f"{used.kind} {used.name!r} (the {param} of {kind} {recorded.name!r})"
            problems += _check(registry, used.kind or "?", used, label)
    return problems


def _check(registry: Registry, kind: str, recorded: ComponentInfo, label: str) -> list[ProvenanceProblem]:
    origin = _origin(recorded)
    try:
        spec = registry.get(kind, recorded.name)
    except (ValidationError, PluginError) as exc:
        line = f"it was trained with {label} from {origin}, which is not available here ({str(exc).splitlines()[0]})"
        return [ProvenanceProblem(line, forceable=False)]
    current = ComponentInfo.of(spec, {})
    if current.plugin != recorded.plugin:
        line = f"it was trained with {label} from {origin}, but here {_origin(current)} provides it"
        return [ProvenanceProblem(line, forceable=True)]
    if recorded.version is not None and current.version is not None and recorded.version != current.version:
        older = _is_older(current.version, recorded.version)
        if older is not False:
            line = (
                f"it was trained with {label} from {origin}, but here {recorded.plugin} is version "
                f"{current.version}" + (", which is older" if older else ", which may behave differently")
            )
            return [ProvenanceProblem(line, forceable=True)]
    return []


def refuse(problems: Sequence[ProvenanceProblem], *, prefix: str, force: bool, hint: str) -> list[str]:
    """Raise for ``problems`` that stop a rebuild: all of them unless ``force``, and the ones
    forcing cannot help (a component not installed) even then; ``hint`` (``--force resumes
    anyway``) is offered only where forcing would work. Returns the lines ``force`` let through."""
    blocking = [p for p in problems if not (force and p.forceable)]
    if blocking:
        raise ValidationError(
            [
                f"{prefix}: {p.line} ({hint})" if p.forceable else f"{prefix}: {p.line}; install it to go on"
                for p in blocking
            ]
        )
    return [p.line for p in problems]


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
