"""Short summaries of results, checkpoints, experiments and datasets, as text and as HTML.

``repr(result)`` is a few lines (what was trained, where, for how long, the losses, the learned
parameters when there are few), and Jupyter shows :func:`html` of the same lines as a table, with
the loss curve (and, for data with one feature, the fit) drawn inline when matplotlib is installed.
The data themselves stay on the objects' attributes. Both forms are built from one list of
``(label, text)`` rows, so a new line in a summary is one more row.
"""

from __future__ import annotations

import base64
import html as _html
import io
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlbasics.core.specs import IN_MEMORY

if TYPE_CHECKING:
    import torch

    from mlbasics.engine.experiment import Component, Experiment
    from mlbasics.engine.setup import ComponentInfo

Rows = list[tuple[str, str]]

#: Learned parameters are printed value by value up to this many values in all; past it, by shape.
FEW_VALUES = 12


def number(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits: 0.00331, 1.438e-12, 500, nan."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def seconds(value: float) -> str:
    return f"{value:.3g} s" if value < 60 else f"{value / 60:.3g} min"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def component_text(component: Component | ComponentInfo, *, params: bool = True) -> str:
    """``sgd(lr=0.1)``, or just ``mse`` when it has no params (or ``params=False``); data held in
    memory as their shape, ``in-memory(100 x 3)``."""
    if component.name == IN_MEMORY:
        shape = component.params.get("features")
        size = " x ".join(str(n) for n in shape) if isinstance(shape, list) else ""
        return f"{component.name}({size})" if params and size else component.name
    shown = {k: v for k, v in component.params.items() if v is not None} if params else {}
    args = ", ".join(f"{key}={value!r}" for key, value in shown.items())
    return f"{component.name}({args})" if args else component.name


def experiment_line(experiment: Experiment) -> str:
    """``linear on synthetic-linear, loss mse, optimizer sgd(lr=0.1)``: what is trained on what."""
    return (
        f"{component_text(experiment.model)} on {component_text(experiment.dataset)}, "
        f"loss {component_text(experiment.loss)}, optimizer {component_text(experiment.optimizer)}"
    )


def loss_text(history: Sequence[float] | torch.Tensor, *, start: int = 0) -> str:
    """``39.1 at epoch 1 → 1.438e-12 at epoch 500`` (``start``: epochs before the history's first)."""
    values = history.tolist() if hasattr(history, "tolist") else list(history)
    if not values:
        return "no epochs"
    last = f"{number(values[-1])} at epoch {start + len(values)}"
    return last if len(values) == 1 else f"{number(values[0])} at epoch {start + 1} → {last}"


def parameters_text(parameters: Mapping[str, torch.Tensor]) -> str:
    """The values when there are few (``weight [[1, 2, 3]], bias [5]``), else how many and how shaped."""
    total = sum(value.numel() for value in parameters.values())
    if total <= FEW_VALUES:
        return ", ".join(f"{name} {_rounded(value.tolist())}" for name, value in parameters.items())
    shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in list(parameters.items())[:4])
    more = ", ..." if len(parameters) > 4 else ""
    return f"{total:,} values in {plural(len(parameters), 'tensor')}: {shapes}{more}"


def _rounded(values: Any) -> str:
    if isinstance(values, list):
        return "[" + ", ".join(_rounded(value) for value in values) + "]"
    return number(float(values))


# -- text ---------------------------------------------------------------------------------------


def text(title: str, rows: Rows, extra: Iterable[str] = ()) -> str:
    """The title line, then one indented ``label  text`` line per row, then ``extra`` lines as they are."""
    width = max((len(label) for label, _ in rows), default=0)
    lines = [title, *(f"  {label.ljust(width)}  {value}" for label, value in rows), *extra]
    return "\n".join(lines)


# -- HTML ---------------------------------------------------------------------------------------

_STYLE = (
    "font-family: var(--jp-content-font-family, system-ui, sans-serif); font-size: 13px; "
    "border-collapse: collapse; text-align: left"
)
# Every cell's alignment is set here: JupyterLab's own style right-aligns table cells.
_LABEL = (
    "padding: 2px 12px 2px 0; font-weight: 600; vertical-align: top; white-space: nowrap; text-align: left"
)
_VALUE = "padding: 2px 0; font-family: var(--jp-code-font-family, monospace); text-align: left"


