"""Deliberately broken components: each one is caught by the check it breaks (and by no other),
with a message naming the component, its plugin and the check."""

from __future__ import annotations

import itertools
import sys
import types
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import nn

from mlbasics import (
    Callback,
    ClosedFormSolver,
    ComponentSpec,
    Dataset,
    Metric,
    Param,
    Registry,
    Setup,
    StopTraining,
    hookimpl,
)
from mlbasics.testing.conformance import check_components

# -- the broken plugin -----------------------------------------------------------------------------


def negative_loss() -> object:
    return lambda prediction, target: (prediction - target).mean()  # can go below 0


def halving() -> nn.Module:
    return _Lambda(lambda x: x[..., ::2])  # drops every other element


def running_total() -> nn.Module:
    return _Lambda(lambda x: x.cumsum(-1))  # keeps the shape, but mixes the elements


class _Lambda(nn.Module):
    def __init__(self, function: object) -> None:
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)  # type: ignore[operator,no-any-return]


def flat_output(in_features: int, out_features: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, out_features), nn.Flatten(0))  # (n, 1) -> (n,)


def frozen(in_features: int, out_features: int) -> nn.Module:
    return nn.Linear(in_features, out_features).requires_grad_(False)


_builds = itertools.count()


def drifting(in_features: int, out_features: int) -> nn.Module:
    model = nn.Linear(in_features, out_features)
    with torch.no_grad():
        model.bias.fill_(next(_builds))  # differs from build to build, whatever the seed
    return model


def with_nan() -> Dataset:
    features = torch.tensor([[1.0], [float("nan")], [3.0]])
    return Dataset(features=features, targets=torch.ones(3, 1))


def unseeded() -> Dataset:
    return Dataset(features=torch.randn(8, 2), targets=torch.randn(8, 1))  # the global RNG


def sized(n: int) -> Dataset:
    return Dataset(
        features=torch.randn(n, 1, generator=torch.Generator().manual_seed(0)), targets=torch.ones(n, 1)
    )


class Idle(torch.optim.Optimizer):
    def __init__(self, parameters: list[torch.Tensor]) -> None:
        super().__init__(parameters, {})

    def step(self, closure: object = None) -> None:  # type: ignore[override]
        return None


class Sloppy(ClosedFormSolver):
    def check(self, model: nn.Module, loss: ComponentSpec) -> str | None:
        return None

    def solve(self, model: nn.Module, features: torch.Tensor, targets: torch.Tensor) -> None:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.zero_()  # not the least-squares solution


def momentum_sgd(parameters: list[torch.Tensor], lr: float, momentum: float) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum)


def plain_sgd(parameters: list[torch.Tensor], lr: float) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=lr)


def forgets_momentum(params: Any, grads: Any, state: Any, hyper: Any) -> Any:
    for name, param in params.items():
        param.sub_(grads[name] * hyper["lr"])  # plain gradient descent: the momentum is lost
    return params, state


def shared_lr_only(params: Any, grads: Any, state: Any, hyper: Any) -> Any:
    for name, param in params.items():
        param.add_(grads[name], alpha=-hyper["lr"])  # fine for one lr, fails for one per member
    return params, state


def off_by_one() -> Metric:
    return Metric(lambda p, t: ((p - t) ** 2).mean(dim=(-2, -1)) + 1)  # 1 on a perfect prediction


