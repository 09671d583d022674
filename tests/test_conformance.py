"""The conformance checks: every built-in component passes all of them, through both entry points,
and the API says clearly what it was given wrong."""

from __future__ import annotations

import atexit
import shutil
import tempfile
import types
from pathlib import Path

import pytest
import torch

from mlbasics import ComponentSpec, Param, Registry, hookimpl
from mlbasics.testing.conformance import (
    Check,
    CheckSkipped,
    ConformanceError,
    ConformanceSkipWarning,
    assert_conforms,
    check_components,
    checks_for,
    parametrize_with_checks,
)

REGISTRY = Registry.isolated()
# A copy outside the source tree: the params-accepted check builds the csv dataset with
# memory_map = true, which writes a cache beside the file.
_COPIES = tempfile.TemporaryDirectory(prefix="mlbasics-conformance-")
atexit.register(_COPIES.cleanup)
STUDY = Path(shutil.copy(Path(__file__).parent / "data" / "study.csv", _COPIES.name))
PARAMS = {"dataset:csv": {"path": str(STUDY)}}


@parametrize_with_checks(REGISTRY.specs(), registry=REGISTRY, params=PARAMS)
def test_the_builtin_components_conform(check: Check, device: torch.device) -> None:
    check(device)


def test_every_builtin_gets_the_checks_of_its_kind() -> None:
    ids = {check.id for check in checks_for(REGISTRY.specs(), registry=REGISTRY, params=PARAMS)}
    expected = {
        "dataset:csv-contract",
        "dataset:csv-reproducible",
        "dataset:csv-params-accepted",
        "dataset:csv-params-rejected",
        "dataset:attendance-params-accepted",
        "model:mlp-shapes",
        "model:mlp-differentiable",
        "model:mlp-reproducible",
        "model:mlp-params-rejected",
        "activation:relu-elementwise",
        "activation:relu-gradcheck",
        "loss:mse-contract",
        "loss:mse-least-squares",
        "loss:sse-half-least-squares",
        "optimizer:sgd-minimises",
        "optimizer:sgd-stacked",
        "optimizer:lstsq-minimises",
        "optimizer:sgd-params-rejected",
    }
    assert expected <= ids
    assert "dataset:attendance-params-rejected" not in ids  # no params, nothing to reject
    assert "optimizer:lstsq-stacked" not in ids  # no stacked form, nothing to follow
    assert len(ids) == 60  # 17 components; a change here is a change in what is checked


def test_the_plain_function_finds_nothing_wrong_with_the_builtins() -> None:
    assert check_components(REGISTRY.specs(), registry=REGISTRY, params=PARAMS) == []
    assert_conforms(["loss:mse", "optimizer:lstsq"], registry=REGISTRY)


def test_components_can_be_named_or_filtered_by_plugin() -> None:
    by_plugin = checks_for(REGISTRY.specs("loss", plugin="builtins"), registry=REGISTRY)
    by_name = checks_for(["loss:mse", "loss:sse-half"], registry=REGISTRY)
    assert [c.id for c in by_plugin] == [c.id for c in by_name]
    assert all(c.spec.plugin is not None and c.spec.plugin.name == "builtins" for c in by_name)


def test_a_required_param_without_a_value_is_a_failure_that_says_how_to_give_one() -> None:
    failures = check_components(["dataset:csv"], registry=REGISTRY)
    assert {f.check_name for f in failures} == {
        "contract",
        "reproducible",
        "params-accepted",
        "params-rejected",
    }
    assert str(failures[0]) == (
        "dataset 'csv' from plugin builtins fails check 'contract': cannot be built from its defaults: "
        "dataset 'csv': param 'path' is required (give params with params={'dataset:csv': {...}})"
    )