def html(title: str, rows: Rows, *, pictures: Sequence[str] = (), tables: Sequence[str] = ()) -> str:
    """A titled two-column table of ``rows``, then ``tables`` (HTML) and ``pictures`` (data URLs)."""
    body = "".join(
        f'<tr><th style="{_LABEL}">{_html.escape(label)}</th><td style="{_VALUE}">{_html.escape(value)}</td></tr>'
        for label, value in rows
    )
    images = "".join(
        f'<img src="{picture}" alt="{_html.escape(title)}" style="max-width: 100%">' for picture in pictures
    )
    return (
        f'<div class="mlbasics-summary"><div style="{_STYLE}; font-weight: 700; margin-bottom: 4px">'
        f"{_html.escape(title)}</div>"
        f'<table style="{_STYLE}">{body}</table>{"".join(tables)}{images}</div>'
    )


def html_table(header: Sequence[str], body: Iterable[Sequence[str]], *, caption: str = "") -> str:
    """A plain data table (numbers right-aligned), e.g. a sweep's members or a dataset's rows."""
    cell = "padding: 1px 8px; text-align: right; font-family: var(--jp-code-font-family, monospace)"
    head = "".join(f'<th style="{cell}">{_html.escape(name)}</th>' for name in header)
    rows = "".join(
        "<tr>" + "".join(f'<td style="{cell}">{_html.escape(value)}</td>' for value in row) + "</tr>"
        for row in body
    )
    title = f'<div style="{_STYLE}; padding: 8px 0 2px">{_html.escape(caption)}</div>' if caption else ""
    return f'{title}<table style="{_STYLE}; margin-top: 4px"><tr>{head}</tr>{rows}</table>'


def png_data_url(figure: Any, *, dpi: int = 80) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URL, to embed in HTML."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pictures(draw: Any, *args: Any) -> list[str]:
    """``draw(*args)`` (a function of :mod:`mlbasics.show.plotting` returning a figure) as a data URL,
    or nothing without matplotlib: the summary is then the table alone."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return []
    return [png_data_url(draw(*args))]


# -- the summaries ------------------------------------------------------------------------------


def _settings_text(experiment: Experiment) -> str:
    return f"{component_text(experiment.optimizer)}, loss {component_text(experiment.loss)}, seed {experiment.seed}"


def train_result(result: Any) -> tuple[str, Rows]:
    """A :class:`mlbasics.TrainResult`'s title and rows."""
    experiment = result.experiment
    title = f"TrainResult: {component_text(experiment.model)} on {component_text(experiment.dataset)}"
    done = result.epochs - result.resumed_from
    speed = f", {done / result.seconds:,.0f} epochs/s" if result.seconds > 0 and done > 1 else ""
    rows: Rows = [
        ("optimizer", _settings_text(experiment)),
        (
            "trained",
            f"{plural(result.epochs, 'epoch')} on {result.device} in {seconds(result.seconds)}{speed}",
        ),
    ]
    if result.resumed_from:
        rows[-1] = (
            "trained",
            f"epochs {result.resumed_from + 1}-{result.epochs}" + rows[-1][1].split(" epochs", 1)[1],
        )
        rows.append(("resumed", f"from epoch {result.resumed_from}"))
    if result.stopped:
        rows.append(("stopped", result.stopped))
    rows.append(("loss", loss_text(result.history)))
    if result.restored_epoch is not None:
        restored = f"the weights of epoch {result.restored_epoch}: loss {number(result.final_loss)}"
        if result.validation_loss is not None:
            restored += f", validation {number(result.validation_loss)}"
        rows.append(("restored", restored + (" (the metrics below are theirs)" if result.metrics else "")))
    if result.validation_history:
        epoch, last = result.validation_history[-1]
        best_epoch, best = min(reversed(result.validation_history), key=lambda pair: pair[1])
        lowest = "" if best_epoch == epoch else f" (lowest {number(best)} at epoch {best_epoch})"
        rows.append(("validation", f"{number(last)} at epoch {epoch}{lowest}"))
    if result.test_loss is not None:
        rows.append(("test", f"{number(result.test_loss)} (once, at the end)"))
    rows += metric_rows(result)
    rows += confusion_rows(result)
    rows.append(("parameters", parameters_text(result.parameters_in_data_units())))
    return title, rows


