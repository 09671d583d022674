"""Resuming a saved run: bitwise the same as never stopping (CPU), and refused when it would not be."""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from _rounding import tf32_off
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlbasics
from mlbasics import Callback, Checkpoint, DataError, Experiment, Registry, Setup, ValidationError
from mlbasics.core.callbacks import CallbackError
from mlbasics.training.resuming import ResumeWarning
from tests import reliability_plugin

REGISTRY = reliability_plugin.registry()

DATASETS = ["tiny", {"name": "synthetic-linear", "n": 20}, {"name": "quadratic", "n": 30}]
MODELS = [
    "linear",
    {"name": "mlp", "hidden": [3]},
    {"name": "mlp", "hidden": [4, 2], "activation": "tanh"},
    "dropout-linear",  # draws from torch's global generator at every step
]
OPTIMIZERS = [
    {"name": "sgd", "lr": 0.02},
    {"name": "sgd", "lr": 0.02, "momentum": 0.9},  # the momentum buffers must be restored
    {"name": "sgd", "lr": 0.01, "momentum": 0.5, "weight_decay": 0.01},
    {"name": "jitter-sgd", "lr": 0.01, "momentum": 0.5},  # draws from Python's random at every step
]


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)


def _disturb_generators() -> None:
    """A resumed process starts with other generator states than the one that saved the run."""
    torch.rand(11)
    random.random()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.integers(1, 12),
    more=st.integers(1, 12),
    dataset=st.sampled_from(DATASETS),
    model=st.sampled_from(MODELS),
    optimizer=st.sampled_from(OPTIMIZERS),
    log_every=st.sampled_from([None, 1, 2, 5]),
    checkpoint_every=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 3),
)
def test_save_then_resume_is_bitwise_the_straight_run(
    tmp_path_factory: pytest.TempPathFactory,
    first: int,
    more: int,
    dataset: Any,
    model: Any,
    optimizer: Any,
    log_every: int | None,
    checkpoint_every: int | None,
    seed: int,
) -> None:
    experiment = Experiment(
        dataset=dataset, model=model, optimizer=optimizer, device="cpu", seed=seed, log_every=log_every
    )
    _seed_everything(seed)
    straight = mlbasics.train(experiment, registry=REGISTRY, epochs=first + more)
    straight_state = _state(straight.model)

    run = tmp_path_factory.mktemp("run")
    _seed_everything(seed)
    saved = mlbasics.train(
        experiment,
        registry=REGISTRY,
        epochs=first,
        save=run,
        checkpoint_every=checkpoint_every,
        overwrite=True,
    )
    assert Checkpoint.load(run).epoch == first
    _disturb_generators()
    resumed = mlbasics.resume(run, registry=REGISTRY, epochs=first + more)

    assert saved.history == straight.history[:first]
    assert resumed.history == straight.history  # bitwise: floats compared with ==
    assert resumed.resumed_from == first
    _assert_bitwise_equal(_state(resumed.model), straight_state)
    assert Checkpoint.load(run).history == straight.history  # the final checkpoint holds the whole run


class CrashAt(Callback):
    """Fails like a crash (not a clean stop) once training reaches ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch >= self.epoch:
            raise RuntimeError("simulated crash")


def test_a_crash_loses_only_the_epochs_since_the_last_periodic_checkpoint(tmp_path: Path) -> None:
    experiment = Experiment(
        model="dropout-linear", optimizer=OPTIMIZERS[3], epochs=40, device="cpu", log_every=1
    )
    _seed_everything(0)
    straight = mlbasics.train(experiment, registry=REGISTRY)
    _seed_everything(0)
    with pytest.raises(CallbackError, match="simulated crash"):
        mlbasics.train(
            experiment, registry=REGISTRY, save=tmp_path, checkpoint_every=10, callbacks=[CrashAt(27)]
        )
    assert Checkpoint.load(tmp_path).epoch == 20  # written at 10 and 20; nothing after the crash
    _disturb_generators()
    resumed = mlbasics.resume(tmp_path, registry=REGISTRY)
    assert resumed.history == straight.history
    _assert_bitwise_equal(_state(resumed.model), _state(straight.model))


class InterruptAt(Callback):
    """Asks the loop to stop as SIGINT would, at the sync point of ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch == self.epoch:
            setup.interrupt.request(signal.SIGINT)


def test_an_interrupted_run_checkpoints_where_it_stopped_and_resumes_exactly(tmp_path: Path) -> None:
    experiment = Experiment(
        optimizer=OPTIMIZERS[1], model={"name": "mlp", "hidden": [5]}, epochs=30, device="cpu"
    )
    straight = mlbasics.train(experiment, registry=REGISTRY, log_every=3)
    stopped = mlbasics.train(
        experiment, registry=REGISTRY, log_every=3, save=tmp_path, callbacks=[InterruptAt(12)]
    )
    assert stopped.interrupted_by == signal.SIGINT
    assert stopped.stopped == "interrupted by SIGINT after epoch 12"
    assert stopped.epochs == 12
    assert Checkpoint.load(tmp_path).epoch == 12
    resumed = mlbasics.resume(tmp_path, registry=REGISTRY)
    assert resumed.history == straight.history
    _assert_bitwise_equal(_state(resumed.model), _state(straight.model))


