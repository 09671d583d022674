"""Metrics computed during training: their values against plain references computed here in
float64 with numpy, on the rows of each part; in the data's own units when the data were
standardized; recorded at every sync point and on the test rows once; copied out with the losses.

Tolerances. In ``test_every_metric_matches_a_plain_reference_on_every_part`` the model and the loss
are the lecture's MLP and MSE computed in float64 (the ``FLOAT64`` stand-ins), so every quantity is
float64 (u = 2^-53 ≈ 1.1e-16). The reference's predictions are the same model's on the same rows,
possibly in other batch shapes: they differ by at most γ_m·|W|·|x| (m the roundings along one
output), which the test computes and requires to be below 1e-12. A metric's reductions over at most
n = 1000 rows are off by at most γ_{n+2} ≈ 1.1e-13 relative (a bound for recursive summation; pairwise
summation does better). R² is a ratio of two such sums, subtracted from 1: its error is at most
(γ + γ)·|SS_res/SS_tot| ≤ 3e-13·(1 + |R²|). FLOAT64_METRIC_TOLERANCE = 1e-9·(1 + |value|) leaves
three orders of magnitude to spare without depending on how this CPU rounds. The targets stay
float32 (the data are), so R²'s and explained variance's SS_tot, a sum of the targets alone, is
float32 arithmetic: its own bound (:func:`_float32_total_bound`, a worst case of about 1e-4) is
added for those two; ``test_r2_to_float64_precision_where_the_targets_sums_are_exact`` checks them
without it, on targets whose float32 sums are exact.

``test_metrics_are_in_the_data_units_when_the_data_are_standardized`` is float32 throughout
(u = 2^-24): see :func:`_standardized_bound` for its bound, derived row by row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import mlbasics
from mlbasics import Experiment, Registry, TrainResult
from mlbasics.data.splits import split_rows
from tests._rounding import gamma, linear_layers, magnitude, roundings, unit_roundoff
from tests._stand_ins import FLOAT64

ALL_METRICS = ("mse", "rmse", "mae", "max-error", "r2", "explained-variance")
FLOAT64_METRIC_TOLERANCE = 1e-9


def reference(name: str, prediction: np.ndarray, target: np.ndarray) -> float:
    """The metric ``name`` as a textbook writes it, per output, averaged over outputs."""
    error = target - prediction
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    if name == "mse":
        return float((error**2).mean())
    if name == "rmse":
        return math.sqrt(float((error**2).mean()))
    if name == "mae":
        return float(np.abs(error).mean())
    if name == "max-error":
        return float(np.abs(error).max())
    if name == "r2":
        return float((1 - (error**2).sum(axis=0) / total).mean())
    if name == "explained-variance":
        return float((1 - ((error - error.mean(axis=0)) ** 2).sum(axis=0) / total).mean())
    raise AssertionError(name)


def _parts(result: TrainResult) -> dict[str, torch.Tensor]:
    """Each part's row numbers, split here as the experiment says (the split is documented to be
    the same everywhere for the same table, fractions and seed)."""
    experiment = result.experiment
    split = split_rows(
        result.dataset.n_samples,
        validation=experiment.validation,
        test=experiment.test,
        seed=experiment.split_seed,
    )
    return {"": split.train, "validation_": split.validation, "test_": split.test}


def _value(result: TrainResult, key: str) -> float:
    return result.metrics[key]


@pytest.fixture(scope="module")
def float64_run() -> TrainResult:
    experiment = Experiment(
        model="mlp-float64",
        loss="mse-float64",
        epochs=30,
        log_every=10,
        device="cpu",
        validation=0.2,
        test=0.1,
        metrics=ALL_METRICS,
    )
    return mlbasics.train(experiment, registry=Registry.isolated(FLOAT64))


def test_every_metric_matches_a_plain_reference_on_every_part(float64_run: TrainResult) -> None:
    result = float64_run
    x = result.dataset.features.double()
    y = result.dataset.targets.double()
    layers = linear_layers(result.model)
    prediction_error = gamma(roundings(layers), torch.float64) * float(magnitude(layers, x).max())
    assert prediction_error < 1e-12  # the premise of the tolerance (the module's docstring)
    with torch.no_grad():
        predicted = result.model(x)
    assert predicted.dtype == torch.float64
    for prefix, rows in _parts(result).items():
        assert len(rows) > 0
        p, t = predicted[rows].numpy(), y[rows].numpy()
        for name in ALL_METRICS:
            expected = reference(name, p, t)
            tolerance = FLOAT64_METRIC_TOLERANCE * (1 + abs(expected))
            if name in ("r2", "explained-variance"):  # SS_tot, of the float32 targets alone
                tolerance += 2 * abs(1 - expected) * _float32_total_bound(t)
            got = _value(result, prefix + name)
            assert abs(got - expected) <= tolerance, (prefix + name, got, expected, tolerance)


def _float32_total_bound(target: np.ndarray) -> float:
    """A bound on the relative error of SS_tot = Σ (t - mean t)² computed in float32 from float32
    targets (the data are float32; only the predictions are float64 in the test above): the mean
    is off by e_m <= γ_{n+1}·mean|t|, each deviation by e_m + u·(|d| + e_m), and squaring and
    summing add u and γ_n of the squares' sum. R² = 1 - SS_res/SS_tot then moves by at most
    |1 - R²| times that relative error (to first order; doubled by the caller for the rest)."""
    f32 = torch.float32
    n, u = len(target), unit_roundoff(f32)
    deviation = np.abs(target - target.mean(axis=0))
    mean_error = gamma(n + 1, f32) * np.abs(target).mean(axis=0)
    deviation_error = mean_error + u * (deviation + mean_error)
    total = (deviation**2).sum(axis=0)
    error = (2 * deviation * deviation_error + deviation_error**2).sum(axis=0)
    error += gamma(n + 1, f32) * ((deviation + deviation_error) ** 2).sum(axis=0)
    return float((error / total).max())


def test_r2_to_float64_precision_where_the_targets_sums_are_exact() -> None:
    """R² and explained variance without the float32 allowance above: 1024 targets, half 0 and
    half 2, so that every float32 step of SS_tot is exact (the sum 1024, the mean 1 after a
    division by a power of two, each deviation ±1 and its square 1, their sum 1024) and the rest
    is float64, within FLOAT64_METRIC_TOLERANCE of the reference."""
    rows = [(4 * i / 1024 - 2, 0.0 if i < 512 else 2.0) for i in range(1024)]
    step = mlbasics.Dataset.from_rows(rows)

    class Step:
        @mlbasics.hookimpl
        def mlbasics_datasets(self) -> list[mlbasics.ComponentSpec]:
            return [
                mlbasics.ComponentSpec(kind="dataset", name="step", factory=lambda: step, summary="a step")
            ]

    result = mlbasics.train(
        registry=Registry.isolated(FLOAT64, Step()),
        dataset="step",
        model="mlp-float64",
        loss="mse-float64",
        optimizer={"name": "sgd", "lr": 0.1},
        epochs=50,
        log_every=25,
        device="cpu",
        metrics=["r2", "explained-variance"],
    )
    with torch.no_grad():
        predicted = result.model(step.features.double()).numpy()
    targets = step.targets.double().numpy()
    for name in ("r2", "explained-variance"):
        expected = reference(name, predicted, targets)
        assert 0.1 < expected < 1  # a fit that explains some of the variance, not all
        got = result.metrics[name]
        assert abs(got - expected) <= FLOAT64_METRIC_TOLERANCE * (1 + abs(expected)), (name, got, expected)


def test_metrics_are_recorded_at_every_sync_point_and_on_the_test_rows_once(float64_run: TrainResult) -> None:
    result = float64_run
    names = [*ALL_METRICS, *(f"validation_{name}" for name in ALL_METRICS)]
    assert sorted(result.metric_history) == sorted(names)
    sync_epochs = [epoch for epoch, _ in result.validation_history]
    assert sync_epochs == [10, 20, 30]
    for name in names:
        assert [epoch for epoch, _ in result.metric_history[name]] == sync_epochs, name
        assert all(math.isfinite(value) for _, value in result.metric_history[name])
    assert sorted(result.test_metrics) == sorted(ALL_METRICS)
    assert sorted(result.metrics) == sorted([*names, *(f"test_{name}" for name in ALL_METRICS)])
    assert result.metric_modes == {
        name: "max" if name in ("r2", "explained-variance") else "min" for name in ALL_METRICS
    }
    # R² on the training rows improves as the loss falls (30 epochs of the lecture's MLP)
    r2 = [value for _, value in result.metric_history["r2"]]
    assert r2[0] < r2[-1]


def test_the_mse_metric_on_the_validation_rows_is_the_validation_loss(float64_run: TrainResult) -> None:
    # Two computations of one number, both float64: the same rows, the same parameters.
    for (epoch, loss), (metric_epoch, mse) in zip(
        float64_run.validation_history, float64_run.metric_history["validation_mse"], strict=True
    ):
        assert epoch == metric_epoch
        assert mse == pytest.approx(loss, rel=FLOAT64_METRIC_TOLERANCE)


def test_metrics_of_the_parameters_after_the_sync_epoch(registry: Registry) -> None:
    """A callback sees, at each sync point, the values of the parameters it can read then."""
    seen: list[tuple[int, float, float]] = []

    class Check(mlbasics.Callback):
        def on_sync(self, setup: mlbasics.Setup, epoch: int, losses: torch.Tensor) -> None:
            with torch.no_grad():
                error = (setup.model(setup.features) - setup.targets).abs().double().mean()
            seen.append((epoch, setup.values["mae"], float(error)))

    result = mlbasics.train(
        dataset="synthetic-linear",
        model="linear",
        epochs=12,
        log_every=4,
        device="cpu",
        metrics=["mae"],
        callbacks=[Check()],
    )
    assert [epoch for epoch, _, _ in seen] == [4, 8, 12]
    assert [(epoch, value) for epoch, value, _ in seen] == result.metric_history["mae"]
    # float32 both: the same rows' mean of |error|, summed in different orders at most (γ_{n+2}, n = 100)
    for _, value, here in seen:
        assert value == pytest.approx(here, rel=2 * gamma(102, torch.float32))


def _standardized_predictions(
    result: TrainResult, x: torch.Tensor, y: torch.Tensor
) -> tuple[np.ndarray, ...]:
    """A linear model's predictions on standardized features and targets, computed here in
    float64 from the run's float32 parameters and statistics, and per row a bound on how far the
    run's float32 values can be from them: for the prediction and for the target as the run
    computes it, both in data units.

    The run's prediction is ((x - m_x) / s_x)·W' + b' in scaled units, then ·s_y + m_y. Scaling x
    rounds twice (γ_2 of |x| + |m_x|, over s_x); the linear layer adds γ_{d+1} of |W||x_s| + |b|
    and carries the input's error through |W|; unscaling rounds twice more (γ_2 of |o|·s_y + |m_y|).
    The target goes to scaled units and back: four roundings, γ_4·(|y| + 2|m_y|). These are first
    order; each bound is doubled for the rest."""
    scaling = result.standardization
    assert scaling is not None
    assert scaling.target_mean is not None
    assert scaling.target_std is not None
    mean_x, std_x = scaling.feature_mean.double(), scaling.feature_std.double()
    mean_y, std_y = scaling.target_mean.double(), scaling.target_std.double()
    layer = linear_layers(result.model)[0]
    weight, bias = layer.weight.detach().double(), layer.bias.detach().double()
    scaled = (x - mean_x) / std_x
    prediction = (scaled @ weight.T + bias) * std_y + mean_y
    scaled_error = gamma(2, torch.float32) * (x.abs() + mean_x.abs()) / std_x
    output = scaled.abs() @ weight.abs().T + bias.abs()
    output_error = gamma(layer.in_features + 1, torch.float32) * output + scaled_error @ weight.abs().T
    prediction_bound = 2 * (output_error * std_y + gamma(2, torch.float32) * (output * std_y + mean_y.abs()))
    target_bound = 2 * gamma(4, torch.float32) * (y.abs() + 2 * mean_y.abs())
    return prediction.numpy(), prediction_bound.numpy(), target_bound.numpy()


def test_metrics_are_in_the_data_units_when_the_data_are_standardized(registry: Registry) -> None:
    result = mlbasics.train(
        dataset="synthetic-linear",
        model="linear",
        epochs=40,
        log_every=20,
        device="cpu",
        optimizer={"name": "sgd", "lr": 0.05},
        validation=0.25,
        standardize="features+target",
        metrics=["mae", "rmse", "max-error"],
    )
    x, y = result.dataset.features.double(), result.dataset.targets.double()
    predicted, prediction_bound, target_bound = _standardized_predictions(result, x, y)
    assert result.standardization is not None
    assert result.standardization.target_std is not None
    std_y = float(result.standardization.target_std)
    assert std_y > 2  # so that a value in scaled units could not pass for one in data units
    u = unit_roundoff(torch.float32)
    for prefix, rows in _parts(result).items():
        if not len(rows):
            continue
        p, t = predicted[rows], y[rows].numpy()
        # |Δ error| per row, then through each metric: a mean of n rows adds γ_{n+2} relative
        delta = (prediction_bound[rows] + target_bound[rows]).ravel()
        errors = np.abs(p - t).ravel()
        sum_rounding = gamma(len(rows) + 2, torch.float32)
        mae, rmse = reference("mae", p, t), reference("rmse", p, t)
        mse_bound = (2 * errors * delta + delta**2).mean() + sum_rounding * ((errors + delta) ** 2).mean()
        bounds = {
            "mae": delta.mean() + sum_rounding * (mae + delta.mean()) + u * mae,
            "rmse": mse_bound / rmse + 2 * u * rmse,  # |Δ√v| <= |Δv| / √v, then the root's rounding
            "max-error": delta.max() + u * errors.max(),
        }
        for name, bound in bounds.items():
            expected = reference(name, p, t)
            got = _value(result, prefix + name)
            assert abs(got - expected) <= bound, (prefix + name, got, expected, bound)
            assert abs(got / std_y - expected) > 100 * bound  # what scaled units would have given


def test_each_sync_point_copies_losses_and_metrics_out_in_one_transfer(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What can be seen of the loop's transfers on any machine: every copy to the host
    (``Tensor.cpu``) and every read of a value (``item``) the bare loop makes. Each sync point
    copies its interval's 5 losses, the validation loss and the 2 metrics on 2 parts in one
    ``cpu()``; the only other copies are the learned parameters', once, for the result."""
    from mlbasics.engine.loop import fit
    from mlbasics.engine.setup import prepare

    experiment = Experiment(
        dataset="synthetic-linear", model="linear", epochs=20, log_every=5, device="cpu", validation=0.2
    )
    setup = prepare(experiment.with_value("metrics", ["r2", "mae"]))
    copies: list[tuple[str, int]] = []
    for method in ("cpu", "item"):
        original = getattr(torch.Tensor, method)

        def counted(
            tensor: torch.Tensor, *args: object, _method: str = method, _original: Any = original
        ) -> Any:
            copies.append((_method, tensor.numel()))
            return _original(tensor, *args)

        monkeypatch.setattr(torch.Tensor, method, counted)
    result = fit(setup, [])
    monkeypatch.undo()
    parameters = [value.numel() for value in result.parameters.values()]
    assert copies == [("cpu", 5 + 1 + 2 * 2)] * 4 + [("cpu", n) for n in parameters]
    assert [epoch for epoch, _ in result.metric_history["validation_mae"]] == [5, 10, 15, 20]
