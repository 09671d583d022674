"""Training with the plugin's components through mlbasics' own loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import Registry

SYNTHETIC = {"name": "synthetic-linear", "weights": [1.0, 2.0, 3.0], "bias": 5.0}


def _learned(result: mlbasics.TrainResult) -> list[float]:
    return [*result.parameters["weight"][0].tolist(), *result.parameters["bias"].tolist()]


@pytest.mark.parametrize(
    ("optimizer", "epochs", "tolerance"),
    [
        ({"name": "adam", "lr": 0.1}, 300, 1e-3),
        ({"name": "adamw", "lr": 0.1, "weight_decay": 0.0}, 300, 1e-3),
        ({"name": "rmsprop", "lr": 0.01}, 1500, 1e-2),
        ({"name": "lbfgs"}, 3, 1e-4),
    ],
    ids=lambda value: value["name"] if isinstance(value, dict) else str(value),
)
def test_each_optimizer_finds_the_true_line(
    registry: Registry, optimizer: dict[str, object], epochs: int, tolerance: float
) -> None:
    result = mlbasics.train(
        dataset=SYNTHETIC, model="linear", optimizer=optimizer, epochs=epochs, registry=registry
    )
    assert _learned(result) == pytest.approx([1.0, 2.0, 3.0, 5.0], abs=tolerance)
    assert result.components["optimizer"].name == optimizer["name"]


def test_lbfgs_gets_its_closure_and_converges_in_one_step(registry: Registry) -> None:
    # L-BFGS refuses to step without a closure; one of its steps (up to 20 inner iterations, each
    # re-evaluating the loss through the closure) reaches the minimum, where 50 steps of SGD at
    # its default lr are still far off.
    lbfgs = mlbasics.train(dataset=SYNTHETIC, model="linear", optimizer="lbfgs", epochs=2, registry=registry)
    sgd = mlbasics.train(dataset=SYNTHETIC, model="linear", optimizer="sgd", epochs=50, registry=registry)
    assert lbfgs.history[0] == pytest.approx(sgd.history[0])  # same seed, same start
    assert lbfgs.final_loss < 1e-8
    assert sgd.final_loss > 1.0


def _line_with_an_outlier(tmp_path: Path) -> Path:
    """y = 2x + 1 at x = 0..9, except one wildly wrong reading."""
    rows = [(x, 2 * x + 1) for x in range(10)]
    rows[4] = (4, 100)
    path = tmp_path / "outlier.csv"
    path.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in rows))
    return path


def test_l1_ignores_an_outlier_that_pulls_mse_away(registry: Registry, tmp_path: Path) -> None:
    data = {"name": "csv", "path": str(_line_with_an_outlier(tmp_path))}
    fits = {
        loss: _learned(
            mlbasics.train(
                dataset=data, model="linear", loss=loss, optimizer="lbfgs", epochs=20, registry=registry
            )
        )
        for loss in ("l1", "mse")
    }
    assert fits["l1"] == pytest.approx([2.0, 1.0], abs=1e-3)
    assert abs(fits["mse"][0] - 2.0) > 0.5  # the squared error is dragged by the outlier


@pytest.mark.parametrize("loss", ["huber", "smooth-l1"])
def test_robust_losses_stay_close_to_the_line(registry: Registry, tmp_path: Path, loss: str) -> None:
    data = {"name": "csv", "path": str(_line_with_an_outlier(tmp_path))}
    result = mlbasics.train(
        dataset=data, model="linear", loss=loss, optimizer="lbfgs", epochs=20, registry=registry
    )
    slope, intercept = _learned(result)
    assert slope == pytest.approx(2.0, abs=0.05)
    assert intercept == pytest.approx(1.0, abs=0.2)
    assert torch.isfinite(torch.tensor(result.history)).all()