#: A summary writes a confusion matrix out for at most this many classes (text), or this many
#: (an HTML table); the rest is in ``result.confusion``.
FEW_CLASSES = 4
TABLE_CLASSES = 20


def classes_text(classes: Sequence[str]) -> str:
    """``"3: setosa, versicolor, virginica"`` (the first few, for many)."""
    shown = ", ".join(classes[:8])
    return f"{len(classes)}: {shown}" + (f", ... ({len(classes) - 8} more)" if len(classes) > 8 else "")


def _confusion_part(result: Any) -> str | None:
    """The part whose confusion matrix a summary shows: test, else validation, else training."""
    return next((part for part in ("test", "validation", "training") if part in result.confusion), None)


def confusion_rows(result: Any) -> Rows:
    """For class labels, the classes and the confusion matrix of the test rows (else validation,
    else training): ``confusion  test rows, 29 of 30 right: [[10, 0, 0], [0, 9, 1], [0, 0, 10]]``."""
    classes = getattr(result.dataset, "classes", None)
    if classes is None:
        return []
    rows: Rows = [("classes", classes_text(classes))]
    part = _confusion_part(result)
    if part is not None:
        counts = result.confusion[part]
        right, total = int(counts.diagonal().sum()), int(counts.sum())
        text = f"{part} rows, {right} of {total} right"
        if len(classes) <= FEW_CLASSES:
            text += f" (rows true, columns predicted): {counts.tolist()}"
        rows.append(("confusion", text))
    return rows


def confusion_table(result: Any) -> list[str]:
    """The confusion matrix a summary shows as an HTML table, class names on both sides."""
    part = _confusion_part(result)
    classes = getattr(result.dataset, "classes", None)
    if part is None or classes is None or len(classes) > TABLE_CLASSES:
        return []
    counts = result.confusion[part].tolist()
    body = [[name, *(str(value) for value in row)] for name, row in zip(classes, counts, strict=True)]
    caption = f"confusion matrix, {part} rows: true class (rows) predicted as (columns)"
    return [html_table(["", *classes], body, caption=caption)]


#: A result's summary has a line for each of its first this many metrics (all are in ``.metrics``).
FEW_METRICS = 4


def metric_rows(result: Any) -> Rows:
    """A row per metric, its latest value on each part: ``r2  0.9987 training, 0.9981 validation,
    0.9975 test``; past :data:`FEW_METRICS`, one row names the rest."""
    values = result.metrics
    names = [name for name in result.metric_modes if any(key in values for key in _metric_keys(name))]
    rows: Rows = []
    for name in names[:FEW_METRICS]:
        parts = [
            f"{number(values[key])} {part}"
            for part, key in zip(("training", "validation", "test"), _metric_keys(name), strict=True)
            if key in values
        ]
        rows.append((name, ", ".join(parts)))
    if len(names) > FEW_METRICS:
        rows.append(("metrics", f"and {', '.join(names[FEW_METRICS:])} (in .metrics)"))
    return rows


def _metric_keys(name: str) -> tuple[str, str, str]:
    return name, f"validation_{name}", f"test_{name}"


def train_result_html(result: Any) -> str:
    from mlbasics.show.plotting import training_figure

    return html(
        *train_result(result), tables=confusion_table(result), pictures=pictures(training_figure, result)
    )


#: A sweep's summary lists this many members, best first.
TOP_MEMBERS = 5


