"""The built-in callbacks: early stopping, the logs and the learning-rate schedules, checked against
plain references computed from the run's own histories; and the run's own company, built through
the registry."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import mlbasics
from mlbasics import Callback, Experiment, Registry, Setup, ValidationError
from tests.conftest import run_main

REGISTRY = Registry.isolated()

#: 40 noisy points of a plane, a quarter held out: a linear model converges within ~150 epochs, so
#: the validation loss stops improving by more than 1e-4 well before the 1000 epochs.
CONVERGING = Experiment(
    dataset={"name": "synthetic-linear", "n": 40, "weights": [1.0, -2.0], "noise": 0.5},
    model="linear",
    optimizer={"name": "sgd", "lr": 0.05},
    epochs=1000,
    validation=0.25,
    metrics=["r2"],
    device="cpu",
)
STOPPING = {"name": "early-stopping", "patience": 20, "check_every": 5, "min_delta": 1e-4}


def _train(experiment: Experiment = CONVERGING, **settings: Any) -> mlbasics.TrainResult:
    return mlbasics.train(experiment, registry=REGISTRY, **settings)


def _at(pairs: list[tuple[int, float]], every: int) -> list[tuple[int, float]]:
    return [(epoch, value) for epoch, value in pairs if epoch % every == 0]


def _expected_stop(
    checks: list[tuple[int, float]], patience: int, min_delta: float, mode: str = "min"
) -> tuple[int, int]:
    """(best epoch, stop epoch) of early stopping, recomputed from the values at the checks."""
    best_epoch, best = checks[0]
    for epoch, value in checks[1:]:
        better = value < best - min_delta if mode == "min" else value > best + min_delta
        if better:
            best_epoch, best = epoch, value
        elif epoch - best_epoch >= patience:
            return best_epoch, epoch
    raise AssertionError("the reference run never stops")


def _parameters_after(epochs: int) -> dict[str, torch.Tensor]:
    """The parameters of the same run trained for ``epochs`` with no callback: the losses do not
    depend on where sync points fall, so on the CPU they are bitwise those of any run at that epoch."""
    return _train(epochs=epochs).parameters


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# -- early stopping -------------------------------------------------------------------------------


def test_early_stopping_stops_where_the_validation_loss_stalls_and_restores_the_best_weights() -> None:
    reference = _train(epochs=400, log_every=5)  # the same run, never stopped, synced at every check
    best_epoch, stop_epoch = _expected_stop(_at(reference.validation_history, 5), patience=20, min_delta=1e-4)
    result = _train(callbacks=[STOPPING])
    assert result.epochs == stop_epoch < 1000
    assert result.history == reference.history[:stop_epoch]
    assert result.stopped is not None
    assert result.stopped.startswith(
        f"validation_loss did not improve by more than 0.0001 for {stop_epoch - best_epoch} epochs"
    )
    assert f"the weights of epoch {best_epoch} are restored" in result.stopped
    _assert_bitwise_equal(result.parameters, _parameters_after(best_epoch))
    assert result.to_dict()["stopped"] == result.stopped  # what --json shows


def _evaluated_afresh(experiment: Experiment, model: torch.nn.Module) -> dict[str, float]:
    """What ``model`` does, evaluated from scratch: a new setup of ``experiment`` (the same rows),
    ``model``'s weights in its model, the loss and each metric applied to it directly. The same
    weights, rows and operations in the same process give the very same floats as the run's."""
    setup = mlbasics.prepare(experiment, REGISTRY)
    setup.model.load_state_dict(model.state_dict())
    parts = {"": (setup.features, setup.targets), "validation_": setup.validation, "test_": setup.test}
    values: dict[str, float] = {}
    with torch.no_grad():
        for prefix, part in parts.items():
            if part is None:
                continue
            prediction, target = setup.model(part[0]), part[1]
            values[prefix + "loss"] = float(setup.loss(prediction, target))
            values |= {
                prefix + name: float(metric(prediction, target)) for name, metric in setup.metrics.items()
            }
    return values


