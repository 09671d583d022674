"""Regression or classification: what an experiment's components must agree on once the dataset
says which its targets are.

A component's spec declares the tasks it serves (``ComponentSpec.tasks``). When the dataset is
built, :func:`task_problems` names every component that does not serve the dataset's task -- a
regression loss on class labels, ``lstsq`` on them, ``r2`` on them, cross-entropy on real-valued
targets -- one line each, with the registered components that would; :func:`default_loss` gives
an experiment that names no loss the loss of its task; :func:`outputs` sizes the model; and
:func:`label_problem` refuses a split that leaves a class to the held-out rows alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import torch

from mlbasics.core.specs import ONE_LOGIT_TAG, ComponentSpec, Kind, plural
from mlbasics.data.dataset import Dataset
from mlbasics.engine.experiment import DEFAULT_LOSSES, Component, Experiment
from mlbasics.errors import DataError, PluginError, ValidationError, first_line, one_line

if TYPE_CHECKING:
    from mlbasics.core.registry import Registry
    from mlbasics.data.splits import Split

#: A summary names at most this many classes.
_NAMED_CLASSES = 5


def classes_text(dataset: Dataset) -> str:
    """``"3 classes: setosa, versicolor, virginica"`` (the first few, for many)."""
    classes = dataset.classes or ()
    names = ", ".join(classes[:_NAMED_CLASSES])
    more = f", ... ({len(classes) - _NAMED_CLASSES} more)" if len(classes) > _NAMED_CLASSES else ""
    return f"{len(classes)} classes: {names}{more}"


def check_dataset_task(spec: ComponentSpec, dataset: Dataset) -> None:
    """A dataset must serve the task its spec declares: a plugin returning class labels from a spec
    that declares regression only has not said so, and ``mlbasics list`` would mislead."""
    if not spec.serves(dataset.task):
        declared = ", ".join(sorted(spec.tasks))
        raise PluginError(
            f"dataset {spec.name!r} from plugin {spec.plugin}: returned {dataset.task} data, but its spec "
            f"declares tasks {{{declared}}}; declare tasks={{{dataset.task!r}}} on the ComponentSpec"
        )


def default_loss(
    experiment: Experiment, dataset: Dataset, registry: Registry
) -> tuple[Experiment, tuple[ComponentSpec, dict[str, Any]]]:
    """For an experiment that names no loss: the loss of the dataset's task (``mse``, or
    ``cross-entropy`` on class labels), with any params set on the default (``--set
    loss.weight=...``), as the experiment's own, and its spec and validated params."""
    wanted = DEFAULT_LOSSES[dataset.task]
    params = dict(experiment.loss.params)
    resolved = registry.resolve("loss", wanted, params)
    # Chosen now: the run folder's experiment.toml, the result's experiment and --json name it.
    return attrs.evolve(experiment, loss=Component(wanted, params)), resolved


def task_problems(
    registry: Registry,
    experiment: Experiment,
    dataset: Dataset,
    components: Sequence[tuple[Kind, ComponentSpec]],
) -> list[str]:
    """One line for each component that does not serve the dataset's task, and for a loss that
    scores one logit on a dataset of other than two classes."""
    problems = []
    name = experiment.dataset.name
    for kind, spec in components:
        if kind == "dataset":
            continue
        if not spec.serves(dataset.task):
            problems.append(_wrong_task(registry, kind, spec, name, dataset))
        elif kind == "loss" and ONE_LOGIT_TAG in spec.tags and dataset.n_classes != 2:
            problems.append(
                f"loss {spec.name!r} scores two classes with one output, but dataset {name!r} has "
                f"{classes_text(dataset)}; use loss 'cross-entropy'"
            )
    if dataset.classes is not None and experiment.standardize == "features+target":
        problems.append(
            f'standardize = "features+target" scales the target, but dataset {name!r} has class '
            'labels, which are names, not numbers; use standardize = "features"'
        )
    return problems