def sweep_result(result: Any) -> tuple[str, Rows, list[str]]:
    """A :class:`mlbasics.SweepResult`'s title, rows and its best members' lines."""
    experiment = result.experiment
    members = result.members
    title = (
        f"SweepResult: {plural(len(members), 'member')} of {component_text(experiment.model)} "
        f"on {component_text(experiment.dataset)}, over {' × '.join(result.axes)}"
    )
    ranked = result.ranked()
    name = result.ranking_value()
    epochs = sorted({len(member.history) for member in members})
    each = f"{plural(epochs[0], 'epoch')} each" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]} epochs"
    how = result.mode + (f" ({result.reason})" if result.reason else "")
    rows: Rows = [
        ("swept", swept_text(result)),
        ("optimizer", _sweep_settings_text(experiment, result.axes)),
        (
            "trained",
            f"{each}, {how} on {result.device} in {seconds(result.seconds)} "
            f"(+{seconds(result.setup_seconds)} setting up)",
        ),
        (value_label(name), spread_text(result)),
    ]
    if getattr(result, "interrupted_by", None):
        not_trained = getattr(result, "not_trained", 0)
        rows.append(
            (
                "interrupted",
                "the losses so far" + (f"; {not_trained} members not trained" if not_trained else ""),
            )
        )
    width = len(str(len(ranked)))
    lines = [
        f"  {rank:>{width}}. {member.label}: {number(member.value(name))}"
        for rank, member in enumerate(ranked[:TOP_MEMBERS], 1)
    ]
    if len(ranked) > TOP_MEMBERS:
        lines.append(f"  ... {len(ranked) - TOP_MEMBERS} more (.ranked(), .members)")
    return title, rows, [f"  best first, by {value_label(name)}:", *lines]


def value_label(name: str) -> str:
    """A sweep's value in words: ``"final loss"`` for ``"loss"``, ``"validation r2"``."""
    return "final loss" if name == "loss" else name.replace("_", " ")


def spread_text(result: Any, by: str = "loss") -> str:
    """``best 0.012, median 0.034, worst 0.25 (2 diverged)``: the spread of the value a sweep's
    members are ranked by (:meth:`mlbasics.SweepResult.ranking_value`: the validation loss where
    there are validation rows, or a metric ``by`` names), best and worst as ranked."""
    name = result.ranking_value(by)
    return spread([member.value(name) for member in result.ranked(by)])


def spread(values: Sequence[float]) -> str:
    """Ranked values (best first) in a few words, with only as much spread as they have: one value
    alone, best and worst of two, best, median and worst of more; non-finite ones counted apart."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return "all diverged"
    if len(finite) == 1:
        text = number(finite[0])
    elif len(finite) == 2:
        text = f"best {number(finite[0])}, worst {number(finite[1])}"
    else:  # of an even count, the mean of the middle two
        text = f"best {number(finite[0])}, median {number(statistics.median(finite))}, worst {number(finite[-1])}"
    if len(finite) < len(values):
        text += f" ({len(values) - len(finite)} diverged)"
    return text


def swept_text(result: Any) -> str:
    """What a sweep varied, each axis with its values: ``seed 0-99, optimizer.lr 0.01, 0.03``."""
    return "; ".join(
        f"{axis} {_values_text([member.values[axis] for member in result.members])}" for axis in result.axes
    )


def _values_text(values: Sequence[Any]) -> str:
    """Distinct values in order: a run of consecutive integers as ``0-99``; past six, the first
    three, the last and how many."""
    distinct = list({repr(value): value for value in values}.values())
    if (
        len(distinct) > 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in distinct)
        and distinct == list(range(distinct[0], distinct[0] + len(distinct)))
    ):
        return f"{distinct[0]}-{distinct[-1]}"
    shown = [repr(value) if isinstance(value, str) else str(value) for value in distinct]
    if len(shown) > 6:
        return f"{', '.join(shown[:3])}, ..., {shown[-1]} ({len(shown)} values)"
    return ", ".join(shown)


def _sweep_settings_text(experiment: Experiment, axes: Sequence[str]) -> str:
    """The settings the members share: the optimizer without the params swept, the loss, and the
    seed unless it was swept (``sgd, loss mse``, not ``sgd(lr=0.01) ... seed 1``)."""
    if "optimizer" in axes or "optimizer.name" in axes:
        optimizer = "swept"
    else:
        swept = {
            axis.removeprefix("optimizer.") for axis in axes if axis.startswith("optimizer.") or axis == "lr"
        }
        shown = {key: value for key, value in experiment.optimizer.params.items() if key not in swept}
        args = ", ".join(f"{key}={value!r}" for key, value in shown.items() if value is not None)
        optimizer = f"{experiment.optimizer.name}({args})" if args else experiment.optimizer.name
    seed = "" if "seed" in axes else f", seed {experiment.seed}"
    return f"{optimizer}, loss {component_text(experiment.loss)}{seed}"


def sweep_result_html(result: Any, *, shown: int = 10) -> str:
    from mlbasics.show.plotting import sweep_figure

    title, rows, _ = sweep_result(result)
    ranked = result.ranked()
    names = list(dict.fromkeys(["loss", result.ranking_value()]))  # the final loss, and what ranks
    body = [
        [
            str(rank),
            *(repr(member.values[axis]) for axis in result.axes),
            *(number(member.value(name)) for name in names),
        ]
        for rank, member in enumerate(ranked[:shown], 1)
    ]
    more = f" ({len(ranked) - shown} more in .ranked())" if len(ranked) > shown else ""
    columns = ["rank", *result.axes, *map(value_label, names)]
    table = html_table(columns, body, caption=f"best first, by {value_label(names[-1])}{more}")
    return html(title, rows, tables=[table], pictures=pictures(sweep_figure, result))


def sweep_member(member: Any) -> str:
    return (
        f"SweepMember({member.index}: {member.label}, final loss {number(member.final_loss)} "
        f"after {plural(len(member.history), 'epoch')})"
    )


def checkpoint(point: Any) -> tuple[str, Rows]:
    """A :class:`mlbasics.Checkpoint`'s title and rows."""
    experiment = point.experiment
    title = (
        f"Checkpoint: {component_text(experiment.model)} on {component_text(experiment.dataset)}, "
        f"epoch {point.epoch} of {experiment.epochs}"
    )
    rows: Rows = [
        ("run", f"{point.run} ({point.folder.name})"),
        ("optimizer", _settings_text(experiment)),
        ("trained on", f"{point.device}, with mlbasics {point.mlbasics_version}"),
        ("loss", loss_text(point.history)),
        ("parameters", parameters_text(point.weights)),
    ]
    classes = getattr(point, "classes", None)
    if classes is not None:
        rows.insert(-1, ("classes", classes_text(classes)))
    return title, rows


