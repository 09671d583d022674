"""Conformance checks: does a plugin's component honour the contract of its kind?

========== ============================================================================================
kind       checks
========== ============================================================================================
dataset    ``contract``: a :class:`mlbasics.Dataset` of finite float32 features (n, d) and targets
           (n, k), or int64 class indices (n,) into two or more ``classes``, of a task its spec
           declares (``tasks``); ``reproducible``: the same params give the same data, to the bit
model      ``shapes``: (n, d) float32 in, finite (n, k) float32 out on the same device, for several
           n, d and k (``out_features``: target columns, or 10 outputs for 10 classes);
           ``differentiable``: finite gradients reach the parameters; ``reproducible``:
           the same ``torch.manual_seed`` gives the same initial parameters
activation ``elementwise``: shape, dtype and device kept, each output depends on its own input
           alone; ``gradcheck``: autograd agrees with finite differences in float64, away from kinks
loss       ``contract``: a finite, non-negative 0-dim tensor with a finite gradient, 0 on a perfect
           prediction; ``least-squares`` (if tagged so): the least-squares solution minimises it
optimizer  ``minimises``: lowers the MSE of a linear model (a convex quadratic) in 20 steps; a
           closed-form solver solves that least-squares problem exactly; ``stacked`` (if it declares
           a stacked form): the stacked update follows the optimizer for each of 3 members, 20 steps
metric     ``contract``: a :class:`mlbasics.Metric` giving a finite float per (n, k) pair, its ``best``
           on a perfect prediction and nothing better elsewhere; ``row-order``: the same value for
           the rows in any order; ``batched``: (members, n, k) gives one value per member, each
           that member's alone; ``direction``: a prediction closer to the target never scores worse
           in the metric's ``mode``, and somewhere better
class      a loss or metric that serves classification (``tasks``) is probed with logits (n, C) for
labels     2, 3 and 5 classes and one logit (n, 1) for two (a loss tagged ``one-logit``: one logit
           only), and class indices (n,): a loss's ``contract`` is the one above, but it must fall
           as the right class's logit rises instead of being 0 on a perfect prediction; a metric's
           checks are the four above, a perfect prediction being logits sure of the right class
           and "closer" logits moved towards them. Serving regression too, it gets both sets, the
           classification checks named ``classification-contract``, ...
callback   ``contract``: a :class:`mlbasics.Callback` with a valid ``sync_every`` and a ``state_dict``
           of JSON values and tensors; ``trains``: a short real training with it (validation rows,
           metrics) runs through; ``resumes``: saved, interrupted half way and resumed, that
           training ends as the one never interrupted, to the bit (CPU)
every kind ``params-accepted``: the defaults build, and so does every value the declared params
           allow, probed at the edges of their ranges (a clear :class:`mlbasics.MlbasicsError` is
           an acceptable refusal, any other exception is not); ``params-rejected`` (if it has
           params): values the declaration forbids are rejected by the registry, naming the param
========== ============================================================================================

Use them from pytest, one test per check, with readable ids such as ``activation:softsign-gradcheck``::

    from mlbasics import Registry
    from mlbasics.testing.conformance import parametrize_with_checks

    import my_plugin

    REGISTRY = Registry.isolated(my_plugin)

    @parametrize_with_checks(REGISTRY.specs(plugin="my_plugin"), registry=REGISTRY)
    def test_conformance(check, device):
        check(device)

or as a plain function: :func:`check_components` returns every failure, :func:`assert_conforms`
raises one :class:`ConformanceError` listing them all. Components are given as specs (or as
``"kind:name"`` strings) with the registry that builds them; a component with a required param
needs a value for it, e.g. ``params={"dataset:csv": {"path": "table.csv"}}``.

Inputs come from torch generators with fixed seeds, so a failing check fails the same way on every
run. A component whose declared requirements are not installed is skipped (a pytest skip, or a
:class:`ConformanceSkipWarning` from the plain functions), never passed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import torch

from mlbasics.core.callbacks import RUN_TAG
from mlbasics.core.registry import Registry, default_registry
from mlbasics.core.specs import ComponentSpec
from mlbasics.errors import MlbasicsError
from mlbasics.testing._class_contracts import CLASS_CHECKS
from mlbasics.testing._contracts import (
    KIND_CHECKS,
    CheckFunction,
    Problem,
    Subject,
    loss_least_squares,
    optimizer_stacked,
)
from mlbasics.testing._param_checks import params_accepted, params_rejected

if TYPE_CHECKING:
    import pytest

#: What a component may be given as: its spec, or ``"kind:name"``.
ComponentLike = ComponentSpec | str


class ConformanceSkipWarning(UserWarning):
    """A check could not run here (the component's requirements are not installed)."""


class CheckSkipped(Exception):
    """Raised by a :class:`Check` that cannot run here; the message says why."""


def _component(spec: ComponentSpec) -> str:
    plugin = spec.plugin.name if spec.plugin else "?"
    return f"{spec.kind} {spec.name!r} from plugin {plugin}"


@attrs.frozen
class Failure:
    """One failed check: which component (and plugin), which check, and what went wrong.
    ``error`` is the exception the component raised, if it raised one."""

    spec: ComponentSpec = attrs.field(repr=False)
    check_name: str
    problem: str
    error: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def check(self) -> str:
        """The check's id, e.g. ``activation:softsign-gradcheck``."""
        return f"{self.spec.kind}:{self.spec.name}-{self.check_name}"

    @property
    def plugin(self) -> str:
        return self.spec.plugin.name if self.spec.plugin else "?"

    def __str__(self) -> str:
        return f"{_component(self.spec)} fails check {self.check_name!r}: {self.problem}"


class ConformanceError(AssertionError):
    """One or more components broke their contracts; ``failures`` lists each, and so does the message."""

    def __init__(self, failures: Sequence[Failure]) -> None:
        self.failures = list(failures)
        if len(self.failures) == 1:
            message = str(self.failures[0])
        else:
            lines = "".join(f"\n  - {failure}" for failure in self.failures)
            message = f"{len(self.failures)} conformance checks failed:{lines}"
        super().__init__(message)


@attrs.frozen
class Check:
    """One conformance check of one component. Call it (optionally with a device) to run it: it
    raises :class:`ConformanceError` if the component fails, :class:`CheckSkipped` if the check
    cannot run here, and returns ``None`` if the component passes."""

    spec: ComponentSpec
    name: str
    registry: Registry = attrs.field(repr=False)
    function: CheckFunction = attrs.field(repr=False)
    params: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    on_skip: Callable[[str], Any] | None = attrs.field(default=None, repr=False)

    @property
    def id(self) -> str:
        """``kind:name-check``, e.g. ``activation:softsign-elementwise``."""
        return f"{self.spec.kind}:{self.spec.name}-{self.name}"

    def run(self, device: str | torch.device = "cpu") -> Failure | None:
        """Run the check; return its failure, or ``None`` if the component passed."""
        status = self.registry.status(self.spec)
        if status.startswith("unavailable"):
            message = f"{_component(self.spec)} is {status}"
            if self.on_skip is not None:
                self.on_skip(message)
            raise CheckSkipped(message)
        if status != "available":
            problem = f"the registry does not build it under its name (status: {status})"
            return Failure(self.spec, self.name, problem)
        subject = Subject(self.spec, self.registry, self.params, torch.device(device))
        try:
            self.function(subject)
        except Problem as exc:
            return Failure(self.spec, self.name, str(exc))
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            raised = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
            return Failure(self.spec, self.name, f"raised {raised}", error=exc)
        return None

    def __call__(self, device: str | torch.device = "cpu") -> None:
        failure = self.run(device)
        if failure is not None:
            raise ConformanceError([failure]) from failure.error

    def __str__(self) -> str:
        return self.id


def checks_of(spec: ComponentSpec) -> dict[str, CheckFunction]:
    """The checks that apply to ``spec``: those of its kind (for a loss or metric, of each task it
    serves: a classification check is prefixed ``classification-`` when it serves regression too),
    its tags', and its params'."""
    checks = (
        dict(KIND_CHECKS[spec.kind]) if spec.serves("regression") or spec.kind not in CLASS_CHECKS else {}
    )
    if spec.kind in CLASS_CHECKS and spec.serves("classification"):
        prefix = "classification-" if checks else ""
        checks |= {prefix + name: check for name, check in CLASS_CHECKS[spec.kind].items()}
    if spec.kind == "loss" and "least-squares" in spec.tags:
        checks["least-squares"] = loss_least_squares
    if spec.kind == "optimizer" and spec.stacked is not None:
        checks["stacked"] = optimizer_stacked
    if spec.kind == "callback" and RUN_TAG in spec.tags:
        # Part of every run (built by mlbasics.training.runner.run from flags), never named in an
        # experiment: every training the test suite runs trains with it.
        del checks["trains"], checks["resumes"]
    checks["params-accepted"] = params_accepted
    if spec.params:
        checks["params-rejected"] = params_rejected
    return checks


def _resolve_components(components: Iterable[ComponentLike], registry: Registry) -> list[ComponentSpec]:
    specs = []
    for component in components:
        if isinstance(component, str):
            kind, colon, name = component.partition(":")
            if not colon:
                raise ValueError(
                    f"component {component!r} must look like 'kind:name', e.g. 'activation:relu'"
                )
            try:
                candidates = registry.specs(kind, name)
            except MlbasicsError as exc:
                raise ValueError(f"component {component!r}: {exc}") from None
            wanted = next((s for s in candidates if s.name == name), None)
        elif isinstance(component, ComponentSpec):
            # The registry's own copy carries provenance (which plugin), used in every message.
            wanted = next((s for s in registry.specs(component.kind, component.name) if s == component), None)
        else:
            raise TypeError(f"components must be ComponentSpecs or 'kind:name' strings, got {component!r}")
        if wanted is None:
            raise ValueError(
                f"{component if isinstance(component, str) else f'{component.kind}:{component.name}'} is not "
                "in the registry; pass the registry the specs came from (registry=...)"
            )
        specs.append(wanted)
    if not specs:
        raise ValueError(
            "no components to check: was the plugin registered, and its name spelt right? (an installed "
            "plugin is named after its entry point, as `mlbasics plugins` shows it)"
        )
    return specs


def checks_for(
    components: Iterable[ComponentLike],
    *,
    registry: Registry | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Check]:
    """Every check that applies to ``components``, in order: component by component, and for each,
    the checks of its kind, then its params'.

    Args:
        components: specs (``registry.specs(plugin="my_plugin")``) or ``"kind:name"`` strings.
        registry: builds the components (default: :func:`mlbasics.default_registry`, the installed
            plugins).
        params: params to build a component with, by ``"kind:name"``, on top of its defaults; needed
            for required params, e.g. ``{"dataset:csv": {"path": "table.csv"}}``.
    """
    registry = registry if registry is not None else default_registry()
    specs = _resolve_components(components, registry)
    params = dict(params or {})
    known = {f"{spec.kind}:{spec.name}" for spec in specs}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"params given for {', '.join(unknown)}, which is not among the components checked")
    return [
        Check(spec, name, registry, function, dict(params.get(f"{spec.kind}:{spec.name}", {})))
        for spec in specs
        for name, function in checks_of(spec).items()
    ]