def test_a_signal_during_a_step_stops_at_the_end_of_that_step(tmp_path: Path) -> None:
    """The real handler, in this process: SIGINT arrives inside the 7th step of a 100-step interval."""
    setup = mlbasics.prepare(Experiment(epochs=1000, log_every=100, device="cpu"), REGISTRY)
    calls = 0
    forward = setup.model.forward

    def forward_sending_sigint(x: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 7:
            signal.raise_signal(signal.SIGINT)
        out: torch.Tensor = forward(x)
        return out

    setup.model.forward = forward_sending_sigint  # type: ignore[method-assign]
    # Not always Python's default_int_handler: a shell starts background jobs with SIGINT ignored.
    before = signal.getsignal(signal.SIGINT)
    with mlbasics.stop_on_signals(setup):
        result = mlbasics.fit(setup)
    assert result.epochs == 7
    assert result.interrupted_by == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before  # the handler was put back


def test_resume_trains_further_when_asked_and_refuses_fewer_epochs(tmp_path: Path) -> None:
    experiment = Experiment(dataset="tiny", model="linear", epochs=10, device="cpu")
    mlbasics.train(experiment, registry=REGISTRY, save=tmp_path)
    done = mlbasics.resume(tmp_path, registry=REGISTRY)  # already complete: nothing to do
    assert (done.epochs, done.resumed_from) == (10, 10)
    longer = mlbasics.resume(tmp_path, registry=REGISTRY, epochs=15)
    assert longer.epochs == 15
    assert Checkpoint.load(tmp_path).experiment.epochs == 15
    with pytest.raises(ValidationError, match=r"cannot resume .* to 12 epochs: it has trained 15 already"):
        mlbasics.resume(tmp_path, registry=REGISTRY, epochs=12)


def test_resuming_another_experiment_says_what_differs(tmp_path: Path) -> None:
    experiment = Experiment(dataset="tiny", model="linear", optimizer=OPTIMIZERS[1], epochs=5, device="cpu")
    mlbasics.train(experiment, registry=REGISTRY, save=tmp_path)
    with pytest.raises(ValidationError) as error:
        mlbasics.resume(tmp_path, registry=REGISTRY, optimizer={"name": "sgd", "lr": 0.5}, seed=7)
    assert error.value.problems == (
        f"cannot resume {tmp_path}: it was trained with another experiment: optimizer 'sgd': lr is 0.5 now "
        "but was 0.02 (--force resumes anyway)",
        f"cannot resume {tmp_path}: it was trained with another experiment: optimizer 'sgd': momentum is 0.0 "
        "now but was 0.9 (--force resumes anyway)",
        f"cannot resume {tmp_path}: it was trained with another experiment: seed is 7 now but was 1 "
        "(--force resumes anyway)",
    )
    assert Checkpoint.load(tmp_path).epoch == 5  # nothing was touched


def test_a_forced_resume_uses_the_new_settings_and_says_so(tmp_path: Path) -> None:
    experiment = Experiment(dataset="tiny", model="linear", optimizer=OPTIMIZERS[1], epochs=5, device="cpu")
    mlbasics.train(experiment, registry=REGISTRY, save=tmp_path)

    class Spy(Callback):
        def on_train_start(self, setup: Setup, epochs: int) -> None:
            assert isinstance(setup.optimizer, torch.optim.Optimizer)
            self.lr = setup.optimizer.param_groups[0]["lr"]
            self.buffers = len(setup.optimizer.state)

    spy = Spy()
    with pytest.warns(ResumeWarning, match="lr is 0.05 now but was 0.02"):
        result = mlbasics.resume(
            tmp_path,
            registry=REGISTRY,
            epochs=8,
            force=True,
            optimizer={**OPTIMIZERS[1], "lr": 0.05},
            callbacks=[spy],
        )
    assert spy.lr == 0.05  # the new learning rate, not the saved one
    assert spy.buffers == 2  # the momentum buffers (weight and bias) were kept
    assert result.epochs == 8


def test_changed_data_is_noticed(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n2,4\n")
    experiment = Experiment(
        dataset={"name": "csv", "path": str(data)}, model="linear", epochs=3, device="cpu"
    )
    mlbasics.train(experiment, registry=REGISTRY, save=tmp_path / "run")
    data.write_text("x,y\n1,2\n2,5\n")
    with pytest.raises(
        ValidationError, match=r"dataset 'csv': the data differ from the data the run was trained on"
    ):
        mlbasics.resume(tmp_path / "run", registry=REGISTRY)


def test_a_missing_plugin_is_named(tmp_path: Path) -> None:
    mlbasics.train(model="dropout-linear", epochs=2, device="cpu", registry=REGISTRY, save=tmp_path)
    builtins_only = reliability_plugin.registry(with_plugin=False)
    with pytest.raises(
        ValidationError,
        match=r"it was trained with model 'dropout-linear' from plugin reliability, which is not available here "
        r"\(unknown model 'dropout-linear'",
    ):
        mlbasics.resume(tmp_path, registry=builtins_only)


@pytest.mark.parametrize(
    ("saved", "now", "allowed"), [("1.2", "1.0", False), ("1.2", "1.10", True), ("1.2", "1.2", True)]
)
def test_an_older_plugin_version_is_refused_unless_forced(
    tmp_path: Path, saved: str, now: str, allowed: bool
) -> None:
    experiment = Experiment(dataset="tiny", model="dropout-linear", epochs=2, device="cpu")
    mlbasics.train(experiment, registry=reliability_plugin.registry(saved), save=tmp_path)
    registry = reliability_plugin.registry(now)
    if allowed:
        assert mlbasics.resume(tmp_path, registry=registry, epochs=3).epochs == 3
        return
    message = (
        r"it was trained with model 'dropout-linear' from plugin reliability \(mlbasics-reliability 1.2\), "
        r"but here reliability is version 1.0, which is older \(--force resumes anyway\)"
    )
    with pytest.raises(ValidationError, match=message):
        mlbasics.resume(tmp_path, registry=registry, epochs=3)
    with pytest.warns(ResumeWarning, match="which is older"):
        assert mlbasics.resume(tmp_path, registry=registry, epochs=3, force=True).epochs == 3


def test_a_resumed_run_can_save_elsewhere(tmp_path: Path) -> None:
    mlbasics.train(
        dataset="tiny", model="linear", epochs=4, device="cpu", registry=REGISTRY, save=tmp_path / "a"
    )
    mlbasics.resume(tmp_path / "a", registry=REGISTRY, epochs=6, save=tmp_path / "b")
    assert (Checkpoint.load(tmp_path / "a").epoch, Checkpoint.load(tmp_path / "b").epoch) == (4, 6)


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path: Path) -> None:
    mlbasics.train(
        model={"name": "mlp", "hidden": [3]}, epochs=2, device="cpu", registry=REGISTRY, save=tmp_path
    )
    with pytest.raises(
        DataError,
        match=r"model\.safetensors: the weights do not fit model 'mlp' with hidden=\[4\], activation='relu' \(the "
        r"run was trained with hidden=\[3\], activation='relu'\): 0\.weight is \(3, 1\) float32 in the "
        r"checkpoint but \(4, 1\) float32 in the model; 0\.bias is",
    ):
        mlbasics.resume(tmp_path, registry=REGISTRY, force=True, model={"name": "mlp", "hidden": [4]})


def test_training_state_reaches_the_setup(registry: Registry, tmp_path: Path) -> None:
    experiment = Experiment(dataset="tiny", model="linear", optimizer=OPTIMIZERS[1], epochs=6, device="cpu")
    trained = mlbasics.train(experiment, registry=registry, save=tmp_path)
    checkpoint = Checkpoint.load(tmp_path)
    from mlbasics.training.resuming import restore

    setup, notes = restore(checkpoint, checkpoint.experiment, registry)
    assert notes == []
    assert setup.history == trained.history
    _assert_bitwise_equal(_state(setup.model), _state(trained.model))
    assert isinstance(setup.optimizer, torch.optim.Optimizer)
    buffers = [state["momentum_buffer"] for state in setup.optimizer.state.values()]
    assert len(buffers) == 2
    assert all(torch.isfinite(b).all() and b.abs().sum() > 0 for b in buffers)


@pytest.mark.cuda
@pytest.mark.parametrize("model", ["dropout-linear", {"name": "mlp", "hidden": [8, 8]}])
def test_resume_on_cuda_matches_the_straight_run_within_float_tolerance(tmp_path: Path, model: Any) -> None:
    """On CUDA the kernels need not be bitwise reproducible, so the comparison allows float noise; the
    dropout model draws from the CUDA generator, whose state must be restored for the masks to agree.
    The noise: a few ulps (u = 2^-24) per step, amplified over these 60 epochs of a small MLP; the
    most measured for the lecture MLP was about 1700 after 150 epochs (tests/test_sweeps.py), and
    1e-4 is 1700u: a bound for as long a run, not a measured margin for this one."""
    experiment = Experiment(model=model, optimizer=OPTIMIZERS[1], device="cuda", log_every=5)
    with tf32_off():
        torch.cuda.manual_seed_all(0)
        straight = mlbasics.train(experiment, registry=REGISTRY, epochs=60)
        torch.cuda.manual_seed_all(0)
        mlbasics.train(experiment, registry=REGISTRY, epochs=25, save=tmp_path)
        torch.rand(7, device="cuda")  # move the CUDA generator on, as a new process would differ
        resumed = mlbasics.resume(tmp_path, registry=REGISTRY, epochs=60)
    assert resumed.device.startswith("cuda")
    torch.testing.assert_close(
        torch.tensor(resumed.history), torch.tensor(straight.history), rtol=1e-4, atol=1e-6
    )
    for name, value in straight.parameters.items():
        torch.testing.assert_close(resumed.parameters[name], value, rtol=1e-4, atol=1e-6)
