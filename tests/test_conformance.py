"""The conformance checks: every built-in component passes all of them, through both entry points,
and the API says clearly what it was given wrong."""

from __future__ import annotations

import atexit
import random
import shutil
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mlbasics import Callback, ComponentSpec, Param, Registry, Setup, StopTraining, hookimpl
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
# Callbacks that write files write them there too, not into the folder the tests run in.
PARAMS = {
    "dataset:csv": {"path": str(STUDY)},
    "callback:checkpoint": {"folder": str(Path(_COPIES.name) / "run")},
    "callback:csv-logger": {"path": str(Path(_COPIES.name) / "log.csv")},
    "callback:jsonl-logger": {"path": str(Path(_COPIES.name) / "log.jsonl")},
}


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
        "metric:r2-contract",
        "metric:r2-row-order",
        "metric:r2-batched",
        "metric:r2-direction",
        "metric:mae-params-accepted",
        "callback:early-stopping-contract",
        "callback:early-stopping-trains",
        "callback:early-stopping-resumes",
        "callback:lr-step-params-rejected",
        "callback:checkpoint-contract",
        "dataset:xor-contract",
        "loss:cross-entropy-contract",
        "loss:binary-cross-entropy-contract",
        "metric:accuracy-contract",
        "metric:f1-direction",
        "metric:log-loss-batched",
        "metric:top-k-accuracy-params-rejected",
    }
    assert expected <= ids
    assert "dataset:attendance-params-rejected" not in ids  # no params, nothing to reject
    assert "optimizer:lstsq-stacked" not in ids  # no stacked form, nothing to follow
    assert "callback:checkpoint-trains" not in ids  # part of every run, never in an experiment
    assert "loss:cross-entropy-least-squares" not in ids  # not tagged so
    assert not any(i.startswith("metric:accuracy-classification-") for i in ids)  # serves one task
    assert len(ids) == 190  # 45 components; a change here is a change in what is checked


def test_the_plain_function_finds_nothing_wrong_with_the_builtins() -> None:
    assert check_components(REGISTRY.specs(), registry=REGISTRY, params=PARAMS) == []
    assert_conforms(["loss:mse", "optimizer:lstsq"], registry=REGISTRY)


def test_components_can_be_named_or_filtered_by_plugin() -> None:
    by_plugin = checks_for(REGISTRY.specs("loss", plugin="builtins"), registry=REGISTRY)
    by_name = checks_for(
        ["loss:binary-cross-entropy", "loss:cross-entropy", "loss:mse", "loss:sse-half"], registry=REGISTRY
    )
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


# -- the built-in metrics against their textbook formulas, in NumPy and float64 -----------------------


def _r2(p: np.ndarray, t: np.ndarray) -> float:
    scores = []
    for j in range(t.shape[1]):
        residual = np.sum((t[:, j] - p[:, j]) ** 2)
        total = np.sum((t[:, j] - np.mean(t[:, j])) ** 2)
        scores.append((1.0 if residual == 0 else 0.0) if total == 0 else 1 - residual / total)
    return float(np.mean(scores))


def _explained_variance(p: np.ndarray, t: np.ndarray) -> float:
    scores = []
    for j in range(t.shape[1]):
        residual, total = np.var(t[:, j] - p[:, j]), np.var(t[:, j])
        scores.append((1.0 if residual == 0 else 0.0) if total == 0 else 1 - residual / total)
    return float(np.mean(scores))


REFERENCES = {
    "mse": lambda p, t: float(np.mean((p - t) ** 2)),
    "rmse": lambda p, t: float(np.sqrt(np.mean((p - t) ** 2))),
    "mae": lambda p, t: float(np.mean(np.abs(p - t))),
    "max-error": lambda p, t: float(np.max(np.abs(p - t))),
    "r2": _r2,
    "explained-variance": _explained_variance,
}


def test_every_builtin_regression_metric_has_a_reference() -> None:
    # The classification metrics' references (NumPy, and scikit-learn): test_properties_classification.py.
    assert sorted(REFERENCES) == sorted(
        spec.name for spec in REGISTRY.specs("metric") if spec.serves("regression")
    )


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize(("n", "k"), [(1, 1), (2, 1), (7, 1), (50, 3)])
def test_a_builtin_metric_agrees_with_its_formula(name: str, n: int, k: int) -> None:
    metric = REGISTRY.build("metric", name)
    generator = np.random.default_rng(n * 10 + k)
    target = generator.normal(size=(n, k))
    for prediction in (generator.normal(size=(n, k)), target + 0.1 * generator.normal(size=(n, k)), target):
        found = float(metric(torch.from_numpy(prediction), torch.from_numpy(target)))
        # Both in float64, summing at most 150 terms in another order: they agree to ~1e-14.
        assert found == pytest.approx(REFERENCES[name](prediction, target), rel=1e-12, abs=1e-12)


def test_constant_targets_score_as_scikit_learn_scores_them() -> None:
    target = torch.full((4, 1), 2.0, dtype=torch.float64)
    r2 = REGISTRY.build("metric", "r2")
    assert (float(r2(target.clone(), target)), float(r2(target + 1, target))) == (1.0, 0.0)


# -- callbacks: a well-behaved stateful one passes, state and all ------------------------------------


class StopAfterSyncs(Callback):
    """Stops at its ``syncs``-th sync point, counting across a save and resume."""

    def __init__(self, syncs: int) -> None:
        self.syncs, self.seen = syncs, 0

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        self.seen += 1
        if self.seen == self.syncs:
            raise StopTraining(f"after {self.syncs} sync points")

    def state_dict(self) -> dict[str, object]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.seen = int(state["seen"])  # type: ignore[call-overload]


class _Counting:
    __name__ = "counting"

    @hookimpl
    def mlbasics_callbacks(self) -> list[ComponentSpec]:
        return [
            ComponentSpec(
                kind="callback",
                name="stop-after",
                factory=StopAfterSyncs,
                summary="stops after a number of sync points",
                params=[Param(name="syncs", type=int, default=7, ge=1)],
            )
        ]


COUNTING = Registry.isolated(_Counting())


def test_a_stateful_callback_that_keeps_its_state_is_checked_in_training() -> None:
    failures = check_components(["callback:stop-after"], registry=COUNTING)
    assert [f.check_name for f in failures if f.check_name != "resumes"] == []


def test_a_stateful_callback_that_keeps_its_state_resumes_exactly() -> None:
    # It stops after epoch 28 (7 sync points, 4 epochs apart): after the interruption at epoch 20.
    assert check_components(["callback:stop-after"], registry=COUNTING) == []


class Dice(Callback):
    """Draws from Python's and torch's global generators at every sync point."""

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        random.random()
        torch.rand(1)


def test_the_callback_checks_leave_the_random_state_as_it_was() -> None:
    plugin = types.SimpleNamespace(
        mlbasics_callbacks=hookimpl(
            lambda: [ComponentSpec(kind="callback", name="dice", factory=Dice, summary="d")]
        )
    )
    plugin.__name__ = "dice"
    random.seed(5)
    torch.manual_seed(5)
    python, cpu = random.getstate(), torch.get_rng_state()
    check_components(["callback:dice"], registry=Registry.isolated(plugin))
    assert random.getstate() == python
    assert torch.equal(torch.get_rng_state(), cpu)