def test_what_a_restored_run_shows_is_what_its_model_does(capsys: pytest.CaptureFixture[str]) -> None:
    """The summary, the Metrics table, --json and TrainResult show the restored weights' values,
    not the last sync point's (which the model no longer holds), and say which epoch's they are."""
    result = _train(test=0.2, callbacks=[STOPPING])
    best_epoch = int((result.stopped or "").split("the weights of epoch ")[1].split()[0])
    fresh = _evaluated_afresh(result.experiment, result.model)
    assert result.restored_epoch == best_epoch < result.epochs
    assert result.final_loss == fresh["loss"]
    assert result.validation_loss == fresh["validation_loss"]
    assert result.test_loss == fresh["test_loss"]
    assert result.metrics == {name: fresh[name] for name in ("r2", "validation_r2", "test_r2")}
    # ... which are not the last sync point's: the case this test is about
    assert result.validation_loss != result.validation_history[-1][1]
    assert result.metrics["r2"] != result.metric_history["r2"][-1][1]

    from mlbasics.cli import main

    args = ["train", "--dataset", "synthetic-linear", "--set", "dataset.n=40", "--set", "dataset.weights=[1.0,-2.0]",
            "--set", "dataset.noise=0.5", "--model", "linear", "--lr", "0.05", "--epochs", "1000",
            "--validation", "0.25", "--test", "0.2", "--metric", "r2", "--device", "cpu",
            "--callback", "early-stopping", "--set", "callbacks.early-stopping.patience=20",
            "--set", "callbacks.early-stopping.check_every=5", "--set", "callbacks.early-stopping.min_delta=0.0001"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["final_loss"], shown["validation_loss"], shown["test_loss"], shown["metrics"]) == (
        fresh["loss"], fresh["validation_loss"], fresh["test_loss"], result.metrics
    )  # fmt: skip
    assert shown["restored_epoch"] == best_epoch
    assert main([*args, "--quiet"]) == 0
    summary = " ".join(capsys.readouterr().out.split())  # rich wraps lines at the terminal's width
    assert f"final loss {fresh['loss']:.6g} of the weights of epoch {best_epoch} (restored)," in summary
    assert f"validation loss {fresh['validation_loss']:.6g} on 10 held-out rows" in summary
    row = f"r2 (higher is better) │ {fresh['r2']:.6g} │ {fresh['validation_r2']:.6g} │ {fresh['test_r2']:.6g}"
    assert row in summary
    assert f"training and validation of the weights of epoch {best_epoch} (restored)" in summary


def test_a_sequential_sweep_shows_each_member_s_restored_weights() -> None:
    result = mlbasics.sweep(CONVERGING, seeds=[0, 1], registry=REGISTRY, callbacks=[STOPPING])
    assert result.mode == "sequential"
    for member in result.members:
        model = mlbasics.prepare(member.experiment, REGISTRY).model
        model.load_state_dict(member.parameters)
        fresh = _evaluated_afresh(member.experiment, model)
        assert member.restored_epoch is not None
        assert member.restored_epoch < len(member.history)
        assert (member.final_loss, member.validation_loss) == (fresh["loss"], fresh["validation_loss"])
        assert member.metrics == {"r2": fresh["r2"], "validation_r2": fresh["validation_r2"]}
        assert member.metrics["r2"] != float(member.metric_history["r2"][-1])
        assert result.to_dict()["members"][0]["restored_epoch"] is not None


def test_without_restore_best_the_last_weights_stay() -> None:
    result = _train(callbacks=[STOPPING | {"restore_best": False}])
    assert result.stopped is not None
    assert "restored" not in result.stopped
    _assert_bitwise_equal(result.parameters, _parameters_after(result.epochs))


def test_a_metric_to_maximise_is_watched_its_own_way() -> None:
    reference = _train(epochs=400, log_every=5)
    checks = _at(reference.metric_history["validation_r2"], 5)
    best_epoch, stop_epoch = _expected_stop(checks, patience=20, min_delta=1e-4, mode="max")
    result = _train(callbacks=[STOPPING | {"monitor": "validation_r2"}])
    assert result.epochs == stop_epoch
    assert "validation_r2 did not improve" in (result.stopped or "")
    _assert_bitwise_equal(result.parameters, _parameters_after(best_epoch))


def test_a_run_that_ends_before_patience_runs_out_still_ends_with_the_best_weights() -> None:
    # mode = "max" on the loss: the worst loss, the first check's, is "best"; a contrived target
    # that makes the best epoch certain to be an early one.
    result = _train(
        epochs=30, callbacks=[{"name": "early-stopping", "monitor": "loss", "mode": "max", "check_every": 5}]
    )
    assert result.epochs == 30
    assert result.stopped is not None
    assert result.stopped.startswith("ran all 30 epochs; loss was best")
    _assert_bitwise_equal(result.parameters, _parameters_after(5))


