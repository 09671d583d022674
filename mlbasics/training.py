"""From an experiment to a trained model: validate, build the components on the device, train.

The loop is the lecture's own loop (zero the gradients, forward, loss, backward, step) and adds
nothing per step that the lecture's loop does not do: no ``.item()``, no progress update. Each
step's loss stays on the device; at each sync point the losses since the last one are copied out
in one transfer, and only then do callbacks (progress bars, checks, checkpoints) run. Sync points
come every ``log_every`` epochs if it is set; otherwise a :class:`SyncSchedule` places them: the
first after one epoch, then at intervals that double while an interval takes well under
:data:`SYNC_SECONDS`, up to about 100 per run and at most :data:`MAX_SYNC_INTERVAL` epochs, so a
run of a billion epochs shows progress (and is checked for divergence) within seconds, and the
losses waiting on the device never take more than a bounded buffer.
On CUDA the steps of each interval are, where safe, replays of one captured CUDA graph (see
:mod:`mlbasics.steppers`). After every eager step the loop reads one flag, :attr:`Setup.interrupt`,
so that Ctrl-C or SIGTERM (see :mod:`mlbasics.interrupts`) stops it at a step boundary. At every
sync point the loss and the parameters are checked for divergence (:mod:`mlbasics.divergence`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import torch
from torch import nn

from mlbasics.data import Dataset, data_fingerprint
from mlbasics.devices import resolve_device, synchronize
from mlbasics.errors import (
    PluginError,
    SaveError,
    TrainingError,
    UnknownComponentError,
    ValidationError,
    is_out_of_memory,
    one_line,
)
from mlbasics.experiment import Experiment, with_settings
from mlbasics.interrupts import Interrupt, signal_name
from mlbasics.notes import note_once
from mlbasics.registry import MODEL_SIZE_PARAMS, Registry, build_error, default_registry, shown_params
from mlbasics.solvers import ClosedFormSolver
from mlbasics.specs import ComponentSpec, Kind
from mlbasics.splits import Split, split_rows
from mlbasics.standardization import Standardization, fit_standardization
from mlbasics.steppers import Stepper, make_stepper

#: The most epochs whose losses wait on the device between two copies to the host. An automatic
#: sync interval is never longer; a longer ``log_every`` is copied out in pieces of this size (its
#: callbacks still run every ``log_every`` epochs). This bounds the memory of the losses in flight
#: (and the history buffer of a CUDA graph) however many epochs a run has.
MAX_SYNC_INTERVAL: Final = 10_000
#: An automatic sync interval doubles only while the doubled one is expected to take at most this
#: long, and halves once one takes more than twice this: progress stays live for a slow model too.
SYNC_SECONDS: Final = 0.5

#: A part of the data: features, targets (on the device, scaled) and ``None``; or, for a
#: memory-mapped table, the whole table (on the CPU, raw) and the part's row numbers.
Part = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def part_rows(part: Part) -> int:
    """The number of rows in a part: its row numbers', or its features' (on the device whole)."""
    x, _, rows = part
    return int(x.shape[0] if rows is None else rows.shape[0])


class StopTraining(Exception):
    """Raised by a callback to end training early; the result keeps the epochs done so far."""


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
    the current step (set by :func:`mlbasics.interrupts.stop_on_signals`).
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
    #: Under torchrun, the model wrapped in DistributedDataParallel that the steps go through
    #: (:mod:`mlbasics.data_parallel`); ``None`` in one process.
    ddp: nn.Module | None = None
    #: The epochs from the last sync point of the training loop to the next one, while :func:`fit`
    #: runs (``None`` before).
    interval: int | None = attrs.field(default=None, init=False)
    _data_fingerprint: str | None = attrs.field(default=None, init=False, repr=False)

    @property
    def end_epoch(self) -> int:
        """The epoch training ends at: the experiment's epochs, or 1 for a closed-form solver."""
        return 1 if isinstance(self.optimizer, ClosedFormSolver) else self.experiment.epochs

    @property
    def data_fingerprint(self) -> str:
        """The dataset's :func:`mlbasics.data.data_fingerprint`, computed once: the data do not
        change during a run, and a checkpoint is written many times."""
        if self._data_fingerprint is None:
            self._data_fingerprint = data_fingerprint(self.dataset.features, self.dataset.targets)
        return self._data_fingerprint

    @property
    def needs_closure(self) -> bool:
        return "closure" in self.specs["optimizer"].tags

    @property
    def n_train(self) -> int:
        """The number of training rows."""
        return part_rows((self.features, self.targets, self.train_rows))

    def evaluate(self) -> torch.Tensor:
        """The loss of the current parameters on the training rows (no gradients)."""
        from mlbasics.batches import evaluate_rows

        return evaluate_rows(self, self.features, self.targets, self.train_rows)

    def evaluate_part(self, part: Part) -> torch.Tensor:
        """The loss of the current parameters on a held-out part, on the device (no gradients)."""
        from mlbasics.batches import evaluate_rows

        return evaluate_rows(self, *part)

    def scale_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw rows scaled as the model is trained on them (for data not scaled in advance)."""
        if self.standardization is None:
            return x, y
        return self.standardization.features(x), self.standardization.targets(y)


class Callback:
    """Hooks into training at the moments the loss is copied off the device. Override any of them;
    raise :class:`StopTraining` to end training early."""

    #: The most epochs this callback lets pass between two sync points (``None``: no limit); the
    #: loop syncs at least that often. A checkpointer sets it to its interval.
    sync_every: int | None = None

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        """Before the first step; ``epochs`` is the epoch training will end at. A resumed run
        starts at ``len(setup.history)``."""

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        """After ``epoch`` epochs in all; ``losses`` (on the CPU) are those since the last call."""

    def on_train_end(self, setup: Setup, result: TrainResult | None) -> None:
        """Always called last: with the result, or with ``None`` if training failed with an error."""


@attrs.frozen(kw_only=True, eq=False)
class TrainResult:
    """What a training run produced: the loss history, the learned parameters and where they came from."""

    experiment: Experiment
    history: list[float]
    epochs: int
    device: str
    seconds: float
    parameters: dict[str, torch.Tensor]
    components: dict[Kind, ComponentInfo]
    model: nn.Module
    dataset: Dataset
    stopped: str | None = None
    #: How the steps were taken: "eager", "cuda-graph" (captured once, replayed) or "closed-form".
    step_mode: str = "eager"
    #: The signal that stopped training (SIGINT, SIGTERM), if one did.
    interrupted_by: int | None = None
    #: The epochs already done when this call began (non-zero for a resumed run).
    resumed_from: int = 0
    #: ``(epoch, validation loss)`` at every sync point (empty without a validation part).
    validation_history: list[tuple[int, float]] = attrs.field(factory=list)
    #: The loss on the test part, evaluated once at the end (``None`` without a test part).
    test_loss: float | None = None
    #: Rows in each part: ``{"train": ..., "validation": ..., "test": ...}``.
    split_sizes: dict[str, int] = attrs.field(factory=dict)
    #: The statistics the data were scaled with (``standardize``), or ``None``.
    standardization: Standardization | None = None

    @property
    def validation_loss(self) -> float | None:
        """The validation loss at the last sync point, or ``None`` without a validation part."""
        return self.validation_history[-1][1] if self.validation_history else None

    def parameters_in_data_units(self) -> dict[str, torch.Tensor]:
        """The learned parameters; for a linear model (``weight``, ``bias``) trained on
        standardized data, the W and b that act on the data's own units."""
        weight = self.parameters.get("weight")
        if self.standardization is None or weight is None or set(self.parameters) - {"weight", "bias"}:
            return self.parameters
        raw_weight, raw_bias = self.standardization.linear_in_data_units(weight, self.parameters.get("bias"))
        return {"weight": raw_weight, "bias": raw_bias}

    @property
    def final_loss(self) -> float:
        """The loss of the last epoch (computed before that epoch's update, as the lecture prints it)."""
        return self.history[-1]

    def __repr__(self) -> str:
        """A few lines: what was trained, where, for how long, the losses and (when few) the learned
        parameters. Everything else is on the attributes (``history``, ``parameters``, ``model``)."""
        from mlbasics import display

        return display.text(*display.train_result(self))

    def _repr_html_(self) -> str:
        """Jupyter's view: the same summary as a table, with the loss curve (and the fit) drawn."""
        from mlbasics import display

        return display.train_result_html(self)

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The trained model's predictions for ``features`` shaped (n, d), on the CPU."""
        device = next(self.model.parameters()).device
        x = features.to(device, torch.float32)
        with torch.no_grad():
            if self.standardization is not None:  # back in the data's units
                return self.standardization.predict(self.model, x).cpu()
            predictions: torch.Tensor = self.model(x)
        return predictions.cpu()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: losses, parameters as nested lists, and each component's provenance."""
        return {
            "final_loss": self.final_loss,
            "epochs": self.epochs,
            "device": self.device,
            "seconds": self.seconds,
            "stopped": self.stopped,
            "step_mode": self.step_mode,
            "interrupted_by": signal_name(self.interrupted_by) if self.interrupted_by else None,
            "resumed_from": self.resumed_from,
            "parameters": {name: value.tolist() for name, value in self.parameters.items()},
            "components": {kind: info.to_dict() for kind, info in self.components.items()},
            "experiment": self.experiment.to_dict(),
            "history": self.history,
            **self._held_out_dict(),
        }

    def _held_out_dict(self) -> dict[str, Any]:
        """The keys of held-out data and standardization, present only where the run had them."""
        extra: dict[str, Any] = {}
        if self.split_sizes and self.split_sizes.get("train") != self.dataset.n_samples:
            extra["split"] = self.split_sizes
        if self.validation_history:
            extra["validation_loss"] = self.validation_loss
            extra["validation_history"] = [list(pair) for pair in self.validation_history]
        if self.test_loss is not None:
            extra["test_loss"] = self.test_loss
        if self.standardization is not None:
            extra["standardization"] = {
                name: value.tolist() for name, value in self.standardization.to_tensors().items()
            }
            in_data_units = self.parameters_in_data_units()
            if in_data_units is not self.parameters:
                extra["parameters_in_data_units"] = {k: v.tolist() for k, v in in_data_units.items()}
        return extra