def first_rows() -> Metric:
    # Only the first half of the rows counts: which rows those are depends on their order.
    return Metric(lambda p, t: (p - t)[..., : max(1, p.shape[-2] // 2), :].abs().mean(dim=(-2, -1)))


def flattened() -> Metric:
    return Metric(lambda p, t: ((p - t) ** 2).mean())  # one value for all members together


def wrong_mode() -> Metric:
    return Metric(lambda p, t: (p - t).abs().mean(dim=(-2, -1)), mode="max")  # an error, declared a score


def constant() -> Metric:
    return Metric(lambda p, t: torch.zeros(p.shape[:-2], device=p.device))


def unguarded_r2() -> Metric:
    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        total = ((t - t.mean(dim=-2, keepdim=True)) ** 2).sum(dim=-2)  # 0 for a part of one row: -inf
        return (1 - ((t - p) ** 2).sum(dim=-2) / total).mean(dim=-1)

    return Metric(score, mode="max", best=1.0)


# -- broken for class labels: logits (..., n, C) and class indices (..., n) ---------------------------


def log_likelihood() -> object:
    # log p(true class): the loss's sign forgotten, so it is <= 0
    return lambda logits, target: logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).mean()


def rewards_mistakes() -> object:
    # -log(1 - p(true class)): non-negative, finite, but lowest for a confident wrong prediction
    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = logits.softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return -torch.log1p(-p.clamp(max=1 - 1e-6)).mean()

    return loss


def right_count() -> Metric:
    # how many rows are right, not which share: n on a perfect prediction, not its best 1
    return Metric(lambda p, t: (p.argmax(-1) == t).to(p.dtype).sum(-1), mode="max", best=1.0)


def first_half_accuracy() -> Metric:
    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        half = max(1, t.shape[-1] // 2)  # which rows those are depends on their order
        guess = p.argmax(-1) if p.shape[-1] > 1 else (p[..., 0] > 0).long()
        return (guess == t)[..., :half].to(p.dtype).mean(-1)

    return Metric(score, mode="max", best=1.0)


def pooled_accuracy() -> Metric:
    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        guess = p.argmax(-1) if p.shape[-1] > 1 else (p[..., 0] > 0).long()
        return (guess == t).to(p.dtype).mean()  # one value for all members together

    return Metric(score, mode="max", best=1.0)


def error_rate_as_score() -> Metric:
    def score(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        guess = p.argmax(-1) if p.shape[-1] > 1 else (p[..., 0] > 0).long()
        return (guess != t).to(p.dtype).mean(-1)  # an error rate, declared a score with best 0

    return Metric(score, mode="max", best=0.0)


def two_outputs(in_features: int, out_features: int) -> nn.Module:
    return nn.Linear(in_features, min(out_features, 2))  # two classes at most, whatever it is asked


def undeclared_labels() -> Dataset:
    # class labels from a spec that declares the default task, regression
    return Dataset(features=torch.zeros(4, 1), targets=torch.tensor([0, 1, 0, 1]), classes=("a", "b"))


class Raising(Callback):
    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch >= 8:
            raise ValueError("boom")


class UnsavableState(Callback):
    def state_dict(self) -> dict[str, Any]:
        return {"started": object()}


class Forgetful(Callback):
    """Stops after its 7th sync point, but does not say that it counts them (no state_dict)."""

    def __init__(self) -> None:
        self.syncs = 0

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        self.syncs += 1
        if self.syncs == 7:
            raise StopTraining("after 7 sync points")


class Halving(Callback):
    """Halves the weights at the end of every run, interrupted or not."""

    def on_train_end(self, setup: Setup, result: object) -> None:
        with torch.no_grad():
            for parameter in setup.model.parameters():
                parameter.mul_(0.5)


_SGD_PARAMS = (
    Param(name="lr", type=float, default=0.01, gt=0),
    Param(name="momentum", type=float, default=0.9, ge=0, lt=1),
)


def _spec(kind: str, name: str, factory: object, **fields: object) -> ComponentSpec:
    return ComponentSpec(kind=kind, name=name, factory=factory, summary=f"broken: {name}", **fields)  # type: ignore[arg-type]


SPECS = [
    _spec("loss", "negative", negative_loss),
    _spec("loss", "absolute", lambda: nn.L1Loss(), tags={"least-squares"}),  # tagged, but L1
    _spec("activation", "halving", halving),
    _spec("activation", "running-total", running_total),
    _spec("model", "flat-output", flat_output),
    _spec("model", "frozen", frozen),
    _spec("model", "drifting", drifting),
    _spec("dataset", "with-nan", with_nan),
    _spec("dataset", "unseeded", unseeded),
    # Declares n as any int; the factory cannot make a table of -1 rows. The registry should
    # have rejected it: the spec needs ge=1.
    _spec("dataset", "sized", sized, params=(Param(name="n", type=int, default=4),)),
    _spec("optimizer", "idle", Idle),
    _spec("optimizer", "sloppy", lambda parameters: Sloppy()),
    _spec("optimizer", "forgetful", momentum_sgd, params=_SGD_PARAMS, stacked=forgets_momentum),
    _spec("optimizer", "one-lr", plain_sgd, params=_SGD_PARAMS[:1], stacked=shared_lr_only),
    _spec("metric", "off-by-one", off_by_one),
    _spec("metric", "first-rows", first_rows),
    _spec("metric", "flattened", flattened),
    _spec("metric", "wrong-mode", wrong_mode),
    _spec("metric", "constant", constant),
    _spec("metric", "unguarded-r2", unguarded_r2),
    _spec("loss", "log-likelihood", log_likelihood, tasks={"classification"}),
    _spec("loss", "rewards-mistakes", rewards_mistakes, tasks={"classification"}),
    _spec("metric", "right-count", right_count, tasks={"classification"}),
    _spec("metric", "first-half-accuracy", first_half_accuracy, tasks={"classification"}),
    _spec("metric", "pooled-accuracy", pooled_accuracy, tasks={"classification"}),
    _spec("metric", "error-rate-as-score", error_rate_as_score, tasks={"classification"}),
    _spec("model", "two-outputs", two_outputs),
    _spec("dataset", "undeclared-labels", undeclared_labels),
    _spec("callback", "raising", Raising),
    _spec("callback", "unsavable", UnsavableState),
    _spec("callback", "forgetful", Forgetful),
    _spec("callback", "halving", Halving),
]

#: The broken components that break more than one check, and which.
BREAK_SEVERAL = {
    "activation:halving": ["elementwise", "gradcheck"],  # changes the shape
    "metric:wrong-mode": ["contract", "direction"],  # its errors beat its best, 0, as a "max"
    "metric:error-rate-as-score": ["contract", "direction"],  # likewise, for class labels
    "callback:raising": ["trains", "resumes"],  # both train with it
    "callback:unsavable": ["contract", "trains", "resumes"],  # before and after training, and saving
}

broken = types.ModuleType("broken")
for _kind, _hook in [
    ("dataset", "mlbasics_datasets"),
    ("model", "mlbasics_models"),
    ("activation", "mlbasics_activations"),
    ("loss", "mlbasics_losses"),
    ("optimizer", "mlbasics_optimizers"),
    ("metric", "mlbasics_metrics"),
    ("callback", "mlbasics_callbacks"),
]:
    setattr(broken, _hook, hookimpl(lambda kind=_kind: [s for s in SPECS if s.kind == kind]))

REGISTRY = Registry.isolated(broken)


@pytest.mark.parametrize(
    ("component", "check", "problem"),
    [
        ("loss:negative", "contract", "a loss must be finite and >= 0"),
        (
            "loss:absolute",
            "least-squares",
            "is tagged 'least-squares', but its gradient at the least-squares",
        ),
        ("activation:halving", "elementwise", "maps shape (7,) to (4,): an activation must keep the shape"),
        ("activation:halving", "gradcheck", "cannot be gradchecked: maps shape (33,) to (17,)"),
        ("activation:running-total", "elementwise", "is not elementwise: input"),
        ("model:flat-output", "shapes", "maps input shaped (1, 1) to (1,), expected (1, 1)"),
        ("model:frozen", "differentiable", "has no trainable parameters"),
        ("model:drifting", "reproducible", "two builds under torch.manual_seed(0) differ in bias"),
        ("dataset:with-nan", "contract", "features hold 1 non-finite value(s)"),
        ("dataset:unseeded", "reproducible", "two builds from the same params have different features"),
        (
            "dataset:sized",
            "params-accepted",
            "n=-1 is allowed by its declaration (no constraint), but the factory raised RuntimeError",
        ),
        ("optimizer:idle", "minimises", "did not lower the loss of a convex quadratic: 20 steps from loss"),
        (
            "optimizer:sloppy",
            "minimises",
            "solved least squares as [0.0, 0.0, 0.0, 0.0], but the exact solution is",
        ),
        (
            "optimizer:forgetful",
            "stacked",
            "its stacked form departs from the optimizer at step 2 (the same params): parameters differ by up to",
        ),
        (
            "optimizer:one-lr",
            "stacked",
            "its stacked form raised at step 1 (each float param halved for member 1): ",
        ),
        (
            "metric:off-by-one",
            "contract",
            "is 1 when the prediction equals the target (shaped (1, 1)), but declares best = 0",
        ),
        ("metric:first-rows", "row-order", "depends on the order of the rows: "),
        (
            "metric:flattened",
            "batched",
            "returns shape () for a prediction and target shaped (3, 1, 1), expected (3,): a metric reduces",
        ),
        ("metric:wrong-mode", "contract", "better than its best 0 (mode 'max')"),
        ("metric:wrong-mode", "direction", "which mode 'max' calls worse: is the mode right?"),
        ("metric:constant", "direction", "scores every prediction the same"),
        ("metric:unguarded-r2", "contract", "a metric must be finite on any part, even one of a single row"),
        (
            "loss:log-likelihood",
            "contract",
            "for logits shaped (1, 2) and class indices shaped (1,); a loss must be finite and >= 0",
        ),
        (
            "loss:rewards-mistakes",
            "contract",
            "a loss must fall as the right class's logit rises",
        ),
        (
            "metric:right-count",
            "contract",
            "when the logits put 30 on every row's class (2 rows, 3 classes), but declares best = 1",
        ),
        ("metric:first-half-accuracy", "row-order", "depends on the order of the rows: "),
        (
            "metric:pooled-accuracy",
            "batched",
            "returns shape () for a prediction and target shaped (3, 1, 2), expected (3,)",
        ),
        ("metric:error-rate-as-score", "contract", "better than its best 0 (mode 'max')"),
        (
            "metric:error-rate-as-score",
            "direction",
            "on logits closer to the right classes than logits scoring",
        ),
        (
            "model:two-outputs",
            "shapes",
            "maps input shaped (1, 4) to (1, 2), expected (1, 10) for out_features=10",
        ),
        (
            "dataset:undeclared-labels",
            "contract",
            "returns classification data (classes ('a', 'b')), but its spec declares tasks ['regression']",
        ),
        (
            "callback:raising",
            "trains",
            "failed in a short training on cpu: callback 'raising' from plugin broken failed after "
            "epoch 8: ValueError: boom",
        ),
        (
            "callback:raising",
            "resumes",
            "callback 'raising' from plugin broken failed after epoch 8: ValueError: boom",
        ),
        (
            "callback:unsavable",
            "contract",
            "before training, state_dict().started is of type object; a checkpoint holds only tensors",
        ),
        (
            "callback:unsavable",
            "trains",
            "after a short training on cpu, state_dict().started is of type object",
        ),
        (
            "callback:forgetful",
            "resumes",
            "interrupted after epoch 20 and resumed, a run ends after epoch 40 (not stopped), but never "
            "interrupted after epoch 28 (after 7 sync points); a callback keeps all it carries",
        ),
        (
            "callback:halving",
            "resumes",
            "interrupted after epoch 20 and resumed, a run's loss departs at epoch 21 from the run never "
            "interrupted",
        ),
    ],
)
def test_a_broken_component_is_caught_by_name(component: str, check: str, problem: str) -> None:
    failures = check_components([component], registry=REGISTRY)

    # Caught by exactly the checks it breaks (a shape-changing activation breaks two).
    expected = BREAK_SEVERAL.get(component, [check])
    assert [f.check_name for f in failures] == expected
    failure = failures[expected.index(check)]
    kind, name = component.split(":")
    assert str(failure).startswith(f"{kind} '{name}' from plugin broken fails check '{check}': ")
    assert problem in str(failure)
    assert failure.plugin == "broken"
    assert failure.check == f"{component}-{check}"


def test_every_broken_component_is_covered() -> None:
    # The parametrisation above names each broken component once.
    assert len(SPECS) == 32
    assert sys.modules.get("broken") is None  # the plugin is registered directly, never installed


class _AnyActivation(Registry):
    """A registry that lets a model name any activation, registered or not."""

    def check(self, kind: str, name: str, params: Mapping[str, Any] | None = None) -> list[str]:
        return [line for line in super().check(kind, name, params) if "unknown activation" not in line]


def test_params_rejected_probes_unknown_component_names() -> None:
    # Coercion accepts any string, so only the registry can reject an unregistered name.
    failures = check_components(["model:mlp"], registry=_AnyActivation.isolated())

    assert [f.check_name for f in failures] == ["params-rejected"]
    assert "activation='no-such-activation' (not a registered activation) was accepted" in str(failures[0])


def scaled_mse(self: float) -> object:
    """A healthy loss whose one param happens to be called ``self``."""
    return lambda prediction, target: self * ((prediction - target) ** 2).mean()


def test_a_param_named_self_is_checked_like_any_other() -> None:
    plugin = types.ModuleType("selfish")
    spec = _spec(
        "loss", "scaled-mse", scaled_mse, params=(Param(name="self", type=float, default=1.0, gt=0),)
    )
    plugin.mlbasics_losses = hookimpl(lambda: [spec])  # type: ignore[attr-defined]

    assert check_components(["loss:scaled-mse"], registry=Registry.isolated(plugin)) == []
