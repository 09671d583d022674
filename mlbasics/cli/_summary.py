"""The summary ``mlbasics train`` prints after training."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlbasics.cli._output import format_value
from mlbasics.engine.results import TrainResult


def render_summary(result: TrainResult, *, plot: str | None = None) -> RenderableType:
    parts: list[RenderableType] = [_components_table(result), _result_line(result)]
    metrics = _metrics_table(result)
    if metrics is not None:
        parts.append(metrics)
    confusion = _confusion_table(result)
    if confusion is not None:
        parts.append(confusion)
    learned = _linear_parameters_table(result)
    if learned is not None:
        parts.append(learned)
    if result.stopped:
        parts.append(Text(f"stopped early: {result.stopped}", style="yellow"))
    if plot:
        parts.append(Text(f"plot written to {plot}"))
    return Group(*parts)


def _components_table(result: TrainResult) -> Table:
    table = Table(title="Experiment", title_justify="left")
    for column in ("component", "name", "params", "plugin"):
        table.add_column(column, overflow="fold")
    for kind, info in result.components.items():
        params = ", ".join(f"{key}={format_value(value)}" for key, value in info.params.items())
        plugin = f"{info.plugin} {info.version}" if info.version else info.plugin
        table.add_row(kind, Text(info.name), Text(params or "-"), Text(plugin))
    for field, infos in result.listed_components.items():  # the experiment's metrics and callbacks
        for info in infos:
            params = ", ".join(f"{key}={format_value(value)}" for key, value in info.params.items())
            plugin = f"{info.plugin} {info.version}" if info.version else info.plugin
            table.add_row(field.removesuffix("s"), Text(info.name), Text(params or "-"), Text(plugin))
    return table


#: The columns of the metrics table: the part of the data and the prefix of its values' names.
_PARTS = (("training", ""), ("validation", "validation_"), ("test", "test_"))


def _metrics_table(result: TrainResult) -> Table | None:
    """Each metric (a row) on each part of the data (a column): training and validation at the
    last sync point, test once at the end. A part without values (no such rows) has no column."""
    values = result.metrics
    names = list(result.metric_modes) or [name for name in values if name in result.metric_history]
    if not names or not values:
        return None
    parts = [(part, prefix) for part, prefix in _PARTS if any(prefix + name in values for name in names)]
    epochs = {pairs[-1][0] for pairs in result.metric_history.values() if pairs}
    when = f"after epoch {epochs.pop()}" if len(epochs) == 1 else "at the last sync point"
    if result.restored_epoch is not None:
        when = f"of the weights of epoch {result.restored_epoch} (restored)"
    synced = " and ".join(part for part, _ in parts if part != "test")
    caption = ", ".join(
        [
            *([f"{synced} {when}"] if synced else []),
            *(["test once at the end"] if "test" in dict(parts) else []),
        ]
    )
    table = Table(title="Metrics", title_justify="left", caption=caption, caption_justify="left")
    table.add_column("metric")
    for part, _ in parts:
        table.add_column(part, justify="right")
    for name in names:
        better = {"min": "lower is better", "max": "higher is better"}.get(result.metric_modes.get(name, ""))
        label = Text(name)
        if better:
            label.append(f" ({better})", style="dim")
        cells = [_metric_cell(values.get(prefix + name)) for _, prefix in parts]
        table.add_row(label, *cells)
    return table


#: The summary prints the confusion matrix for at most this many classes (``--json`` has it always).
CONFUSION_CLASSES = 10


def _confusion_table(result: TrainResult) -> RenderableType | None:
    """For class labels: the confusion matrix of the test rows (else the validation, else the
    training rows), true classes down, predicted across, by name; right predictions in bold."""
    classes = result.classes
    part = next((p for p in ("test", "validation", "training") if p in result.confusion), None)
    if classes is None or part is None or len(classes) > CONFUSION_CLASSES:
        return None
    counts = result.confusion[part]
    right, total = int(counts.diagonal().sum()), int(counts.sum())
    heading = Text(f"Confusion matrix, {part} rows ({right} of {total} right)", style="italic")
    heading.append(": each row a true class, each column the class predicted", style="dim")
    table = Table()
    table.add_column("true \\ predicted")
    for name in classes:
        table.add_column(Text(name), justify="right")
    for i, (name, row) in enumerate(zip(classes, counts.tolist(), strict=True)):
        table.add_row(
            Text(name), *(Text(str(value), style="bold" if i == j else "") for j, value in enumerate(row))
        )
    return Group(heading, table)


def _metric_cell(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.6g}")


def _result_line(result: TrainResult) -> Text:
    text = Text("final loss ")
    text.append(f"{result.final_loss:.6g}", style="bold cyan")
    if result.restored_epoch is not None:  # the losses and metrics shown are those weights'
        text.append(f" of the weights of epoch {result.restored_epoch} (restored),")
    graph = " (CUDA graph)" if result.step_mode == "cuda-graph" else ""
    trained = result.epochs - result.resumed_from  # this session's epochs
    text.append(
        f" after {result.epochs} epoch{'s' if result.epochs != 1 else ''} on {result.device}{graph} in {result.seconds:.3g} s"
    )
    if result.resumed_from:
        text.append(f", resumed at epoch {result.resumed_from}")
    if trained > 1 and result.seconds > 0:
        batch = result.experiment.batch_size
        full = batch is None or batch >= result.split_sizes.get("train", batch)  # an epoch is one step
        unit = "steps/s" if full else "epochs/s"  # an epoch of mini-batches
        text.append(f" ({trained / result.seconds:,.0f} {unit})")
    sizes = result.split_sizes
    if result.validation_loss is not None:
        text.append("\nvalidation loss ")
        text.append(f"{result.validation_loss:.6g}", style="bold magenta")
        text.append(f" on {sizes.get('validation', 0)} held-out rows")
    if result.test_loss is not None:
        text.append("\ntest loss ")
        text.append(f"{result.test_loss:.6g}", style="bold")
        text.append(f" on {sizes.get('test', 0)} rows, evaluated once")
    if result.standardization is not None:
        text.append(
            f"\nstandardized: {result.standardization.mode} (statistics of the {sizes.get('train')} training rows)"
        )
    return text


def _linear_parameters_table(result: TrainResult) -> Table | None:
    """For H(x) = Wx + b: each learned weight and the bias, beside the truth where the data knows it."""
    parameters = result.parameters_in_data_units()  # trained on standardized data: back in its units
    weight, bias = parameters.get("weight"), parameters.get("bias")
    if weight is None or weight.ndim != 2 or weight.shape[0] != 1 or set(parameters) - {"weight", "bias"}:
        return None
    truth = result.dataset.ground_truth
    table = Table(title="Learned H(x) = Wx + b", title_justify="left")
    table.add_column("parameter")
    table.add_column("learned", justify="right")
    if truth is not None:
        table.add_column("truth", justify="right")
    for index, name in enumerate(result.dataset.feature_names):
        row = [f"w[{index}] ({name})", f"{float(weight[0, index]):.6g}"]
        if truth is not None:
            row.append(f"{truth.weights[index]:.6g}")
        table.add_row(*row)
    if bias is not None:
        row = ["b", f"{float(bias[0]):.6g}"]
        if truth is not None:
            row.append(f"{truth.bias:.6g}")
        table.add_row(*row)
    return table
