"""The speed paths on a real GPU: CUDA-graph training against eager training, and a vmapped sweep
against single runs, on the same device. Skipped (with the reason) on machines without CUDA; run
them with ``benchmarks/gpu_check.sh`` or ``python -m pytest -m cuda``.

Graph and eager, batched and unbatched: each pair runs different kernels (cuBLAS may pick another
algorithm inside a capture, a batched product sums in another order), which round differently in
the last bit, and a network trained for hundreds of epochs amplifies that. So the MLPs train in
float64 (``mlp-float64``, ``mse-float64``) and must agree within FLOAT64_TOLERANCE, whose argument
is in _stand_ins.py; the linear model (convex: rounding differences shrink) trains in float32."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import torch
from _rounding import tf32_off
from _stand_ins import FLOAT64, FLOAT64_TOLERANCE, ReadsOnTheHost, hook_plugin

import mlbasics
from mlbasics import ComponentSpec, Experiment, Param, Registry
from mlbasics.engine.setup import prepare
from mlbasics.engine.steppers import CudaGraphs, GraphStepper, eager_step
from mlbasics.notes import forget_notes

pytestmark = pytest.mark.cuda

LECTURE = Experiment(epochs=300, device="cuda", seed=1, log_every=50, model="mlp-float64", loss="mse-float64")


@pytest.fixture(autouse=True)
def _exact_float32() -> Iterator[None]:
    """Both runs must do float32 arithmetic; TF32 would make the comparison about TF32."""
    forget_notes()
    with tf32_off():
        yield
    forget_notes()


def _assert_same_training(graphed: mlbasics.TrainResult, eager: mlbasics.TrainResult) -> None:
    """Two float64 trainings of an MLP, within FLOAT64_TOLERANCE (module docstring)."""
    assert graphed.step_mode == "cuda-graph"
    assert eager.step_mode == "eager"
    assert len(graphed.history) == len(eager.history)
    tolerance = {"rtol": FLOAT64_TOLERANCE, "atol": FLOAT64_TOLERANCE}
    history = torch.tensor(graphed.history, dtype=torch.float64)
    torch.testing.assert_close(history, torch.tensor(eager.history, dtype=torch.float64), **tolerance)
    for name, value in eager.parameters.items():
        assert value.dtype == torch.float64, name
        torch.testing.assert_close(graphed.parameters[name], value, msg=name, **tolerance)


PLUGIN = hook_plugin(
    "test-cuda-plugin",
    mlbasics_models=lambda: [
        ComponentSpec(kind="model", name="syncs", factory=ReadsOnTheHost, summary="reads on the host")
    ],
    mlbasics_optimizers=lambda: [
        ComponentSpec(
            kind="optimizer",
            name="adam",
            factory=lambda params, capturable: torch.optim.Adam(params, lr=0.01, capturable=capturable),
            summary="Adam",
            params=(Param(name="capturable", type=bool, default=True),),
        )
    ],
)


@pytest.fixture
def plugged() -> Registry:
    return Registry.isolated(PLUGIN, FLOAT64)


@pytest.fixture
def registry(registry: Registry) -> Registry:
    """The built-ins and the float64 MLP."""
    registry.add_plugin(FLOAT64)
    return registry


def test_graph_training_of_the_lecture_mlp_matches_eager(registry: Registry) -> None:
    graphed = mlbasics.train(LECTURE, registry=registry)
    eager = mlbasics.train(LECTURE, registry=registry, cuda_graph=False)
    _assert_same_training(graphed, eager)
    assert graphed.history[-1] < graphed.history[0]


@pytest.mark.parametrize("log_every", [1, 7, 1000])
def test_graph_training_with_momentum_and_weight_decay_matches_eager(
    registry: Registry, log_every: int
) -> None:
    experiment = Experiment(
        dataset="synthetic-linear",
        model={"name": "mlp-float64", "hidden": [8]},
        loss="mse-float64",
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.001},
        epochs=100,
        device="cuda",
        log_every=log_every,
    )
    _assert_same_training(
        mlbasics.train(experiment, registry=registry),
        mlbasics.train(experiment, registry=registry, cuda_graph=False),
    )


# The eager run steps a capturable Adam outside a capture, which torch warns about.
@pytest.mark.filterwarnings("ignore:This instance was constructed with capturable=True")
def test_a_capturable_adam_is_captured(plugged: Registry) -> None:
    experiment = Experiment(
        dataset="quadratic",
        model="mlp-float64",
        loss="mse-float64",
        optimizer="adam",
        epochs=200,
        device="cuda",
    )
    _assert_same_training(
        mlbasics.train(experiment, registry=plugged),
        mlbasics.train(experiment, registry=plugged, cuda_graph=False),
    )


def test_an_adam_built_without_capturable_trains_eagerly_and_says_why(
    plugged: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    optimizer = {"name": "adam", "capturable": False}
    result = mlbasics.train(registry=plugged, optimizer=optimizer, epochs=50, device="cuda")
    assert result.step_mode == "eager"
    assert [r.getMessage() for r in caplog.records] == [
        "CUDA graph capture not possible because optimizer 'adam' (torch.optim.adam.Adam) was built with "
        "capturable=False; build it with capturable=True to allow capture; training eagerly"
    ]


def test_a_step_that_waits_for_the_host_is_found_before_capture_and_trains_eagerly(
    plugged: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    experiment = Experiment(dataset="tiny", model="syncs", epochs=60, device="cuda", log_every=10)
    attempted = mlbasics.train(experiment, registry=plugged)
    assert attempted.step_mode == "eager"
    [record] = caplog.records
    assert record.getMessage().startswith(
        "CUDA graph capture not possible because the step waits for the host ("
    )
    eager = mlbasics.train(experiment, registry=plugged, cuda_graph=False)
    # Both eager (the same kernels), on a linear model: float32 tolerance.
    torch.testing.assert_close(torch.tensor(attempted.history), torch.tensor(eager.history))
    # and CUDA still works afterwards
    assert mlbasics.train(LECTURE, registry=plugged, epochs=40).step_mode == "cuda-graph"


def test_the_graph_stepper_on_the_device_directly(registry: Registry) -> None:
    setup = prepare(LECTURE, registry)
    stepper = GraphStepper(setup, eager_step(setup), capacity=16, backend=CudaGraphs(setup.device))
    losses = torch.cat([stepper.run(n) for n in (2, 16, 16, 5)])
    assert stepper.mode == "cuda-graph"
    assert losses.device.type == "cuda"
    reference = prepare(LECTURE, registry)
    step = eager_step(reference)
    expected = torch.stack([step() for _ in range(39)])
    assert losses.dtype == torch.float64
    torch.testing.assert_close(losses, expected, rtol=FLOAT64_TOLERANCE, atol=FLOAT64_TOLERANCE)


def test_a_sweep_on_the_gpu_matches_single_runs(registry: Registry) -> None:
    experiment = Experiment(epochs=150, device="cuda", log_every=50, model="mlp-float64", loss="mse-float64")
    result = mlbasics.sweep(experiment, seeds=[1, 2], lrs=[0.01, 0.05], registry=registry)
    assert result.mode == "vmap"
    assert result.device.startswith("cuda")
    tolerance = {"rtol": FLOAT64_TOLERANCE, "atol": FLOAT64_TOLERANCE}
    for member in result.members:
        alone = mlbasics.train(member.experiment, registry=registry)
        expected = torch.tensor(alone.history, dtype=torch.float64)
        torch.testing.assert_close(member.history.double(), expected, msg=member.label, **tolerance)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(
                member.parameters[name], value, msg=f"{member.label}: {name}", **tolerance
            )