# -- putting the experiment together -------------------------------------------------------------


def prepare(experiment: Experiment, registry: Registry | None = None) -> Setup:
    """Validate ``experiment`` against the registry (all problems at once), then build its
    components on the chosen device. Raises a :class:`mlbasics.MlbasicsError` for any user error."""
    registry = registry or default_registry()
    problems = experiment.problems()
    unknown: list[str] = []
    specs: dict[Kind, ComponentSpec] = {}
    kwargs: dict[Kind, dict[str, Any]] = {}
    for kind, component in experiment.components().items():
        params = dict(component.params)
        if kind == "model":
            params = dict.fromkeys(MODEL_SIZE_PARAMS, 1) | params  # real sizes come from the dataset
        try:
            specs[kind], kwargs[kind] = registry.resolve(kind, component.name, params)
        except UnknownComponentError as exc:
            unknown.append(f"{kind} {component.name!r}")
            problems += exc.problems
        except ValidationError as exc:
            problems += exc.problems
        except PluginError as exc:
            problems.append(str(exc))
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

    dataset = _checked(specs["dataset"], registry.instantiate(specs["dataset"], kwargs["dataset"]), Dataset)
    sizes = _model_sizes(experiment, dataset)
    kwargs["model"] = sizes | {k: v for k, v in kwargs["model"].items() if k not in MODEL_SIZE_PARAMS}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(experiment.seed)
        model = _checked(specs["model"], registry.instantiate(specs["model"], kwargs["model"]), nn.Module)
    try:
        model.to(device).train()
    except (RuntimeError, MemoryError) as exc:  # a model that fits in the host's memory but not the GPU's
        if not is_out_of_memory(exc):
            raise
        raise build_error(specs["model"], kwargs["model"], exc) from exc
    loss = registry.instantiate(specs["loss"], kwargs["loss"])
    if isinstance(loss, nn.Module):
        loss.to(device)
    optimizer = registry.instantiate(specs["optimizer"], kwargs["optimizer"], list(model.parameters()))
    if isinstance(optimizer, ClosedFormSolver):
        problem = optimizer.check(model, specs["loss"])
        if problem:
            raise ValidationError([problem])
    elif not isinstance(optimizer, torch.optim.Optimizer):
        raise _contract_broken(specs["optimizer"], optimizer, "a torch.optim.Optimizer or a ClosedFormSolver")
    components = {kind: component_info(registry, specs[kind], kwargs[kind]) for kind in specs}
    data = _place_data(
        experiment, dataset, device, specs, closed_form=isinstance(optimizer, ClosedFormSolver)
    )
    return Setup(
        experiment=experiment,
        device=device,
        dataset=dataset,
        model=model,
        loss=loss,
        optimizer=optimizer,
        specs=specs,
        components=components,
        **data,
    )


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
            split = split_rows(
                dataset.n_samples,
                validation=experiment.validation,
                test=experiment.test,
                seed=experiment.split_seed,
            )
        except ValueError as exc:
            raise ValidationError([f"dataset {name!r}: {exc}"]) from None
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
    return {
        "features": train[0],
        "targets": train[1],
        "train_rows": train[2],
        "validation": placed("validation"),
        "test": placed("test"),
        "split": split,
        "standardization": standardization,
    }


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
            f"{held.targets.shape[1]} target columns, but its training rows {dataset.n_features} and "
            f"{dataset.targets.shape[1]}"
        )


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