@pytest.mark.parametrize(
    ("components", "kwargs", "message"),
    [
        ([], {}, "no components to check"),
        (["activation:nope"], {}, r"activation:nope is not in the registry"),
        (["relu"], {}, r"must look like 'kind:name'"),
        (["modle:mlp"], {}, r"component 'modle:mlp': unknown component kind 'modle'; did you mean 'model'\?"),
        (["loss:mse"], {"params": {"loss:mae": {}}}, r"params given for loss:mae"),
    ],
)
def test_mistakes_in_what_is_checked_are_explained(
    components: list[str], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        checks_for(components, registry=REGISTRY, **kwargs)  # type: ignore[arg-type]


def test_a_spec_from_another_registry_is_refused() -> None:
    softsign = ComponentSpec(
        kind="activation", name="softsign", factory=torch.nn.Softsign, summary="softsign"
    )
    with pytest.raises(ValueError, match=r"activation:softsign is not in the registry; pass the registry"):
        checks_for([softsign], registry=REGISTRY)


def _plugin(*specs: ComponentSpec) -> types.SimpleNamespace:
    plugin = types.SimpleNamespace(
        mlbasics_activations=hookimpl(lambda: [s for s in specs if s.kind == "activation"])
    )
    plugin.__name__ = "extras"
    return plugin


def test_a_component_whose_requirements_are_missing_is_skipped_not_passed() -> None:
    spec = ComponentSpec(
        kind="activation",
        name="needs-extra",
        factory=torch.nn.Softsign,
        summary="needs a module that is not installed",
        requires=["surely_missing_module_xyz"],
    )
    registry = Registry.isolated(_plugin(spec))
    check = checks_for(["activation:needs-extra"], registry=registry)[0]
    with pytest.raises(
        CheckSkipped,
        match=r"activation 'needs-extra' from plugin extras is unavailable: needs surely_missing_module_xyz",
    ):
        check()
    with pytest.warns(ConformanceSkipWarning) as warned:
        assert check_components(["activation:needs-extra"], registry=registry) == []
    assert [str(w.message).split(" skipped: ")[0] for w in warned] == [
        "activation:needs-extra-elementwise",
        "activation:needs-extra-gradcheck",
        "activation:needs-extra-params-accepted",
    ]


class _Sum(torch.nn.Module):
    """Keeps the shape, but every output is the sum of all inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum().expand_as(x)


class _SineWithWrongGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.sin()

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * 2 * x.cos()  # twice the true derivative


class _WrongGradient(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SineWithWrongGradient.apply(x)  # type: ignore[no-any-return]


def test_conformance_error_lists_every_failure() -> None:
    registry = Registry.isolated(
        _plugin(
            ComponentSpec(kind="activation", name="sum", factory=_Sum, summary="sums"),
            ComponentSpec(
                kind="activation", name="sine", factory=_WrongGradient, summary="sin, wrong gradient"
            ),
        )
    )
    with pytest.raises(ConformanceError) as caught:
        assert_conforms(["activation:sum", "activation:sine"], registry=registry)
    assert [f.check for f in caught.value.failures] == [
        "activation:sum-elementwise",
        "activation:sine-gradcheck",
    ]
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 conformance checks failed:"
    assert lines[1].startswith(
        "  - activation 'sum' from plugin extras fails check 'elementwise': is not elementwise"
    )
    assert lines[2].startswith(
        "  - activation 'sine' from plugin extras fails check 'gradcheck': autograd disagrees with finite differences"
    )


def test_a_param_default_that_the_factory_does_not_take_is_caught() -> None:
    spec = ComponentSpec(
        kind="activation",
        name="scaled",
        factory=torch.nn.Softsign,  # takes no `scale`
        summary="declares a param the factory does not take",
        params=(Param(name="scale", type=float, default=1.0),),
    )
    failures = check_components(["activation:scaled"], registry=Registry.isolated(_plugin(spec)))
    assert {f.check_name for f in failures} == {"elementwise", "gradcheck", "params-accepted"}
    assert all("raised TypeError" in f.problem and "scale" in f.problem for f in failures)
