"""Pictures of a training run: the loss curve and, for data with one feature, the fitted curve.

matplotlib is an optional extra (``pip install 'mlbasics[plot]'``); it is imported only here.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mlbasics._files import atomic_path, check_output_path
from mlbasics.errors import DivergenceError, MlbasicsError

if TYPE_CHECKING:
    from mlbasics.engine.results import TrainResult
    from mlbasics.engine.setup import Setup
    from mlbasics.sweeps.grid import SweepResult


def check_matplotlib() -> None:
    """Refuse, in one line, to draw without matplotlib (an optional extra)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise MlbasicsError("plotting needs matplotlib: pip install 'mlbasics[plot]'")


def check_can_plot(path: str | Path) -> None:
    """Fail before training, not after, if the plot could not be written."""
    check_matplotlib()
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise MlbasicsError(f"plot file {str(path)!r} must end in .png")
    check_output_path(path, what="plot file")


def _figure(width: float, height: float) -> Any:
    """A figure outside pyplot: nothing global changes (a notebook's backend and its inline
    pictures stay as they are) and nothing is kept alive once the figure is dropped."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


#: A training figure draws at most this many metrics, a panel each (the rest are in the result).
METRIC_PANELS = 4


def training_figure(result: TrainResult) -> Any:
    """A figure with the loss per epoch, the fit over the data if it has one feature, and a panel
    per metric (its values at the sync points, on the training and validation rows)."""
    # The fit of real-valued targets over one feature (class labels: their pictures are their own).
    one_feature = result.dataset.n_features == 1 and getattr(result.dataset, "classes", None) is None
    metrics = [name for name in result.metric_modes if result.metric_history.get(name)][:METRIC_PANELS]
    panels = 1 + one_feature + len(metrics)
    columns = 2 if panels == 4 else min(panels, 3)
    rows = -(-panels // columns)
    figure = _figure(11 if columns == 2 else 6 if columns == 1 else 15, 4 * rows)
    grid = figure.subplots(rows, columns, squeeze=False).flatten()
    for unused in grid[panels:]:
        unused.set_visible(False)
    draw_losses(grid[0], result.history, result.components["loss"].name, validation=result.validation_history)
    if one_feature:
        _draw_fit(grid[1], result)
    for axes, name in zip(grid[1 + one_feature :], metrics, strict=False):
        draw_metric(
            axes,
            name,
            result.metric_history[name],
            validation=result.metric_history.get(f"validation_{name}", []),
            mode=result.metric_modes[name],
            epochs=result.epochs,
        )
    figure.tight_layout()
    return figure


def _draw_fit(fit_axes: Any, result: TrainResult) -> None:
    """The data's points and the model's curve over them, for data with one feature."""
    x = result.dataset.features[:, 0]
    grid = torch.linspace(float(x.min()), float(x.max()), 200).unsqueeze(1)
    predicted = result.predict(grid)
    several = result.dataset.n_targets > 1
    for column, name in enumerate(result.dataset.target_names):
        data_color, model_color = ("tab:gray", "tab:red") if not several else (f"C{column}", f"C{column}")
        fit_axes.scatter(
            x,
            result.dataset.targets[:, column],
            s=12,
            alpha=0.5,
            color=data_color,
            label=f"{name} (data)" if several else "data",
        )
        fit_axes.plot(
            grid[:, 0],
            predicted[:, column],
            color=model_color,
            linewidth=2,
            label=f"{name} (model)" if several else "model",
        )
    fit_axes.set(
        xlabel=result.dataset.feature_names[0],
        ylabel=result.dataset.target_name,
        title=f"Fit: {result.components['model'].name} on {result.components['dataset'].name}",
    )
    fit_axes.legend()
    fit_axes.grid(True, alpha=0.3)


def draw_metric(
    axes: Any,
    name: str,
    training: Sequence[tuple[int, float]],
    *,
    validation: Sequence[tuple[int, float]] = (),
    mode: str = "min",
    epochs: int | None = None,
) -> None:
    """A metric's ``(epoch, value)`` points on the training rows and, if any, the validation rows.
    An error (``mode`` "min") that stays positive is drawn on a log scale, as the loss is; a score
    (``mode`` "max", such as R²) that starts below 0 and rises above it has its axis cut at 0 (the
    targets' mean scores 0), so that a first R² of -1000 does not flatten the rest of the curve."""
    for pairs, color, label in ((training, "tab:blue", "training"), (validation, "tab:orange", "validation")):
        if pairs:
            axes.plot([epoch for epoch, _ in pairs], [value for _, value in pairs], color=color, label=label)
    values = [value for _, value in [*training, *validation] if math.isfinite(value)]
    label = name
    if values and mode == "min" and min(values) > 0:
        axes.set_yscale("log")
    elif values and mode == "max" and min(values) < 0 < max(values):
        axes.set_ylim(-0.05 * max(values), 1.05 * max(values))
        label += " (values below 0 off the axis)"
    if epochs is not None:
        axes.set_xlim(0, max(epochs, 1))
    if validation:
        axes.legend()
    better = "higher is better" if mode == "max" else "lower is better"
    axes.set(xlabel="epoch", ylabel=label, title=f"{name} ({better})")
    axes.grid(True, alpha=0.3)


def draw_losses(
    axes: Any,
    history: Sequence[float],
    loss_name: str,
    *,
    epochs: int | None = None,
    start: int = 0,
    validation: Sequence[tuple[int, float]] = (),
) -> None:
    """The loss per epoch on ``axes`` (log scale when every loss is positive), and the validation
    loss at its ``(epoch, loss)`` points if there are any; ``epochs``, if given, fixes the x axis to
    the whole run, so a live plot's curve grows across a still frame."""
    finite = [value for value in [*history, *(loss for _, loss in validation)] if math.isfinite(value)]
    axes.plot(range(start + 1, start + len(history) + 1), history, color="tab:blue", label="training")
    if validation:
        axes.plot(
            [epoch for epoch, _ in validation],
            [loss for _, loss in validation],
            color="tab:orange",
            label="validation",
        )
        axes.legend()
    if finite and min(finite) > 0:
        axes.set_yscale("log")
    if epochs is not None:
        axes.set_xlim(0, max(epochs, 1))
    title = "Training and validation loss" if validation else "Training loss"
    axes.set(xlabel="epoch", ylabel=f"loss ({loss_name})", title=title)
    axes.grid(True, alpha=0.3)


def loss_figure(
    history: Sequence[float], loss_name: str, *, epochs: int | None = None, start: int = 0
) -> Any:
    """A figure of the loss curve alone (a checkpoint's, or a run's while it trains)."""
    figure = _figure(6, 3.5)
    draw_losses(figure.subplots(), history, loss_name, epochs=epochs, start=start)
    figure.tight_layout()
    return figure


def live_figure(setup: Setup, epochs: int) -> Any:
    """A run's figure while it trains: the loss (and validation loss) and, if the experiment has
    metrics, a panel for the first one, as the progress bar shows it; the x axes span ``epochs``."""
    loss_name = setup.components["loss"].name
    name = next(iter(setup.metrics), None)
    if name is None:
        figure = _figure(6, 3.5)
        draw_losses(
            figure.subplots(), setup.history, loss_name, epochs=epochs, validation=setup.validation_history
        )
    else:
        figure = _figure(11, 3.5)
        loss_axes, metric_axes = figure.subplots(1, 2)
        draw_losses(loss_axes, setup.history, loss_name, epochs=epochs, validation=setup.validation_history)
        draw_metric(
            metric_axes,
            name,
            setup.metric_history.get(name, []),
            validation=setup.metric_history.get(f"validation_{name}", []),
            mode=setup.metrics[name].mode,
            epochs=epochs,
        )
    figure.tight_layout()
    return figure


def save_figure(figure: Any, path: str | Path) -> None:
    """Write ``figure`` as a PNG, atomically; a figure pyplot keeps (one of docs/figures.py's) is closed."""
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=120)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(figure)


