"""Pictures of a training run: the loss curve and, for data with one feature, the fitted curve.

matplotlib is an optional extra (``pip install 'mlbasics[plot]'``); it is imported only here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mlbasics._files import atomic_path, check_output_path
from mlbasics.errors import MlbasicsError

if TYPE_CHECKING:
    from mlbasics.sweeps import SweepResult
    from mlbasics.training import TrainResult


def check_can_plot(path: str | Path) -> None:
    """Fail before training, not after, if the plot could not be written."""
    if importlib.util.find_spec("matplotlib") is None:
        raise MlbasicsError("plotting needs matplotlib: pip install 'mlbasics[plot]'")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise MlbasicsError(f"plot file {str(path)!r} must end in .png")
    check_output_path(path, what="plot file")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def training_figure(result: TrainResult) -> Any:
    """A figure with the loss per epoch and, if the data has one feature, the fit over the data."""
    plt = _pyplot()
    one_feature = result.dataset.n_features == 1
    figure, axes = plt.subplots(
        1, 2 if one_feature else 1, figsize=(11 if one_feature else 6, 4), squeeze=False
    )
    loss_axes = axes[0][0]
    epochs = range(1, len(result.history) + 1)
    loss_axes.plot(epochs, result.history, color="tab:blue", label="training")
    held_out = result.validation_history
    if held_out:
        loss_axes.plot(
            [epoch for epoch, _ in held_out],
            [loss for _, loss in held_out],
            color="tab:orange",
            label="validation",
        )
        loss_axes.legend()
    if min(result.history) > 0 and all(loss > 0 for _, loss in held_out):
        loss_axes.set_yscale("log")
    title = "Training and validation loss" if held_out else "Training loss"
    loss_axes.set(xlabel="epoch", ylabel=f"loss ({result.components['loss'].name})", title=title)
    loss_axes.grid(True, alpha=0.3)
    if one_feature:
        fit_axes = axes[0][1]
        x, y = result.dataset.features[:, 0], result.dataset.targets[:, 0]
        grid = torch.linspace(float(x.min()), float(x.max()), 200).unsqueeze(1)
        fit_axes.scatter(x, y, s=12, alpha=0.5, color="tab:gray", label="data")
        fit_axes.plot(grid[:, 0], result.predict(grid)[:, 0], color="tab:red", linewidth=2, label="model")
        fit_axes.set(
            xlabel=result.dataset.feature_names[0],
            ylabel=result.dataset.target_name,
            title=f"Fit: {result.components['model'].name} on {result.components['dataset'].name}",
        )
        fit_axes.legend()
        fit_axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def save_figure(figure: Any, path: str | Path) -> None:
    """Write ``figure`` as a PNG, atomically, and close it."""
    plt = _pyplot()
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=120)
    finally:
        plt.close(figure)


def save_training_plot(result: TrainResult, path: str | Path) -> None:
    save_figure(training_figure(result), path)


def sweep_figure(result: SweepResult) -> Any:
    """Every member's loss curve in one picture, the best one drawn over the rest."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    best = result.best
    few = len(result.members) <= 10
    positive = True
    for member in result.members:
        history = member.history.clone()
        history[~torch.isfinite(history)] = float("nan")  # a diverged member's curve just ends
        positive = positive and bool((history[~history.isnan()] > 0).all())
        axes.plot(
            range(1, len(history) + 1),
            history,
            linewidth=1.0,
            alpha=0.8 if few else 0.25,
            label=member.label if few and member is not best else None,
        )
    axes.plot(
        range(1, len(best.history) + 1), best.history, color="black", linewidth=2, label=f"best: {best.label}"
    )
    if positive:
        axes.set_yscale("log")
    loss_name = result.experiment.loss.name
    axes.set(
        xlabel="epoch",
        ylabel=f"loss ({loss_name})",
        title=f"{len(result.members)} members ({result.mode}, {result.device})",
    )
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def save_sweep_plot(result: SweepResult, path: str | Path) -> None:
    save_figure(sweep_figure(result), path)
