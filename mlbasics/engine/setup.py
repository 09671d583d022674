"""From an experiment to a :class:`Setup`: validate it, build its components on the device, and
split, scale and place its data -- everything training needs, ready for :func:`mlbasics.fit`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import torch
from torch import nn

from mlbasics.core.registry import MODEL_SIZE_PARAMS, Registry, build_error, default_registry
from mlbasics.core.specs import IN_MEMORY, ComponentSpec, Kind, PluginInfo
from mlbasics.data.dataset import Dataset, data_fingerprint
from mlbasics.data.in_memory import missing_data_problem
from mlbasics.data.splits import Split, split_rows, stratified_split_rows
from mlbasics.data.standardization import Standardization, fit_standardization
from mlbasics.devices import resolve_device
from mlbasics.engine import tasks
from mlbasics.engine.experiment import LIST_KINDS, Experiment
from mlbasics.engine.interrupts import Interrupt
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import (
    PluginError,
    UnknownComponentError,
    ValidationError,
    is_out_of_memory,
)
from mlbasics.notes import note_once

if TYPE_CHECKING:
    from mlbasics.core.callbacks import Callback
    from mlbasics.engine.metrics import Metric

#: A part of the data: features, targets (on the device, scaled) and ``None``; or, for a
#: memory-mapped table, the whole table (on the CPU, raw) and the part's row numbers.
Part = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def part_rows(part: Part) -> int:
    """The number of rows in a part: its row numbers', or its features' (on the device whole)."""
    x, _, rows = part
    return int(x.shape[0] if rows is None else rows.shape[0])


@attrs.frozen(kw_only=True)
class ComponentInfo:
    """Which component was used, with its params, and which plugin (and version) supplied it.

    ``uses`` records the components it pulled in through its params (a model's ``activation``),
    by param name, with their own provenance; ``kind`` is set on those nested records.
    """

    name: str
    params: dict[str, Any] = attrs.field(hash=False)
    plugin: str
    distribution: str | None
    version: str | None
    uses: dict[str, ComponentInfo] = attrs.field(factory=dict, hash=False)
    kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON holds it; ``uses`` and ``kind`` only where there are some."""
        data: dict[str, Any] = {
            "name": self.name,
            "params": self.params,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
        }
        if self.uses:
            data["uses"] = {param: used.to_dict() for param, used in self.uses.items()}
        if self.kind is not None:
            data["kind"] = self.kind
        return data

    @classmethod
    def of(cls, spec: ComponentSpec, params: dict[str, Any]) -> ComponentInfo:
        plugin = spec.plugin
        return cls(
            name=spec.name,
            params=params,
            plugin=plugin.name if plugin else "?",
            distribution=plugin.distribution if plugin else None,
            version=plugin.version if plugin else None,
        )


@attrs.define(kw_only=True, eq=False)
class Setup:
    """An experiment's components, built and on the device, ready to train.

    ``history`` holds the loss of every epoch done so far: empty for a fresh setup, the recorded
    history for one restored from a checkpoint. :func:`fit` extends it at every sync point and trains
    until it holds the experiment's ``epochs``. ``interrupt`` is the flag that stops the loop after
    the current step (set by :func:`mlbasics.engine.interrupts.stop_on_signals`).
    """

    experiment: Experiment
    device: torch.device
    dataset: Dataset
    features: torch.Tensor
    targets: torch.Tensor
    model: nn.Module
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer | ClosedFormSolver
    specs: dict[Kind, ComponentSpec]
    components: dict[Kind, ComponentInfo]
    history: list[float] = attrs.field(factory=list)
    interrupt: Interrupt = attrs.field(factory=Interrupt)
    #: How the dataset's rows were split (``None``: the dataset brought its own held-out rows).
    split: Split | None = None
    #: The training rows' numbers in ``features`` when those are a memory-mapped table (then the
    #: whole table, on the CPU, unscaled); ``None`` when ``features`` are the training rows.
    train_rows: torch.Tensor | None = None
    #: The validation and test parts as (features, targets, row numbers or ``None``), like the
    #: training part; ``None`` where there is no such part.
    validation: Part | None = None
    test: Part | None = None
    #: The statistics the data were scaled with (``standardize``), or ``None``.
    standardization: Standardization | None = None
    #: ``(epoch, validation loss)`` at every sync point so far.
    validation_history: list[tuple[int, float]] = attrs.field(factory=list)
    #: The experiment's metrics by name (see :mod:`mlbasics.engine.metrics`) and its callbacks, built.
    metrics: dict[str, Metric] = attrs.field(factory=dict)
    callbacks: list[Callback] = attrs.field(factory=list)
    #: Provenance of the experiment's metrics and callbacks, in their order.
    listed: dict[str, list[ComponentInfo]] = attrs.field(factory=dict)
    #: ``(epoch, value)`` of every metric at every sync point so far, by value name (``"r2"``,
    #: ``"validation_r2"``).
    metric_history: dict[str, list[tuple[int, float]]] = attrs.field(factory=dict)
    #: The values at the latest sync point by name: ``"loss"``, ``"validation_loss"``, the metrics
    #: (``"r2"``, ``"validation_r2"``) and ``"lr"`` (the first parameter group's learning rate).
    #: Callbacks that monitor a value (early stopping) read it here.
    values: dict[str, float] = attrs.field(factory=dict)
    #: Under torchrun, the model wrapped in DistributedDataParallel that the steps go through
    #: (:mod:`mlbasics.engine.data_parallel`); ``None`` in one process.
    ddp: nn.Module | None = None
    #: The epochs from the last sync point of the training loop to the next one, while :func:`fit`
    #: runs (``None`` before).
    interval: int | None = attrs.field(default=None, init=False)
    #: The epoch whose weights a callback put back into the model (early stopping's
    #: ``restore_best``); ``None`` while the model holds the latest ones. :func:`fit` then
    #: evaluates the model once more at the end, so that the result shows what it returns.
    restored_epoch: int | None = attrs.field(default=None, init=False)
    #: Which member of a sweep this setup is, as a name safe in a file name
    #: (``03_seed=3_optimizer.lr=0.1``, see :func:`mlbasics.sweeps.results.member_name`); ``None``
    #: outside a sweep. A callback that writes files gives each member its own by it.
    member: str | None = attrs.field(default=None, init=False)
    #: The registry the components were built from: the run's own callbacks (progress bar,
    #: divergence check) are built from it too.
    registry: Registry | None = attrs.field(default=None, repr=False)
    _data_fingerprint: str | None = attrs.field(default=None, init=False, repr=False)

    @property
    def end_epoch(self) -> int:
        """The epoch training ends at: the experiment's epochs, or 1 for a closed-form solver."""
        return 1 if isinstance(self.optimizer, ClosedFormSolver) else self.experiment.epochs

    @property
    def data_fingerprint(self) -> str:
        """The dataset's :func:`mlbasics.data.dataset.data_fingerprint`, computed once: the data do not
        change during a run, and a checkpoint is written many times."""
        if self._data_fingerprint is None:
            self._data_fingerprint = data_fingerprint(
                self.dataset.features, self.dataset.targets, self.dataset.classes
            )
        return self._data_fingerprint

    @property
    def task(self) -> str:
        """``"classification"`` for a dataset of class labels, else ``"regression"``."""
        return self.dataset.task

    @property
    def needs_closure(self) -> bool:
        return "closure" in self.specs["optimizer"].tags

    @property
    def n_train(self) -> int:
        """The number of training rows."""
        return part_rows((self.features, self.targets, self.train_rows))

    @property
    def full_batch(self) -> bool:
        """Whether each step sees every training row (no batch size, or one that covers them all)."""
        from mlbasics.data.batches import is_full_batch

        return is_full_batch(self)

    def evaluate(self) -> torch.Tensor:
        """The loss of the current parameters on the training rows (no gradients)."""
        from mlbasics.data.batches import evaluate_rows

        return evaluate_rows(self, self.features, self.targets, self.train_rows)

    def evaluate_part(self, part: Part) -> torch.Tensor:
        """The loss of the current parameters on a held-out part, on the device (no gradients)."""
        from mlbasics.data.batches import evaluate_rows

        return evaluate_rows(self, *part)

    def scale_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw rows scaled as the model is trained on them (for data not scaled in advance)."""
        if self.standardization is None:
            return x, y
        return self.standardization.features(x), self.standardization.targets(y)


def prepare(experiment: Experiment, registry: Registry | None = None) -> Setup:
    """Validate ``experiment`` against the registry (all problems at once), then build its
    components on the chosen device. Raises a :class:`mlbasics.MlbasicsError` for any user error."""
    registry = registry or default_registry()
    problems = experiment.problems()
    unknown: list[str] = []
    specs: dict[Kind, ComponentSpec] = {}
    kwargs: dict[Kind, dict[str, Any]] = {}
    for kind, component in experiment.components().items():
        if kind == "loss" and component.implicit:
            # No loss named: the dataset's task chooses it, with these params (tasks.default_loss,
            # below); here only whether the default is there at all is said, with the rest.
            _resolve(registry, kind, component.name, {}, problems, unknown)
            continue
        params = dict(component.params)
        if kind == "dataset" and component.name == IN_MEMORY:  # data held in memory: no factory to build
            if component.data is None:
                problems.append(missing_data_problem(params, "mlbasics.train("))
            else:
                specs[kind], kwargs[kind] = in_memory_spec(), params
            continue
        if kind == "model":
            params = dict.fromkeys(MODEL_SIZE_PARAMS, 1) | params  # real sizes come from the dataset
        resolved = _resolve(registry, kind, component.name, params, problems, unknown)
        if resolved is not None:
            specs[kind], kwargs[kind] = resolved
    listed_specs: dict[str, list[tuple[ComponentSpec, dict[str, Any]]]] = {}
    for field, kind in LIST_KINDS.items():
        listed_specs[field] = []
        names = [component.name for component in getattr(experiment, field)]
        if field == "metrics":
            problems += [
                f"metric {name!r} is named twice" for name in sorted(set(names)) if names.count(name) > 1
            ]
        for component in getattr(experiment, field):
            resolved = _resolve(registry, kind, component.name, dict(component.params), problems, unknown)
            if resolved is not None:
                listed_specs[field].append(resolved)
    allow_problem = registry.plugins.allow_list_problem()
    if unknown and allow_problem is not None:
        # One line for the cause rather than one "unknown" line per component it hides.
        are = "is" if len(unknown) == 1 else "are"
        problems = [f"{allow_problem}, so {', '.join(unknown)} {are} unknown"] + [
            line for line in problems if not line.startswith(allow_problem)
        ]
    if problems:
        raise ValidationError(problems)
    device = resolve_device(experiment.device)

    if experiment.dataset.data is not None:
        dataset: Dataset = experiment.dataset.data
    else:
        dataset = built_as(
            specs["dataset"], registry.instantiate(specs["dataset"], kwargs["dataset"]), Dataset
        )
    tasks.check_dataset_task(specs["dataset"], dataset)
    if experiment.loss.implicit:  # no loss named: the dataset's task chooses it
        experiment, (specs["loss"], kwargs["loss"]) = tasks.default_loss(experiment, dataset, registry)
    problems = tasks.task_problems(
        registry,
        experiment,
        dataset,
        [
            *specs.items(),
            *((kind, spec) for field, kind in LIST_KINDS.items() for spec, _ in listed_specs[field]),
        ],
    )
    if problems:
        raise ValidationError(problems)
    sizes = _model_sizes(experiment, dataset, specs["loss"])
    kwargs["model"] = sizes | {k: v for k, v in kwargs["model"].items() if k not in MODEL_SIZE_PARAMS}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(experiment.seed)
        model = built_as(specs["model"], registry.instantiate(specs["model"], kwargs["model"]), nn.Module)
    try:
        model.to(device).train()
    except (RuntimeError, MemoryError) as exc:  # a model that fits in the host's memory but not the GPU's
        if not is_out_of_memory(exc):
            raise
        raise build_error(specs["model"], kwargs["model"], exc) from exc
    loss = registry.instantiate(specs["loss"], kwargs["loss"])
    if isinstance(loss, nn.Module):
        loss.to(device)
    tasks.check_loss_scores(
        loss, specs["loss"], experiment.dataset.name, dataset, sizes["out_features"], device
    )
    optimizer = registry.instantiate(specs["optimizer"], kwargs["optimizer"], list(model.parameters()))
    if isinstance(optimizer, ClosedFormSolver):
        problem = optimizer.check(model, specs["loss"])
        if problem:
            raise ValidationError([problem])
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise _contract_broken(specs["optimizer"], optimizer, "a torch.optim.Optimizer or a ClosedFormSolver")
    components = {kind: component_info(registry, specs[kind], kwargs[kind]) for kind in specs}
    metrics, callbacks, listed = _build_listed(experiment, registry, listed_specs)
    data = _place_data(
        experiment, dataset, device, specs, closed_form=isinstance(optimizer, ClosedFormSolver)
    )
    setup = Setup(
        experiment=experiment,
        device=device,
        dataset=dataset,
        model=model,
        loss=loss,
        optimizer=optimizer,
        specs=specs,
        components=components,
        metrics=metrics,
        callbacks=callbacks,
        listed=listed,
        registry=registry,
        **data,
    )
    if experiment.dataset.data is not None:  # hashed when it was recorded: not again for a checkpoint
        setup._data_fingerprint = experiment.dataset.params["sha256"]
    return setup


def in_memory_spec() -> ComponentSpec:
    """The spec a dataset held in memory is recorded under (it is built by nothing: the data are
    the caller's), so that it has a provenance like any component."""
    return ComponentSpec(
        kind="dataset",
        name=IN_MEMORY,
        factory=_no_factory,
        summary="Data held in memory, handed over in Python (arrays, tensors, a DataFrame)",
        plugin=PluginInfo(name="mlbasics"),
    )


def _no_factory() -> Dataset:
    raise PluginError(f"dataset {IN_MEMORY!r} is data held in memory: there is nothing to build it from")


def _resolve(
    registry: Registry,
    kind: Kind,
    name: str,
    params: dict[str, Any],
    problems: list[str],
    unknown: list[str],
) -> tuple[ComponentSpec, dict[str, Any]] | None:
    """The spec and validated params of one component, or ``None`` with what is wrong with it added
    to ``problems`` (and, for an unknown name, to ``unknown``): every problem is said at once."""
    try:
        return registry.resolve(kind, name, params)
    except UnknownComponentError as exc:
        unknown.append(f"{kind} {name!r}")
        problems += exc.problems
    except ValidationError as exc:
        problems += exc.problems
    except PluginError as exc:
        problems.append(str(exc))
    return None


def _build_listed(
    experiment: Experiment,
    registry: Registry,
    listed_specs: dict[str, list[tuple[ComponentSpec, dict[str, Any]]]],
) -> tuple[dict[str, Metric], list[Callback], dict[str, list[ComponentInfo]]]:
    """The experiment's metrics and callbacks, built (their params are valid: checked above)."""
    from mlbasics.core.callbacks import Callback, label
    from mlbasics.engine.metrics import Metric

    metrics = {
        spec.name: built_as(spec, registry.instantiate(spec, kwargs), Metric)
        for spec, kwargs in listed_specs["metrics"]
    }
    callbacks = []
    for spec, kwargs in listed_specs["callbacks"]:
        callback = built_as(spec, registry.instantiate(spec, kwargs), Callback)
        callback.label = label(spec)
        callbacks.append(callback)
    listed = {
        field: [component_info(registry, spec, kwargs) for spec, kwargs in pairs]
        for field, pairs in listed_specs.items()
        if pairs
    }
    return metrics, callbacks, listed


def component_info(registry: Registry, spec: ComponentSpec, params: dict[str, Any]) -> ComponentInfo:
    """``spec``'s provenance, with that of every component it pulls in through a param (each
    built from its defaults, as :meth:`Registry.instantiate` builds it)."""
    uses = {}
    for param in spec.params:
        value = params.get(param.name)
        if param.component is not None and isinstance(value, str):
            nested = component_info(registry, registry.get(param.component, value), {})
            uses[param.name] = attrs.evolve(nested, kind=param.component)
    return attrs.evolve(ComponentInfo.of(spec, params), uses=uses)


def _place_data(
    experiment: Experiment,
    dataset: Dataset,
    device: torch.device,
    specs: dict[Kind, ComponentSpec],
    *,
    closed_form: bool,
) -> dict[str, Any]:
    """The dataset's rows split into training, validation and test parts, scaled (standardize)
    with the training rows' statistics and put on the device: the ``Setup`` fields they fill.
    With the defaults this is ``dataset.features.to(device)``, the very tensors as before."""
    name = experiment.dataset.name
    brought = dataset.validation is not None or dataset.test is not None
    if brought:
        if experiment.validation or experiment.test:
            note_once(
                f"dataset {name!r} brings its own held-out rows; the validation/test fractions are not used"
            )
        split = None
        n_train = dataset.n_samples
    else:
        try:
            if dataset.classes is not None and experiment.stratify:
                split = stratified_split_rows(
                    dataset.targets,
                    validation=experiment.validation,
                    test=experiment.test,
                    seed=experiment.split_seed,
                )
            else:
                split = split_rows(
                    dataset.n_samples,
                    validation=experiment.validation,
                    test=experiment.test,
                    seed=experiment.split_seed,
                )
        except ValueError as exc:
            raise ValidationError([f"dataset {name!r}: {exc}"]) from None
        tasks.label_problem(name, dataset, split)
        n_train = len(split.train)
    _check_batching(experiment, dataset, specs["optimizer"].name, n_train, closed_form=closed_form)

    standardization = None
    if experiment.standardize != "none":
        train_x, train_y, rows = _raw_part(dataset, split, "train")
        standardization = fit_standardization(
            experiment.standardize,
            train_x,
            train_y,
            feature_names=dataset.feature_names,
            target_names=dataset.target_names,
            rows=rows,
        )

    def placed(part: str) -> Part | None:
        if brought:
            held: Dataset | None = dataset if part == "train" else getattr(dataset, part)
            if held is None:
                return None
            _check_same_columns(name, part, dataset, held)
            x, y, rows = held.features, held.targets, None
            if held.memory_mapped:
                rows = torch.arange(held.n_samples)
        else:
            assert split is not None
            if part != "train" and len(getattr(split, part)) == 0:
                return None
            x, y, rows = _raw_part(dataset, split, part)
        if rows is not None:  # memory-mapped: scaled batch by batch, on the device
            return x, y, rows
        if standardization is not None:
            x, y = standardization.features(x), standardization.targets(y)
        return x.to(device), y.to(device), None

    train = placed("train")
    assert train is not None
    if split is not None:  # said once the data are in place: a run refused for its data says only why
        _say_if_few(name, split)
    return {
        "features": train[0],
        "targets": train[1],
        "train_rows": train[2],
        "validation": placed("validation"),
        "test": placed("test"),
        "split": split,
        "standardization": standardization,
    }


#: A part of the rows held out (or left to train on) smaller than this is said to be small: a loss
#: on two rows says more about which rows were drawn than about the model.
FEW_ROWS = 5


def _say_if_few(name: str, split: Split) -> None:
    """A note when holding rows out leaves a part with fewer than :data:`FEW_ROWS` rows (3 rows with
    validation 0.5 train on 1): the run goes on, but its numbers say little."""
    if split.is_whole:
        return
    sizes = {part: size for part, size in split.sizes().items() if size > 0 or part == "train"}
    few = [part for part, size in sizes.items() if size < FEW_ROWS]
    if few:
        parts = ", ".join(f"{size} {'training' if part == 'train' else part}" for part, size in sizes.items())
        note_once(
            f"dataset {name!r}: its {split.n} rows split into {parts}; with so few rows in a part "
            "its loss says little: use more data, or hold out a smaller fraction"
        )


def _raw_part(dataset: Dataset, split: Split | None, part: str) -> Part:
    """A part's raw rows: a copy (CPU) of them, or, memory-mapped, the table and their numbers."""
    if split is None:  # the dataset's own parts: its table is the training part
        return (
            dataset.features,
            dataset.targets,
            torch.arange(dataset.n_samples) if dataset.memory_mapped else None,
        )
    rows: torch.Tensor = getattr(split, part)
    if dataset.memory_mapped:
        return dataset.features, dataset.targets, rows
    if part == "train" and split.is_whole:
        return dataset.features, dataset.targets, None  # the very tensors: no copy, same numbers
    return dataset.features.index_select(0, rows), dataset.targets.index_select(0, rows), None


def _check_same_columns(name: str, part: str, dataset: Dataset, held: Dataset) -> None:
    if (
        held.features.shape[1:] != dataset.features.shape[1:]
        or held.targets.shape[1:] != dataset.targets.shape[1:]
    ):
        raise PluginError(
            f"dataset {name!r}: its {part} rows have {held.n_features} feature and "
            f"{held.n_targets} target columns, but its training rows {dataset.n_features} and "
            f"{dataset.n_targets}"
        )
    tasks.check_held_out_classes(name, part, dataset, held)


def _check_batching(
    experiment: Experiment, dataset: Dataset, optimizer: str, n_train: int, *, closed_form: bool
) -> None:
    """``batch_size`` against the training rows, and what cannot use mini-batches, said once."""
    size, name = experiment.batch_size, experiment.dataset.name
    if size is not None and size > n_train:
        raise ValidationError(
            [f"batch_size {size} is larger than the {n_train} training rows of dataset {name!r}"]
        )
    if dataset.memory_mapped and size is None:
        raise ValidationError(
            [
                f"dataset {name!r} is memory-mapped (it may not fit in memory) and cannot be trained "
                "full-batch; pass --batch-size N (batch_size = N)"
            ]
        )
    if closed_form and dataset.memory_mapped:
        raise ValidationError(
            [
                f"optimizer {optimizer!r} solves on all training rows at once, which "
                f"memory-mapped dataset {name!r} cannot hold in memory; use an iterative optimizer"
            ]
        )
    if closed_form and size is not None and size < n_train:
        note_once(
            f"optimizer {optimizer!r} solves in closed form on all {n_train} training rows at once: "
            f"batch_size {size} is not used"
        )


def _model_sizes(experiment: Experiment, dataset: Dataset, loss: ComponentSpec) -> dict[str, int]:
    """The model's in/out sizes come from the dataset (for class labels: one output per class, or
    one for a one-logit loss); sizes given explicitly must agree with it."""
    actual = {"in_features": dataset.n_features, "out_features": tasks.outputs(dataset, loss)}
    model = experiment.model

    def what(size: str, value: int) -> str:
        if size == "in_features":
            return f"{value} feature column{'s' if value != 1 else ''}"
        if dataset.classes is None:
            return f"{value} target column{'s' if value != 1 else ''}"
        return f"{tasks.classes_text(dataset)}, for {value} output{'s' if value != 1 else ''} under loss {loss.name!r}"

    problems = [
        f"model {model.name!r}: {size} = {model.params[size]} does not match dataset "
        f"{experiment.dataset.name!r}, which has {what(size, value)}"
        for size, value in actual.items()
        if size in model.params and model.params[size] != value
    ]
    if problems:
        raise ValidationError(problems)
    return actual


def built_as(spec: ComponentSpec, value: Any, expected: type) -> Any:
    """``value``, what ``spec``'s factory returned, if it is an ``expected``; else the plugin's
    error naming the component and both types."""
    if not isinstance(value, expected):
        raise _contract_broken(spec, value, f"a {expected.__module__}.{expected.__qualname__}")
    return value


def _contract_broken(spec: ComponentSpec, value: Any, expected: str) -> PluginError:
    return PluginError(
        f"{spec.kind} {spec.name!r} from plugin {spec.plugin}: factory returned {type(value).__name__}, expected {expected}"
    )