def checkpoint_html(point: Any) -> str:
    from mlbasics.show.plotting import loss_figure

    return html(
        *checkpoint(point),
        pictures=pictures(loss_figure, point.history, point.components["loss"].name),
    )


def experiment(value: Experiment) -> tuple[str, Rows]:
    rows: Rows = [(kind, component_text(component)) for kind, component in value.components().items()]
    settings = f"{plural(value.epochs, 'epoch')} on device {value.device}, seed {value.seed}"
    if value.log_every is not None:
        settings += f", log_every {value.log_every}"
    if value.cuda_graph is not True:
        settings += f", cuda_graph {value.cuda_graph!r}"
    rows.append(("training", settings))
    return "Experiment", rows


def dataset_title(data: Any) -> str:
    features = ", ".join(data.feature_names)
    classes = getattr(data, "classes", None)
    labels = f" ({len(classes)} classes)" if classes is not None else ""
    return (
        f"Dataset: {plural(data.n_samples, 'row')}, {plural(data.n_features, 'feature')} "
        f"({features if len(features) <= 60 else features[:57] + '...'}) → {data.target_name}{labels}"
    )


def dataset_truth(data: Any) -> str | None:
    truth = data.ground_truth
    if truth is None:
        return None
    weights = ", ".join(number(weight) for weight in truth.weights)
    return f"ground truth: weights ({weights}), bias {number(truth.bias)}"


def dataset_html(data: Any, *, shown: int = 10) -> str:
    names = [*data.feature_names, *data.target_names]
    features = [[number(value, 6) for value in row] for row in data.features[:shown].tolist()]
    classes = getattr(data, "classes", None)
    if classes is not None:
        targets = [[classes[int(index)]] for index in data.targets[:shown].tolist()]
    else:
        targets = [[number(value, 6) for value in row] for row in data.targets[:shown].tolist()]
    more = data.n_samples - min(shown, data.n_samples)
    caption = f"first {shown} rows ({more} more in .features, .targets)" if more else ""
    body = [x + y for x, y in zip(features, targets, strict=True)]
    truth = dataset_truth(data)
    rows: Rows = [("ground truth", truth.partition(": ")[2])] if truth else []
    if classes is not None:
        rows.append(("classes", classes_text(classes)))
    return html(dataset_title(data), rows, tables=[html_table(names, body, caption=caption)])