def test_the_default_monitor_is_the_training_loss_without_validation_rows() -> None:
    experiment = Experiment(
        dataset="tiny", model="linear", optimizer={"name": "sgd", "lr": 0.1}, epochs=2000, device="cpu"
    )
    result = _train(experiment, callbacks=[{"name": "early-stopping", "min_delta": 1e-6, "patience": 50}])
    assert result.epochs < 2000
    assert (result.stopped or "").startswith("loss did not improve")


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [
        (
            "validation_r3",
            "monitor 'validation_r3' names no value this run computes; did you mean 'validation_r2'",
        ),
        (
            "test_r2",
            "monitor 'test_r2' names no value this run computes; the test rows are evaluated once, at the end",
        ),
        ("mae", "monitor 'mae' names no value this run computes; add a metric with --metric NAME"),
    ],
)
def test_a_monitor_that_names_no_value_is_refused_before_training(monitor: str, expected: str) -> None:
    seen = []

    class Spy(Callback):
        def on_train_start(self, setup: Setup, epochs: int) -> None:
            seen.append(epochs)

    with pytest.raises(ValidationError) as caught:
        _train(callbacks=[Spy(), {"name": "early-stopping", "monitor": monitor}])
    [line] = caught.value.problems
    assert line.startswith(f"callback 'early-stopping' from plugin builtins: {expected}")
    assert line.endswith("(it computes: loss, validation_loss, r2, validation_r2)")
    assert not seen  # refused before anything started