def save_training_plot(result: TrainResult, path: str | Path) -> None:
    save_figure(training_figure(result), path)


def divergence_figure(error: DivergenceError, loss_name: str | None = None) -> Any:
    """The loss of a run that diverged, up to the divergence (``error.history``; its non-finite
    values are where the curve ends), with the epoch it was found at marked."""
    figure = _figure(6, 3.5)
    axes = figure.subplots()
    history = [loss if math.isfinite(loss) else math.nan for loss in error.history]
    draw_losses(axes, history, loss_name or "")
    if loss_name is None:
        axes.set_ylabel("loss")
    axes.axvline(
        error.epoch, color="tab:red", linestyle="--", linewidth=1, label=f"diverged (epoch {error.epoch})"
    )
    axes.legend(fontsize="small")
    axes.set_title(f"Training loss up to the divergence at epoch {error.epoch}")
    figure.tight_layout()
    return figure


def comparison_figure(results: Sequence[TrainResult], labels: Sequence[str] | None = None) -> Any:
    """Several runs' loss curves on one axes (each run's validation loss dashed, in its colour),
    labelled by ``labels`` or else by what differs between their experiments."""
    if labels is not None and len(labels) != len(results):
        raise MlbasicsError(f"plot: {len(labels)} labels for {len(results)} results")
    names = list(labels) if labels is not None else differences([r.experiment for r in results])
    figure = _figure(8, 5)
    axes = figure.subplots()
    finite: list[float] = []
    for index, (result, name) in enumerate(zip(results, names, strict=True)):
        colour = f"C{index % 10}"
        history = [loss if math.isfinite(loss) else math.nan for loss in result.history]
        axes.plot(range(1, len(history) + 1), history, color=colour, label=name)
        if result.validation_history:
            epochs, losses = zip(*result.validation_history, strict=True)
            axes.plot(epochs, losses, color=colour, linestyle="--", label=f"{name} (validation)")
            finite += [loss for loss in losses if math.isfinite(loss)]
        finite += [loss for loss in history if math.isfinite(loss)]
    if finite and min(finite) > 0:
        axes.set_yscale("log")
    loss_names = sorted({result.components["loss"].name for result in results})
    axes.set(xlabel="epoch", ylabel=f"loss ({', '.join(loss_names)})", title=f"{len(results)} runs compared")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def differences(experiments: Sequence[Any]) -> list[str]:
    """A label per experiment naming what differs between them, by the keys ``--set`` takes:
    ``["optimizer.lr=0.1", "optimizer.lr=0.01"]``; ``run 1``, ``run 2``, ... where nothing does."""
    flat = [_flat(experiment.to_dict()) for experiment in experiments]
    keys = list(dict.fromkeys(key for values in flat for key in values))
    varying = [key for key in keys if len({repr(values.get(key)) for values in flat}) > 1]
    if not varying:
        return [f"run {index}" for index in range(1, len(experiments) + 1)]
    return [
        ", ".join(f"{key}={values[key]!r}" if key in values else f"{key} unset" for key in varying)
        for values in flat
    ]


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"name": "sgd", "lr": 0.1}}`` as ``{"optimizer": "sgd", "optimizer.lr": 0.1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            inner = dict(value)
            if "name" in inner:
                flat[f"{prefix}{key}"] = inner.pop("name")
            flat |= _flat(inner, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plot(what: Any, path: str | Path | None = None, *, labels: Sequence[str] | None = None) -> Any:
    """The picture of ``what``, as a matplotlib figure (in a notebook, it shows under the cell);
    with ``path``, also written there as a PNG.

    ``what`` is a :class:`mlbasics.TrainResult` (its loss curve; for data with one feature, the fit;
    its metrics), several of them in a list (their loss curves on one figure, labelled by
    ``labels`` or by what differs between their experiments: ``optimizer.lr=0.1``), a
    :class:`mlbasics.SweepResult` (every member's curve, coloured by the values swept), or a
    :class:`mlbasics.DivergenceError` (the loss up to the divergence)."""
    check_matplotlib()
    if path is not None:
        check_can_plot(path)
    if isinstance(what, DivergenceError):
        figure = divergence_figure(what)
    elif isinstance(what, list | tuple):
        if not what or not all(_is_train_result(item) for item in what):
            raise MlbasicsError("plot: a list to compare holds TrainResults (what mlbasics.train returns)")
        figure = comparison_figure(what, labels)
    elif hasattr(what, "members") and hasattr(what, "axes"):
        figure = sweep_figure(what)
    elif _is_train_result(what):
        figure = training_figure(what)
    else:
        raise MlbasicsError(
            f"plot: cannot draw a {type(what).__name__}; give a TrainResult, a list of them, a "
            "SweepResult or a DivergenceError"
        )
    if path is not None:
        save_figure(figure, path)
    return figure


def _is_train_result(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("history", "components", "dataset", "validation_history"))


def sweep_figure(result: SweepResult) -> Any:
    """Every member's loss curve in one picture, coloured by the values swept (the seeds aside,
    which only repeat a run), with a legend; the best member drawn in black over the rest."""
    figure = _figure(8, 5)
    axes = figure.subplots()
    best = result.best
    few = len(result.members) <= 10
    colour, legend = _sweep_colours(result)
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
            color=colour(member),
            label=member.label if few and legend is None and member is not best else None,
        )
    (best_line,) = axes.plot(
        range(1, len(best.history) + 1), best.history, color="black", linewidth=2, label=f"best: {best.label}"
    )
    if positive:
        axes.set_yscale("log")
    loss_name = result.experiment.loss.name
    interrupted = " interrupted" if getattr(result, "interrupted_by", None) else ""
    axes.set(
        xlabel="epoch",
        ylabel=f"loss ({loss_name})",
        title=f"{len(result.members)} members ({result.mode}, {result.device}){interrupted}",
    )
    axes.grid(True, alpha=0.3)
    if legend is not None:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=shade, linewidth=2, label=label) for label, shade in legend]
        axes.legend(handles=[*handles, best_line], fontsize="small")
    else:
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


