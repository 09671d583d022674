"""Divergence: a non-finite loss or parameter stops training with the epoch, the last finite loss and
a hint; the threshold stops it earlier; the last finite checkpoint survives; anomaly detection names
the operation."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import Callback, Checkpoint, DivergenceError, Experiment, ValidationError
from mlbasics.training.anomaly import AnomalyError
from mlbasics.training.divergence import smaller_learning_rate
from tests import reliability_plugin

REGISTRY = reliability_plugin.registry()
TOO_FAST = Experiment(
    dataset="synthetic-linear", model="linear", optimizer={"name": "sgd", "lr": 2.0}, epochs=300, device="cpu"
)


def test_a_diverging_run_stops_with_epoch_last_finite_loss_and_a_hint() -> None:
    with pytest.raises(DivergenceError) as error:
        mlbasics.train(TOO_FAST, registry=REGISTRY, log_every=10)
    exc = error.value
    history = exc.history
    bad = next(i for i, loss in enumerate(history) if not math.isfinite(loss))
    assert exc.epoch == bad + 1
    assert exc.last_finite_loss == history[bad - 1]
    assert exc.epoch < 300
    assert len(history) % 10 == 0  # found at a sync point, not per step
    growth = f"{history[bad - 1] / history[0]:.0e}".replace("e+", "e")
    assert exc.suggested_lr is not None
    assert str(exc) == (
        f"training diverged at epoch {exc.epoch} of 300: the loss became {history[bad]} "
        f"(last finite loss {history[bad - 1]:.6g} at epoch {bad}); learning rate 2 is too large for this "
        f"data: the loss grew {growth}-fold in {bad - 1} epochs; try lr ≤ {exc.suggested_lr:g}"
    )


def test_the_suggested_learning_rate_trains_at_the_first_try() -> None:
    """The rate the hint names comes from the loss's own growth (its steepest direction's
    curvature), not a tenth of the rate: taken, it trains to the closed-form fit, and it is not
    needlessly small (the old tenth, 0.2, is below it)."""
    with pytest.raises(DivergenceError) as error:
        mlbasics.train(TOO_FAST, registry=REGISTRY, log_every=10)
    suggested = error.value.suggested_lr
    assert suggested is not None
    assert 0.2 < suggested < 2.0
    result = mlbasics.train(TOO_FAST, registry=REGISTRY, lr=suggested)
    exact = mlbasics.train(TOO_FAST, registry=REGISTRY, optimizer="lstsq")
    assert result.final_loss < 1e-6
    assert torch.allclose(result.parameters["weight"], exact.parameters["weight"], atol=1e-3)


def test_the_threshold_stops_earlier() -> None:
    with pytest.raises(DivergenceError) as unbounded:
        mlbasics.train(TOO_FAST, registry=REGISTRY, log_every=1)
    with pytest.raises(
        DivergenceError, match=r"exceeds the divergence threshold, 100 × the first epoch's loss"
    ) as bounded:
        mlbasics.train(TOO_FAST, registry=REGISTRY, log_every=1, divergence_threshold=100)
    assert bounded.value.epoch < unbounded.value.epoch
    first = bounded.value.history[0]
    assert bounded.value.history[-1] > 100 * first
    assert all(loss <= 100 * first for loss in bounded.value.history[:-1])


def test_the_last_finite_checkpoint_is_kept(tmp_path: Path) -> None:
    with pytest.raises(DivergenceError) as error:
        mlbasics.train(TOO_FAST, registry=REGISTRY, log_every=5, save=tmp_path, checkpoint_every=5)
    checkpoint = Checkpoint.load(tmp_path)
    assert checkpoint.epoch < error.value.epoch
    assert all(math.isfinite(loss) for loss in checkpoint.history)
    assert all(bool(t.isfinite().all()) for t in checkpoint.weights.values())


def test_a_non_finite_parameter_is_caught_even_when_the_loss_was_finite() -> None:
    experiment = Experiment(
        dataset="tiny", model="linear", optimizer={"name": "poison-sgd", "after": 3}, epochs=50, device="cpu"
    )
    with pytest.raises(
        DivergenceError,
        match=r"^training diverged at epoch 3 of 50: parameter 'bias' is no longer finite after the update of "
        r"epoch 3 \(last finite loss [\d.e+-]+ at epoch 3\); the loss was not growing before it stopped being "
        r"finite, so the step size is probably not to blame: rerun with anomaly detection",
    ):
        mlbasics.train(experiment, registry=REGISTRY, log_every=1)


def test_nan_data_gets_a_hint_about_the_data() -> None:
    with pytest.raises(
        DivergenceError,
        match=r"at epoch 1 of 5: the loss became nan \(no finite loss before it\); "
        r"the loss was not finite from the first epoch: check the data",
    ):
        mlbasics.train(
            Experiment(dataset="nan-data", model="linear", epochs=5, device="cpu"), registry=REGISTRY
        )


def test_a_sane_run_is_not_stopped() -> None:
    result = mlbasics.train(
        TOO_FAST, registry=REGISTRY, optimizer={"name": "sgd", "lr": 0.1}, divergence_threshold=2
    )
    assert result.epochs == 300


@pytest.mark.parametrize("threshold", [1.0, 0.5, -3.0, math.inf, math.nan])
def test_a_threshold_must_be_above_one(threshold: float) -> None:
    with pytest.raises(ValidationError, match=r"divergence threshold must be a finite number > 1"):
        mlbasics.train(TOO_FAST, registry=REGISTRY, divergence_threshold=threshold)


@pytest.mark.parametrize(("lr", "smaller"), [(1.0, 0.1), (0.3, 0.03), (0.25, 0.02), (5.0, 0.5), (2e-3, 2e-4)])
def test_smaller_learning_rate(lr: float, smaller: float) -> None:
    assert smaller_learning_rate(lr) == smaller


def test_anomaly_detection_names_the_operation() -> None:
    setup = mlbasics.prepare(TOO_FAST.with_value("log_every", 300), REGISTRY)
    with pytest.raises(AnomalyError) as error, mlbasics.detect_anomaly(setup):
        mlbasics.fit(setup)
    exc = error.value
    assert exc.function.endswith("Backward0")
    assert str(exc).startswith(
        f"anomaly detection: the backward pass of {exc.function.removesuffix('Backward0')} ({exc.function}) returned NaN in its output "
    )
    done = len(setup.history)
    assert f"in one of epochs {done + 1} to 300" in str(exc)
    assert exc.details is not None
    assert "Traceback of forward call that caused the error" in exc.details


def test_anomaly_detection_names_the_epochs_of_the_interval_the_loop_used() -> None:
    class SyncEvery100(Callback):  # as a checkpointer with a shorter interval does
        sync_every = 100

    setup = mlbasics.prepare(TOO_FAST.with_value("log_every", 300), REGISTRY)
    with pytest.raises(AnomalyError) as error, mlbasics.detect_anomaly(setup):
        mlbasics.fit(setup, [SyncEvery100()])
    done = len(setup.history)
    assert f"in one of epochs {done + 1} to {done + 100};" in str(error.value)


def test_anomaly_detection_lets_other_errors_through() -> None:
    with pytest.raises(RuntimeError, match="unrelated"), mlbasics.detect_anomaly():
        raise RuntimeError("unrelated")


def test_anomaly_detection_re_emits_other_warnings_once_through_the_filters() -> None:
    # In a subprocess with a timeout: the bug this guards against was an endless loop.
    probe = (
        "import warnings, mlbasics\n"
        "with mlbasics.detect_anomaly():\n"
        "    warnings.warn('a plain warning')\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('ignore')\n"
        "    with mlbasics.detect_anomaly():\n"
        "        warnings.warn('an ignored warning')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stderr.count("UserWarning: a plain warning") == 1
    assert "an ignored warning" not in result.stderr
    assert "Anomaly Detection has been enabled" not in result.stderr
