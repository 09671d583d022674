"""The steppers, on the CPU: when a CUDA graph is used and why not, and the graph stepper's own logic
(warm-up, capture, replays writing losses on the device, falling back) run with a stand-in backend
that replays the captured body eagerly. The real capture is tested in test_cuda_paths.py."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import torch
from _stand_ins import hook_plugin

import mlbasics
from mlbasics import ComponentSpec, Experiment, Registry
from mlbasics.engine.setup import Setup, prepare
from mlbasics.engine.steppers import (
    CUDA_GRAPH,
    EAGER,
    MIN_GRAPH_EPOCHS,
    WARMUP_STEPS,
    EagerStepper,
    GraphStepper,
    capture_problem,
    eager_step,
    make_stepper,
    use_cuda_graph,
)
from mlbasics.notes import forget_notes

MLP = Experiment(model={"name": "mlp", "hidden": [4, 3]}, epochs=60, device="cpu", seed=2)


@pytest.fixture(autouse=True)
def _fresh_notes() -> Iterator[None]:
    forget_notes()
    yield
    forget_notes()


def _optimizer(name: str, factory: Callable[..., Any], tags: set[str] | None = None) -> ComponentSpec:
    return ComponentSpec(kind="optimizer", name=name, factory=factory, summary=name, tags=tags or set())


class PlainStep(torch.optim.Optimizer):
    """An optimizer mlbasics knows nothing about."""

    def __init__(self, params: Any) -> None:
        super().__init__(params, {"lr": 0.01})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad, alpha=-group["lr"])


class SGDSubclass(torch.optim.SGD):
    pass


OPTIMIZERS = hook_plugin(
    "test-optimizers",
    mlbasics_optimizers=lambda: [
        _optimizer("lbfgs", lambda params: torch.optim.LBFGS(params), {"closure"}),
        _optimizer("adam", lambda params: torch.optim.Adam(params, lr=0.01)),
        _optimizer("adam-capturable", lambda params: torch.optim.Adam(params, lr=0.01, capturable=True)),
        _optimizer("plain", PlainStep),
        _optimizer("plain-tagged", PlainStep, {"capturable"}),
        _optimizer("sgd-subclass", lambda params: SGDSubclass(params, lr=0.01)),
    ],
)


@pytest.fixture
def optimizers() -> Registry:
    return Registry.isolated(OPTIMIZERS)


def _setup(registry: Registry, experiment: Experiment = MLP, **changes: Any) -> Setup:
    return prepare(attrs.evolve(experiment, **changes), registry)


@pytest.mark.parametrize(
    ("optimizer", "problem"),
    [
        ("sgd", None),
        ({"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}, None),
        ("adam-capturable", None),
        ("plain-tagged", None),
        (
            "lbfgs",
            "optimizer 'lbfgs' needs a closure (it evaluates the loss several times per step, "
            "deciding on the host how often)",
        ),
        (
            "adam",
            "optimizer 'adam' (torch.optim.adam.Adam) was built with capturable=False; "
            "build it with capturable=True to allow capture",
        ),
        (
            "plain",
            "optimizer 'plain' (test_steppers.PlainStep) is not known to be safe to capture (captured are: "
            "torch.optim.SGD, optimizers built with capturable=True, specs tagged 'capturable')",
        ),
        (
            "sgd-subclass",
            "optimizer 'sgd-subclass' (test_steppers.SGDSubclass) is not known to be safe to capture "
            "(captured are: torch.optim.SGD, optimizers built with capturable=True, specs tagged 'capturable')",
        ),
    ],
)
def test_capture_problem_names_the_optimizer_and_the_reason(
    optimizers: Registry, optimizer: Any, problem: str | None
) -> None:
    assert capture_problem(_setup(optimizers, optimizer=optimizer)) == problem


def test_a_closed_form_solver_has_no_step_to_capture(registry: Registry) -> None:
    setup = _setup(registry, dataset="tiny", model="linear", optimizer="lstsq")
    assert capture_problem(setup) == "optimizer 'lstsq' solves in closed form: there is no step to capture"


def _on_cuda(setup: Setup) -> Setup:
    """The same setup, claiming to be on a GPU: the decision looks only at the components."""
    setup.device = torch.device("cuda")
    return setup


def test_a_graph_is_used_on_cuda_only_when_allowed_and_long_enough(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    assert not use_cuda_graph(_setup(registry), epochs=1000)  # on the CPU: never
    assert use_cuda_graph(_on_cuda(_setup(registry)), epochs=MIN_GRAPH_EPOCHS)
    assert not use_cuda_graph(_on_cuda(_setup(registry)), epochs=MIN_GRAPH_EPOCHS - 1)
    assert not use_cuda_graph(_on_cuda(_setup(registry, cuda_graph=False)), epochs=1000)
    assert caplog.records == []  # none of these is a surprise worth a note


def test_why_not_is_said_once(optimizers: Registry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    for _ in range(3):
        assert not use_cuda_graph(_on_cuda(_setup(optimizers, optimizer="lbfgs")), epochs=1000)
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA graph capture not possible because optimizer 'lbfgs' needs a closure (it evaluates the loss "
        "several times per step, deciding on the host how often); training eagerly"
    ]
    assert not use_cuda_graph(_on_cuda(_setup(optimizers, optimizer="adam")), epochs=1000)
    assert len(caplog.records) == 2  # another reason is another note
    assert caplog.records[1].name == "mlbasics"


def test_training_off_cuda_is_eager(registry: Registry) -> None:
    setup = _setup(registry)
    assert setup.experiment == MLP  # the setups built here are the experiments named, not the default
    assert setup.device == torch.device("cpu")
    stepper = make_stepper(setup, eager_step(setup), epochs=1000, interval=10)
    assert isinstance(stepper, EagerStepper)
    assert stepper.mode == EAGER
    result = mlbasics.train(MLP, registry=registry)
    assert result.step_mode == "eager"
    assert result.to_dict()["step_mode"] == "eager"


def test_a_closed_form_result_says_so(registry: Registry) -> None:
    result = mlbasics.train(registry=registry, dataset="tiny", model="linear", optimizer="lstsq")
    assert result.step_mode == "closed-form"


# -- the graph stepper, with a stand-in for the device ----------------------------------------------


class ReplayEagerly:
    """Stands in for CudaGraphs: 'capture' keeps the body without running it (a real capture
    records without computing), 'replay' runs it. Checks the recipe's precondition at capture."""

    def __init__(self, setup: Setup, *, fail: Exception | None = None, sync: str | None = None) -> None:
        self.setup = setup
        self.fail = fail
        self.sync = sync
        self.body: Callable[[], None] | None = None
        self.warm_ups: list[int] = []
        self.probes = 0
        self.replays = 0

    def warm_up(self, steps: Callable[[], torch.Tensor]) -> torch.Tensor:
        losses = steps()
        self.warm_ups.append(len(losses))
        return losses

    def host_sync_in(self, work: Callable[[], object]) -> str | None:
        work()
        self.probes += 1
        return self.sync

    def capture(self, body: Callable[[], None]) -> None:
        # The captured backward must allocate fresh grads: none may exist when the capture starts.
        assert all(p.grad is None for p in self.setup.model.parameters())
        if self.fail is not None:
            for p in self.setup.model.parameters():  # as a real capture would leave them
                p.grad = torch.full_like(p, float("nan"))
            raise self.fail
        self.body = body

    def replay(self, times: int) -> None:
        assert self.body is not None
        for _ in range(times):
            self.body()
            self.replays += 1