def _model_sizes(experiment: Experiment, dataset: Dataset) -> dict[str, int]:
    """The model's in/out sizes come from the dataset; sizes given explicitly must agree with it."""
    actual = {"in_features": dataset.n_features, "out_features": int(dataset.targets.shape[1])}
    model = experiment.model
    problems = [
        f"model {model.name!r}: {size} = {model.params[size]} does not match dataset "
        f"{experiment.dataset.name!r}, which has {value} {'feature' if size == 'in_features' else 'target'} "
        f"column{'s' if value != 1 else ''}"
        for size, value in actual.items()
        if size in model.params and model.params[size] != value
    ]
    if problems:
        raise ValidationError(problems)
    return actual


def _checked(spec: ComponentSpec, value: Any, expected: type) -> Any:
    if not isinstance(value, expected):
        raise _contract_broken(spec, value, f"a {expected.__module__}.{expected.__qualname__}")
    return value


def _contract_broken(spec: ComponentSpec, value: Any, expected: str) -> PluginError:
    return PluginError(
        f"{spec.kind} {spec.name!r} from plugin {spec.plugin}: factory returned {type(value).__name__}, expected {expected}"
    )


# -- the loop ----------------------------------------------------------------------------------


def gradient_reset(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """What ``optimizer.zero_grad()`` does, as cheaply as possible.

    ``torch.optim.Optimizer.zero_grad`` sets every gradient to ``None``, inside a profiler range
    and a TorchDynamo guard that cost more than the resetting itself (about 20 µs a step on a CPU,
    some 4% of a step of the lecture's MLP). For an optimizer that keeps that method, the same
    resetting is done directly; one that defines its own ``zero_grad`` gets it called.
    """
    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
        return optimizer.zero_grad
    parameters = [p for group in optimizer.param_groups for p in group["params"]]

    def set_to_none() -> None:
        for parameter in parameters:
            parameter.grad = None

    return set_to_none


def eager_step(setup: Setup) -> Callable[[], torch.Tensor]:
    """One epoch of training, returning its loss (detached, still on the device): one full-batch
    step, or with ``batch_size`` a pass of mini-batch steps (:mod:`mlbasics.batches`)."""
    from mlbasics.batches import is_full_batch, minibatch_epoch

    if setup.ddp is not None:  # data-parallel under torchrun: each rank a shard of every batch
        from mlbasics.data_parallel import eager_step as data_parallel_step

        return data_parallel_step(setup)
    body = batch_step(setup)
    if is_full_batch(setup):
        x, y = setup.features, setup.targets
        return lambda: body(x, y)
    return minibatch_epoch(setup, body)


def batch_step(setup: Setup) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """One training step on rows ``x``, ``y``, returning its loss (detached, still on the device)."""
    model, loss_fn, optimizer = setup.model, setup.loss, setup.optimizer
    assert isinstance(optimizer, torch.optim.Optimizer)
    zero_grad = gradient_reset(optimizer)

    if setup.needs_closure:

        def step_with_closure(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            def closure() -> Any:
                zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                return loss

            loss: torch.Tensor = optimizer.step(closure)  # type: ignore[assignment]
            return loss.detach()

        return step_with_closure

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return loss.detach()

    return step


def sync_interval(experiment: Experiment, callbacks: Sequence[Callback] = ()) -> int:
    """The most epochs between copies of the loss off the device: ``log_every``, or about 100 per
    run (at most :data:`MAX_SYNC_INTERVAL`), or less if a callback asks for it
    (:attr:`Callback.sync_every`)."""
    interval = experiment.log_every or min(MAX_SYNC_INTERVAL, max(1, experiment.epochs // 100))
    return min([interval, *(c.sync_every for c in callbacks if c.sync_every)])


class SyncSchedule:
    """Where the training loop's sync points fall.

    With ``log_every`` set: every ``log_every`` epochs, or every ``sync_every`` of a callback that
    asks for less (as ever: exact, the same on every machine). Otherwise the interval starts at one
    epoch and doubles after each sync point while the doubled interval would take at most
    :data:`SYNC_SECONDS`, up to :func:`sync_interval`; it halves again when one takes more than
    twice that. Each sync point falls on a multiple of the current interval and of every callback's
    ``sync_every`` (so checkpoints come at exact multiples). The losses computed do not depend on
    where the sync points fall; only what callbacks see between them does.
    """

    def __init__(self, experiment: Experiment, callbacks: Sequence[Callback] = ()) -> None:
        #: The longest interval this schedule gives.
        self.limit = sync_interval(experiment, callbacks)
        self.automatic = experiment.log_every is None
        #: The current interval: fixed, or (automatic) grown from 1 towards :attr:`limit`.
        self.interval = 1 if self.automatic else self.limit
        self._every = sorted({c.sync_every for c in callbacks if c.sync_every})

    def next(self, done: int, end: int) -> int:
        """The epochs to train after ``done`` before the next sync point (``end``: the last epoch)."""
        if self.automatic:
            steps = min(every - done % every for every in [self.interval, *self._every])
        else:
            steps = self.interval
        return max(1, min(steps, end - done))

    def record(self, epochs: int, seconds: float) -> None:
        """``epochs`` were trained in ``seconds`` (the steps and the copy, not the callbacks)."""
        if not self.automatic or epochs < 1:
            return
        per_epoch = seconds / epochs
        if per_epoch * 2 * self.interval <= SYNC_SECONDS:
            self.interval = min(2 * self.interval, self.limit)
        elif per_epoch * self.interval > 2 * SYNC_SECONDS:
            self.interval = max(1, self.interval // 2)


def fit(
    setup: Setup, callbacks: Sequence[Callback] = (), *, divergence_threshold: float | None = None
) -> TrainResult:
    """Train the prepared ``setup`` up to the experiment's epochs and return the result.

    A non-finite loss or parameter, or (with ``divergence_threshold``) a loss that exceeds that many
    times the first epoch's loss, raises :class:`mlbasics.DivergenceError` at the next sync point.

    A callback that cannot write what it must (a :class:`Checkpointer` on a full disk) raises
    :class:`mlbasics.SaveError`: training stops there, every callback's ``on_train_end`` still gets
    the result so far, and the error is raised with that result as its ``result``, so the training
    done is never lost silently.
    """
    from mlbasics.divergence import DivergenceCheck  # it subclasses Callback, defined above

    callbacks = [DivergenceCheck(divergence_threshold), *callbacks]  # first: nothing sees a bad state
    epochs = setup.end_epoch
    for callback in callbacks:
        callback.on_train_start(setup, epochs)
    result: TrainResult | None = None
    failure: SaveError | None = None
    try:
        result, failure = _run(setup, epochs, callbacks)
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise TrainingError(_out_of_memory(setup, exc)) from exc
    finally:
        ended = _end(setup, callbacks, result)  # with an error in flight, that error wins
    failure = failure or ended
    if failure is not None:
        failure.result = result
        raise failure
    assert result is not None
    return result


def _out_of_memory(setup: Setup, exc: BaseException) -> str:
    """One line for a training step that ran out of memory: which model, how big, how many rows."""
    model = setup.components["model"]
    sizes = shown_params(model.params)
    rows = setup.n_train
    return (
        f"out of memory training model {model.name!r}{f' ({sizes})' if sizes else ''} on {setup.device} "
        f"with {rows:,} rows, in epoch {len(setup.history) + 1}; choose smaller sizes ({one_line(exc)})"
    )


def _end(setup: Setup, callbacks: Sequence[Callback], result: TrainResult | None) -> SaveError | None:
    """Every callback's ``on_train_end``; a :class:`SaveError` of one does not keep it from the rest."""
    failure = None
    for callback in callbacks:
        try:
            callback.on_train_end(setup, result)
        except SaveError as exc:
            failure = failure or exc
    return failure


def _run(setup: Setup, epochs: int, callbacks: Sequence[Callback]) -> tuple[TrainResult, SaveError | None]:
    history = setup.history  # the epochs done before (a resumed run); extended at every sync
    resumed_from = len(history)
    stopped = None
    failure = None
    mode = "closed-form"
    interrupted = 0
    synchronize(setup.device)
    start = time.perf_counter()
    try:
        if isinstance(setup.optimizer, ClosedFormSolver):
            if not history:
                setup.optimizer.solve(setup.model, setup.features, setup.targets)
                losses = _copy_out(setup, setup.evaluate().reshape(1))
                history.extend(losses.tolist())
                for callback in callbacks:
                    callback.on_sync(setup, 1, losses)
        else:
            schedule = SyncSchedule(setup.experiment, callbacks)
            interrupt = setup.interrupt
            capacity = min(schedule.limit, MAX_SYNC_INTERVAL)
            stepper = make_stepper(setup, eager_step(setup), epochs=epochs - len(history), interval=capacity)
            mode = stepper.mode
            while len(history) < epochs:
                steps = setup.interval = schedule.next(len(history), epochs)
                began = time.perf_counter()
                losses = _copied_out(setup, stepper, steps, capacity)
                schedule.record(len(losses), time.perf_counter() - began)
                mode = stepper.mode
                history.extend(losses.tolist())
                for callback in callbacks:
                    callback.on_sync(setup, len(history), losses)
                if interrupt.signal:
                    interrupted = interrupt.signal
                    raise StopTraining(
                        f"interrupted by {signal_name(interrupted)} after epoch {len(history)}"
                    )
    except StopTraining as stop:
        stopped = str(stop) or "stopped by a callback"
    except SaveError as exc:  # the training so far is kept: fit raises this with the result
        failure = exc
        stopped = f"saving failed after epoch {len(history)}"
    synchronize(setup.device)
    seconds = time.perf_counter() - start
    if not history:
        raise ValidationError(["training stopped before the first epoch finished"])
    test_loss = float(setup.evaluate_part(setup.test)) if setup.test is not None else None
    result = TrainResult(
        experiment=setup.experiment,
        history=list(history),
        epochs=len(history),
        device=str(setup.device),
        seconds=seconds,
        parameters={name: p.detach().cpu().clone() for name, p in setup.model.named_parameters()},
        components=setup.components,
        model=setup.model,
        dataset=setup.dataset,
        stopped=stopped,
        step_mode=mode,
        interrupted_by=interrupted or None,
        resumed_from=resumed_from,
        validation_history=list(setup.validation_history),
        test_loss=test_loss,
        split_sizes=_split_sizes(setup),
        standardization=setup.standardization,
    )
    return result, failure


def _copied_out(setup: Setup, stepper: Stepper, steps: int, capacity: int) -> torch.Tensor:
    """``steps`` steps' losses, on the host: one copy (one host sync), or one per ``capacity``
    steps for a longer interval, so that no more than that many wait on the device."""
    if steps <= capacity:
        return _copy_out(setup, stepper.run(steps))
    parts: list[torch.Tensor] = []
    done = 0
    while steps > done:
        want = min(steps - done, capacity)
        part = stepper.run(want)
        done += len(part)
        if done < steps and len(part) == want:
            parts.append(part.cpu())
            continue
        parts.append(_copy_out(setup, part, before=done - len(part)))  # the last piece
        break
    return torch.cat(parts)


def _copy_out(setup: Setup, losses: torch.Tensor, *, before: int = 0) -> torch.Tensor:
    """Training ``losses`` (on the device) on the host, ``before`` epochs after the history's end.
    With a validation part, its loss (of the parameters after the last of these steps) is computed
    on the device and comes out in the same transfer, and is recorded in
    :attr:`Setup.validation_history`. The data's file, if it has one, is checked for changes here
    too."""
    setup.dataset.check_unchanged()
    if setup.validation is None:
        return losses.cpu()
    validation = setup.evaluate_part(setup.validation).reshape(1).to(losses.dtype)
    both = torch.cat([losses, validation]).cpu()
    setup.validation_history.append((len(setup.history) + before + len(losses), float(both[-1])))
    return both[:-1]


def _split_sizes(setup: Setup) -> dict[str, int]:
    held = {"validation": setup.validation, "test": setup.test}
    return {"train": setup.n_train} | {
        name: 0 if part is None else part_rows(part) for name, part in held.items()
    }


def train(
    experiment: Experiment | None = None,
    /,
    *,
    registry: Registry | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    live: bool = False,
    save: str | Path | None = None,
    checkpoint_every: int | None = None,
    overwrite: bool = False,
    divergence_threshold: float | None = None,
    **settings: Any,
) -> TrainResult:
    """Train an experiment and return its :class:`TrainResult`.

    ``settings`` override fields of ``experiment`` (or of the default experiment, the lecture's MLP):
    ``dataset``, ``model``, ``loss``, ``optimizer`` (a name, a ``{"name": ..., **params}`` dict or a
    :class:`Component`), ``epochs``, ``device``, ``seed``, ``log_every``, ``cuda_graph``.
    ``progress=True`` shows a progress bar on stderr (in a Jupyter notebook, under the cell).
    ``live=True`` draws the loss curve under the running cell of a Jupyter notebook, updated as
    training goes on (:class:`mlbasics.notebook.LivePlot`; outside a notebook it draws nothing).

    ``save`` names a run folder to checkpoint into (at the end, and every ``checkpoint_every``
    epochs); a folder that already holds a run, or that another run is saving into, is refused
    unless ``overwrite`` (the latter always). Continue a saved run with :func:`mlbasics.resume`.
    If a checkpoint cannot be written (a full disk), a :class:`mlbasics.SaveError` says which one
    is the last good one and carries the result in its ``result``. ``divergence_threshold``: see
    :func:`fit`.
    """
    experiment = with_settings(experiment or Experiment(), settings, caller="train()")
    if checkpoint_every is not None and save is None:
        raise ValidationError(["train(): checkpoint_every needs save (a run folder)"])
    if save is not None:
        from mlbasics.checkpoints import check_run_folder

        check_run_folder(save, overwrite=overwrite)  # before building anything: it may take long
    setup = prepare(experiment, registry)
    if save is not None:  # locked (and created) only now: a mistake in the experiment creates nothing
        from mlbasics.checkpoints import Checkpointer

        callbacks = [*callbacks, Checkpointer(save, every=checkpoint_every, overwrite=overwrite)]
    if progress:
        from mlbasics.progress import ProgressBar

        callbacks = [ProgressBar(), *callbacks]
    if live:
        from mlbasics.notebook import LivePlot

        callbacks = [*callbacks, LivePlot()]
    return fit(setup, callbacks, divergence_threshold=divergence_threshold)