def test_validation_values_without_validation_rows_are_refused_with_the_way_to_get_them() -> None:
    with pytest.raises(ValidationError, match=r"no validation rows \(hold some out with --validation F\)"):
        _train(validation=0.0, callbacks=[{"name": "early-stopping", "monitor": "validation_loss"}])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"patience": 0}, "param 'patience' must be >= 1, got 0"),
        ({"check_every": -5}, "param 'check_every' must be >= 1, got -5"),
        ({"mode": "sideways"}, "param 'mode' must be one of auto, min, max; got 'sideways'"),
        ({"min_delta": -0.1}, "param 'min_delta' must be >= 0, got -0.1"),
        ({"patients": 3}, "patients"),
    ],
)
def test_params_out_of_range_are_refused_by_their_declaration(params: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _train(callbacks=[{"name": "early-stopping", **params}])
    [line] = caught.value.problems
    assert line.startswith("callback 'early-stopping'")
    assert expected in line


# -- logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["csv-logger", "jsonl-logger"])
def test_a_log_has_one_row_per_interval_with_the_run_s_own_values(tmp_path: Path, name: str) -> None:
    path = tmp_path / "log"
    result = _train(epochs=40, callbacks=[{"name": name, "path": str(path), "every": 10}])
    rows = _read_log(path)
    assert [row["epoch"] for row in rows] == [10, 20, 30, 40]
    validation, r2 = dict(result.validation_history), dict(result.metric_history["validation_r2"])
    for row in rows:
        epoch = row["epoch"]
        assert list(row) == ["epoch", "loss", "validation_loss", "r2", "validation_r2", "lr", "seconds"]
        assert row["loss"] == result.history[epoch - 1]
        assert row["validation_loss"] == validation[epoch]
        assert row["validation_r2"] == r2[epoch]
        assert row["lr"] == 0.05
    seconds = [row["seconds"] for row in rows]
    assert seconds == sorted(seconds)
    assert seconds[0] >= 0


def _read_log(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    if text.startswith("epoch,"):
        return [
            {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
            for row in csv.DictReader(text.splitlines())
        ]
    return [json.loads(line) for line in text.splitlines()]


def test_a_log_in_a_missing_folder_is_refused_before_training(tmp_path: Path) -> None:
    with pytest.raises(
        ValidationError, match=r"callback 'csv-logger' from plugin builtins: cannot write .*does not exist"
    ):
        _train(callbacks=[{"name": "csv-logger", "path": str(tmp_path / "nowhere" / "log.csv")}])


# -- learning-rate schedules ----------------------------------------------------------------------


class Rates(Callback):
    """The learning rate in use at every sync point (``setup.values["lr"]``), by epoch."""

    def __init__(self) -> None:
        self.lr: dict[int, float] = {}

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        self.lr[epoch] = setup.values["lr"]


def test_a_step_schedule_trains_as_torch_s_step_lr_in_a_hand_written_loop() -> None:
    experiment = Experiment(
        dataset={"name": "synthetic-linear", "n": 20},
        model="linear",
        optimizer={"name": "sgd", "lr": 0.05},
        epochs=35,
        device="cpu",
    )
    setup = mlbasics.prepare(experiment, REGISTRY)
    assert isinstance(setup.optimizer, torch.optim.SGD)
    scheduler = torch.optim.lr_scheduler.StepLR(setup.optimizer, step_size=10, gamma=0.5)
    hand = []
    for _ in range(35):  # the lecture's loop, with torch's scheduler stepped after every epoch
        setup.optimizer.zero_grad()
        loss = setup.loss(setup.model(setup.features), setup.targets)
        loss.backward()
        setup.optimizer.step()
        scheduler.step()
        hand.append(float(loss.detach()))
    rates = Rates()
    # gamma 0.5: every rate is exact in binary, so both ways of computing it agree bitwise
    result = _train(experiment, callbacks=[rates, {"name": "lr-step", "step_size": 10, "gamma": 0.5}])
    assert result.history == hand
    _assert_bitwise_equal(result.parameters, {n: p.detach() for n, p in setup.model.named_parameters()})
    assert {epoch: rates.lr[epoch] for epoch in (10, 20, 30)} == {10: 0.05, 20: 0.025, 30: 0.0125}


def test_a_cosine_schedule_follows_the_curve_to_eta_min() -> None:
    rates = Rates()
    _train(epochs=100, log_every=10, callbacks=[rates, {"name": "lr-cosine", "eta_min": 0.001, "every": 10}])
    # the rate in use up to epoch e was set at epoch e - 10
    for epoch in range(20, 101, 10):
        expected = 0.001 + (0.05 - 0.001) * (1 + math.cos(math.pi * (epoch - 10) / 100)) / 2
        assert rates.lr[epoch] == pytest.approx(expected, rel=1e-12)


def test_a_plateau_schedule_reduces_the_rate_once_the_value_stalls() -> None:
    rates = Rates()
    result = _train(
        epochs=600,
        log_every=10,
        callbacks=[rates, {"name": "lr-plateau", "factor": 0.5, "patience": 30, "min_delta": 1e-4}],
    )
    checks = _at(result.validation_history, 10)
    _, first_stall = _expected_stop(checks, patience=30, min_delta=1e-4)
    assert all(rates.lr[epoch] == 0.05 for epoch in rates.lr if epoch <= first_stall)
    assert rates.lr[first_stall + 10] == 0.025


def test_a_schedule_needs_an_optimizer_with_a_learning_rate() -> None:
    with pytest.raises(
        ValidationError,
        match=r"callback 'lr-step' from plugin builtins: optimizer 'lstsq' has no learning rate",
    ):
        _train(optimizer="lstsq", callbacks=["lr-step"])


# -- the run's own callbacks ----------------------------------------------------------------------


def test_the_run_s_own_callbacks_are_listed_and_cannot_be_named_in_an_experiment() -> None:
    names = REGISTRY.names("callback")
    assert {"progress-bar", "checkpoint", "divergence-check", "early-stopping", "lr-plateau"} <= set(names)
    with pytest.raises(
        ValidationError, match=r"callback 'divergence-check' is part of every run .* --divergence-threshold"
    ):
        _train(callbacks=[{"name": "divergence-check", "threshold": 10.0}])


def test_the_progress_bar_comes_from_the_registry(tmp_path: Path) -> None:
    shown = []

    class Plain(Callback):
        def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
            shown.append(epoch)

    class Override:
        @mlbasics.hookimpl
        def mlbasics_callbacks(self) -> list[mlbasics.ComponentSpec]:
            return [
                mlbasics.ComponentSpec(
                    kind="callback", name="progress-bar", factory=Plain, summary="plain", overrides=True
                )
            ]

    registry = Registry.isolated(Override())
    mlbasics.train(CONVERGING, registry=registry, epochs=20, log_every=10, progress=True)
    assert shown == [10, 20]


# -- the command line -----------------------------------------------------------------------------


def test_the_command_line_stops_early_and_json_says_so(tmp_path: Path) -> None:
    done = run_main(
        "train",
        "--dataset",
        "synthetic-linear",
        "--set",
        "dataset.noise=0.5",
        "--model",
        "linear",
        "--lr",
        "0.05",
        "--epochs",
        "1000",
        "--validation",
        "0.25",
        "--metric",
        "r2",
        "--device",
        "cpu",
        "--callback",
        "early-stopping",
        "--set",
        "callbacks.early-stopping.patience=20",
        "--set",
        "callbacks.early-stopping.min_delta=0.0001",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["epochs"] < 1000
    assert "validation_loss did not improve by more than 0.0001" in result["stopped"]
    assert "are restored" in result["stopped"]
    assert {"r2", "validation_r2"} <= set(result["metrics"])
    assert [c["name"] for c in result["callbacks_components"]] == ["early-stopping"]


def test_a_bad_monitor_on_the_command_line_is_one_line_and_creates_no_run_folder(tmp_path: Path) -> None:
    done = run_main(
        "train",
        "examples/tiny.toml",
        "--callback",
        "early-stopping",
        "--set",
        "callbacks.early-stopping.monitor=validation_los",
        "--save",
        str(tmp_path / "run"),
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "mlbasics: error: callback 'early-stopping' from plugin builtins: monitor 'validation_los' names no "
        "value this run computes; the run has no validation rows (hold some out with --validation F) "
        "(it computes: loss)"
    ]
    assert not (tmp_path / "run").exists()


BOOM = """
from mlbasics import Callback, ComponentSpec, Param, hookimpl

class Boom(Callback):
    def __init__(self, at):
        self.at = at

    def on_sync(self, setup, epoch, losses):
        if epoch >= self.at:
            raise ValueError("the log server is gone")

@hookimpl
def mlbasics_callbacks():
    return [ComponentSpec(kind="callback", name="boom", factory=Boom, summary="fails at epoch `at`",
                          params=(Param(name="at", type=int, default=25),))]
"""


def test_a_callback_that_raises_is_named_and_the_last_checkpoint_is_kept(tmp_path: Path) -> None:
    plugin = tmp_path / "boom.py"
    plugin.write_text(BOOM)
    run = tmp_path / "run"
    done = run_main(
        "--plugins-dir",
        str(plugin),
        "train",
        "examples/tiny.toml",
        "--epochs",
        "40",
        "--set",
        "log_every=5",
        "--callback",
        "boom",
        "--save",
        str(run),
        "--checkpoint-every",
        "10",
        "--quiet",
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"mlbasics: error: callback 'boom' from plugin boom failed after epoch 25: ValueError: the log server is "
        f"gone; the checkpoint of epoch 20 is kept in {run}; resume with: mlbasics train --resume {run} "
        "(--debug shows the traceback)"
    ]
    assert mlbasics.Checkpoint.load(run).epoch == 20


def test_the_overfitting_example_stops_early_with_the_best_weights() -> None:
    """The issue's check: a wide MLP on 30 noisy points overfits; early stopping stops it and ends
    with the weights of its best validation loss, and --json says so."""
    done = run_main(
        "train", "examples/overfitting-mlp.toml", "--validation", "0.2", "--metric", "r2",
        "--callback", "early-stopping", "--device", "cpu", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    checks = [(epoch, loss) for epoch, loss in result["validation_history"] if epoch % 10 == 0]
    best_epoch, best = min(checks, key=lambda pair: pair[1])
    assert result["epochs"] == best_epoch + 100 < 2000  # patience 100, checked every 10 epochs
    assert result["stopped"].startswith(
        f"validation_loss did not improve for 100 epochs (best {best:.6g} at epoch {best_epoch}"
    )
    assert f"the weights of epoch {best_epoch} are restored" in result["stopped"]
    assert checks[-1][1] > 1.5 * best  # it had begun to overfit: the last check is much worse
    assert {"r2", "validation_r2"} <= set(result["metrics"])
    # the weights in the JSON are the best epoch's: their validation loss is that epoch's
    setup = mlbasics.prepare(
        Experiment.load("examples/overfitting-mlp.toml")
        .with_value("validation", 0.2)
        .with_value("device", "cpu"),
        REGISTRY,
    )
    setup.model.load_state_dict({name: torch.tensor(value) for name, value in result["parameters"].items()})
    # same weights, rows and operations in the same process: the very same float
    assert float(setup.evaluate_part(setup.validation)) == best