def _wrong_task(registry: Registry, kind: Kind, spec: ComponentSpec, name: str, dataset: Dataset) -> str:
    labels = dataset.classes is not None
    what = "class labels" if "classification" in spec.tasks else "real-valued targets"
    has = f"has class labels ({classes_text(dataset)})" if labels else "has real-valued targets"
    why = " (class labels have no closed-form solution)" if "closed-form" in spec.tags and labels else ""
    fitting = [
        other.name
        for other in registry.specs(kind, task=dataset.task)
        if registry.status(other) == "available"
        and not (kind == "loss" and ONE_LOGIT_TAG in other.tags and dataset.n_classes != 2)
    ]
    wanted = "class labels" if labels else "real-valued targets"
    hint = f"; {plural(kind)} for {wanted}: {', '.join(fitting)}" if fitting else ""
    return f"{kind} {spec.name!r} is for {what}{why}, but dataset {name!r} {has}{hint}"


def outputs(dataset: Dataset, loss: ComponentSpec) -> int:
    """How many outputs the model needs: one per target column; for class labels one per class,
    or one for two classes under a loss tagged ``one-logit``."""
    if dataset.classes is None:
        return dataset.n_targets
    return 1 if ONE_LOGIT_TAG in loss.tags else len(dataset.classes)


def check_loss_scores(
    loss: Any, spec: ComponentSpec, name: str, dataset: Dataset, width: int, device: torch.device
) -> None:
    """A classification loss scores one row of the dataset before training starts, so that a
    setting that cannot fit its classes (a ``weight`` per class, of another count) is one line now,
    not an error in the first step."""
    if dataset.classes is None or not len(dataset.targets):
        return
    with torch.no_grad():
        try:
            loss(torch.zeros(1, width, device=device), dataset.targets[:1].to(device))
        except (ValueError, RuntimeError, IndexError) as exc:
            raise ValidationError(
                [
                    f"loss {spec.name!r} cannot score the {classes_text(dataset)} of dataset {name!r}: "
                    f"{first_line(exc) if isinstance(exc, ValueError) else one_line(exc)}"
                ]
            ) from None


def label_problem(name: str, dataset: Dataset, split: Split) -> None:
    """Refuse a split that leaves a class's rows to the validation or test part alone: training
    would never see the class, yet it would be scored on it. The message names the first such row
    (its file, line and column, where the dataset was read from one)."""
    if dataset.classes is None or split.is_whole:
        return
    labels = dataset.targets
    trained = torch.zeros(len(dataset.classes), dtype=torch.bool)
    trained[labels.index_select(0, split.train)] = True
    for part in ("validation", "test"):
        rows: torch.Tensor = getattr(split, part)
        untrained = rows[~trained[labels.index_select(0, rows)]]
        if len(untrained):
            row = int(untrained[0])
            label = dataset.classes[int(labels[row])]
            count = int((labels == labels[row]).sum())
            where = dataset.row_source.where(row) if dataset.row_source is not None else f"dataset {name!r}"
            raise DataError(
                f"{where}: label {label!r} is only in the {part} rows ({count} row{'s' if count != 1 else ''} "
                "in all), so training never sees it; give it more rows, or hold out fewer"
            )


def check_held_out_classes(name: str, part: str, dataset: Dataset, held: Dataset) -> None:
    """A dataset's own validation or test rows must name the same classes, in the same order, and
    hold no class its training rows lack (as :func:`label_problem` for a split)."""
    if held.classes != dataset.classes:
        raise PluginError(
            f"dataset {name!r}: its {part} rows have classes {list(held.classes or [])}, but its training "
            f"rows {list(dataset.classes or [])}"
        )
    if dataset.classes is None or not len(held.targets):
        return
    trained = torch.zeros(len(dataset.classes), dtype=torch.bool)
    trained[dataset.targets] = True
    untrained = (~trained[held.targets]).nonzero().flatten()
    if len(untrained):
        row = int(untrained[0])
        label = dataset.classes[int(held.targets[row])]
        where = held.row_source.where(row) if held.row_source is not None else f"dataset {name!r}"
        raise DataError(
            f"{where}: label {label!r} is in its {part} rows but in none of its training rows, so "
            "training never sees it"
        )