def _train_with(stepper_of: Callable[[Setup], Any], setup: Setup, sizes: list[int]) -> torch.Tensor:
    stepper = stepper_of(setup)
    return torch.cat([stepper.run(n) for n in sizes])


@pytest.mark.parametrize(
    ("optimizer", "sizes"),
    [
        ("sgd", [10, 10, 10, 10, 10, 10]),
        ({"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, [25, 25, 10]),
        ("sgd", [1] * 12),  # the warm-up spans several calls
        ("sgd", [2, 7, 7, 7]),
    ],
)
def test_graph_stepper_takes_exactly_the_eager_steps(
    registry: Registry, optimizer: Any, sizes: list[int]
) -> None:
    eager_setup = _setup(registry, optimizer=optimizer)
    expected = _train_with(lambda s: EagerStepper(eager_step(s), s.interrupt), eager_setup, sizes)

    graph_setup = _setup(registry, optimizer=optimizer)
    backend = ReplayEagerly(graph_setup)
    stepper = GraphStepper(graph_setup, eager_step(graph_setup), capacity=max(sizes), backend=backend)
    losses = _train_with(lambda s: stepper, graph_setup, sizes)

    assert stepper.mode == CUDA_GRAPH
    assert sum(backend.warm_ups) == WARMUP_STEPS
    assert backend.probes == 1
    assert backend.replays == sum(sizes) - WARMUP_STEPS
    assert losses.shape == (sum(sizes),)
    assert torch.equal(losses, expected)  # same operations in the same order: bitwise on the CPU
    for (name, p), q in zip(
        graph_setup.model.named_parameters(), eager_setup.model.parameters(), strict=True
    ):
        assert torch.equal(p, q), name


def test_replays_longer_than_the_buffer_come_in_pieces(registry: Registry) -> None:
    eager = _train_with(lambda s: EagerStepper(eager_step(s), s.interrupt), _setup(registry), [40])
    setup = _setup(registry)
    stepper = GraphStepper(setup, eager_step(setup), capacity=8, backend=ReplayEagerly(setup))
    assert torch.equal(stepper.run(40), eager)


def test_a_failed_capture_is_said_once_and_training_goes_on_eagerly(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    eager = _train_with(lambda s: EagerStepper(eager_step(s), s.interrupt), _setup(registry), [10, 10, 10])
    setup = _setup(registry)
    failure = RuntimeError("operation not permitted when stream is capturing\nCUDA kernel errors ...")
    stepper = GraphStepper(setup, eager_step(setup), capacity=10, backend=ReplayEagerly(setup, fail=failure))
    losses = _train_with(lambda s: stepper, setup, [10, 10, 10])
    assert stepper.mode == EAGER
    assert torch.equal(losses, eager)  # no step lost, repeated, or spoiled by the capture's grads
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA graph capture not possible because capturing the step failed (RuntimeError: operation not "
        "permitted when stream is capturing); training eagerly"
    ]


def test_a_step_that_waits_for_the_host_is_not_captured(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    eager = _train_with(lambda s: EagerStepper(eager_step(s), s.interrupt), _setup(registry), [10, 10])
    setup = _setup(registry)
    backend = ReplayEagerly(setup, sync="called a synchronizing CUDA operation")
    stepper = GraphStepper(setup, eager_step(setup), capacity=10, backend=backend)
    assert torch.equal(_train_with(lambda s: stepper, setup, [10, 10]), eager)
    assert stepper.mode == EAGER
    assert backend.body is None  # no capture was started
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA graph capture not possible because the step waits for the host (called a synchronizing CUDA "
        "operation); training eagerly"
    ]


class CountsAndDrops(torch.nn.Module):
    """Changes a buffer and draws random numbers in every forward pass."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(in_features, 8)
        self.out = torch.nn.Linear(8, out_features)
        self.dropout = torch.nn.Dropout(0.3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.out(self.dropout(torch.relu(self.hidden(x))))


def test_the_check_before_capture_leaves_no_trace() -> None:
    """The extra forward/backward that looks for host syncs must not change what training does."""
    model = ComponentSpec(kind="model", name="counts", factory=CountsAndDrops, summary="buffer and dropout")
    registry = Registry.isolated(hook_plugin("test-models", mlbasics_models=lambda: [model]))
    experiment = Experiment(model="counts", epochs=30, device="cpu")
    eager_setup = prepare(experiment, registry)
    torch.manual_seed(0)
    expected = EagerStepper(eager_step(eager_setup), eager_setup.interrupt).run(30)
    setup = prepare(experiment, registry)
    stepper = GraphStepper(setup, eager_step(setup), capacity=30, backend=ReplayEagerly(setup))
    torch.manual_seed(0)
    assert torch.equal(stepper.run(30), expected)
    assert float(setup.model.calls) == float(eager_setup.model.calls) == 30


def test_the_loop_reports_the_graph_path_and_its_history(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fit() drives whatever stepper it is given, one sync per interval, and says which one ran."""
    import mlbasics.engine.steppers

    eager = mlbasics.train(MLP, registry=registry, log_every=7)

    def graph_stepper(setup: Setup, step: Any, *, epochs: int, interval: int) -> GraphStepper:
        return GraphStepper(setup, step, capacity=interval, backend=ReplayEagerly(setup))

    monkeypatch.setattr(mlbasics.engine.steppers, "make_stepper", graph_stepper)
    graphed = mlbasics.train(MLP, registry=registry, log_every=7)
    assert graphed.step_mode == "cuda-graph"
    assert graphed.history == eager.history
    assert len(graphed.history) == MLP.epochs


@pytest.mark.parametrize(("capacity", "n"), [(0, 1), (4, 0)])
def test_graph_stepper_rejects_empty_requests(registry: Registry, capacity: int, n: int) -> None:
    setup = _setup(registry)
    with pytest.raises(ValueError, match="must be >= 1"):
        GraphStepper(setup, eager_step(setup), capacity=capacity, backend=ReplayEagerly(setup)).run(n)