def parametrize_with_checks(
    components: Iterable[ComponentLike],
    *,
    registry: Registry | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize`` over :func:`checks_for`: the test gets each :class:`Check` as
    its ``check`` argument, with the check's id as the test id. A check that cannot run here is
    reported as a pytest skip with the reason::

        @parametrize_with_checks(REGISTRY.specs(plugin="my_plugin"), registry=REGISTRY)
        def test_conformance(check, device):
            check(device)
    """
    import pytest

    checks = checks_for(components, registry=registry, params=params)
    return pytest.mark.parametrize(
        "check", [pytest.param(attrs.evolve(check, on_skip=pytest.skip), id=check.id) for check in checks]
    )


def check_components(
    components: Iterable[ComponentLike],
    *,
    registry: Registry | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device = "cpu",
) -> list[Failure]:
    """Run every check on ``components`` (see :func:`checks_for`) and return every failure; an empty
    list means all of them passed. Checks that cannot run here are skipped with a
    :class:`ConformanceSkipWarning`."""
    failures = []
    for check in checks_for(components, registry=registry, params=params):
        try:
            failure = check.run(device)
        except CheckSkipped as skipped:
            warnings.warn(f"{check.id} skipped: {skipped}", ConformanceSkipWarning, stacklevel=2)
            continue
        if failure is not None:
            failures.append(failure)
    return failures


def assert_conforms(
    components: Iterable[ComponentLike],
    *,
    registry: Registry | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    device: str | torch.device = "cpu",
) -> None:
    """Like :func:`check_components`, but raise one :class:`ConformanceError` listing every failure."""
    failures = check_components(components, registry=registry, params=params, device=device)
    if failures:
        raise ConformanceError(failures)


__all__ = [
    "Check",
    "CheckSkipped",
    "ConformanceError",
    "ConformanceSkipWarning",
    "Failure",
    "assert_conforms",
    "check_components",
    "checks_for",
    "parametrize_with_checks",
]