#: At most this many swept values (or combinations of them) get a colour and a line in the legend
#: each; more are coloured along a colour map instead.
_LEGEND_COLOURS = 10


def _sweep_colours(result: SweepResult) -> tuple[Any, list[tuple[str, Any]] | None]:
    """``colour(member)`` and the legend's ``(label, colour)`` entries: a colour per combination of
    the swept values other than the seed; past :data:`_LEGEND_COLOURS` of them, a colour map along
    the first numeric one (log-scaled when it spans decades, as learning rates do). ``None``
    for the legend when only seeds were swept (each member is then its own line, as before)."""
    swept = [axis for axis in result.axes if axis != "seed"]
    if not swept:
        return (lambda member: None), None

    def key(member: Any) -> str:
        return ", ".join(f"{axis}={member.values[axis]!r}" for axis in swept)

    keys = list(dict.fromkeys(key(member) for member in result.members))
    if len(keys) <= _LEGEND_COLOURS:
        shades = {value: f"C{index}" for index, value in enumerate(keys)}
        return (lambda member: shades[key(member)]), list(shades.items())
    axis = next((a for a in swept if all(_is_number(m.values[a]) for m in result.members)), None)
    if axis is None:
        return (lambda member: None), None
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    values = [float(member.values[axis]) for member in result.members]
    low, high = min(values), max(values)
    norm = LogNorm(low, high) if low > 0 and high >= 10 * low else Normalize(low, high)
    cmap = colormaps["viridis"]
    ends = [(f"{axis}={low:g}", cmap(norm(low))), (f"{axis}={high:g}", cmap(norm(high)))]
    return (lambda member: cmap(norm(float(member.values[axis])))), ends


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def save_sweep_plot(result: SweepResult, path: str | Path) -> None:
    save_figure(sweep_figure(result), path)
