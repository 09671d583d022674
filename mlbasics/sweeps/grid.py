"""Sweeps: one experiment trained over a grid of seeds, learning rates and other settings.

Each point of the grid is a *member*: the experiment with those values set, built exactly as
:func:`mlbasics.train` builds it (same validation, same seeded initialisation). Where the members
differ only in what a stacked model can hold -- the initial weights (``seed``) and the optimizer's
numeric params (learning rate, momentum, ...) -- and the optimizer declares a stacked form
(``ComponentSpec.stacked``, as the built-in ``sgd`` does), they are trained together as one vmapped
ensemble on one device (:mod:`mlbasics.sweeps.ensemble`). Otherwise they are trained one after another,
each through :func:`mlbasics.training.runner.run` as :func:`mlbasics.train` trains it, and a note says why.

Every member gets the experiment's metrics (:mod:`mlbasics.engine.metrics`), named as a single run names
them: on the training and validation rows at each sync point, on the test rows at the end. An
ensemble computes them for all its members at once, on the device, from predictions shaped
(members, n, k), copied out with the losses in one transfer. The experiment's callbacks run for
each member on its own; an ensemble cannot give them that, so such a sweep trains one member after
another (and says so).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import torch

from mlbasics import distributed
from mlbasics.core.registry import Registry, default_registry
from mlbasics.distributed import launch
from mlbasics.engine.experiment import Experiment, with_settings
from mlbasics.engine.interrupts import Interrupt, signal_name, stop_on_signals
from mlbasics.engine.loop import SyncSchedule
from mlbasics.engine.setup import Part, Setup, prepare
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import (
    DivergenceError,
    MlbasicsError,
    PluginBugError,
    TrainingError,
    ValidationError,
    is_out_of_memory,
    one_line,
)
from mlbasics.notes import note
from mlbasics.sweeps import distributed as distributed_sweeps
from mlbasics.sweeps.ensemble import (
    NotVmappable,
    StackedForward,
    StackedUpdate,
    ValuesOf,
    model_problem,
    stacked_forward,
    stacked_hyper,
    train_stacked,
)
from mlbasics.sweeps.results import SEQUENTIAL as SEQUENTIAL
from mlbasics.sweeps.results import VMAP as VMAP
from mlbasics.sweeps.results import SweepMember as SweepMember
from mlbasics.sweeps.results import SweepResult as SweepResult
from mlbasics.sweeps.results import member_name, values_label
from mlbasics.training.runner import run

if TYPE_CHECKING:
    from mlbasics.show.progress import ProgressBar

#: The most members one sweep may have. Each member is built on its own (its model, optimizer, data
#: and loss history are held until the sweep ends), so a grid must stay countable; 10,000 is a
#: hundred times the lecture's sweeps. A larger grid is refused, with its size, before anything of
#: it is built.
MAX_MEMBERS: Final = 10_000


def grid_axes(
    seeds: Sequence[int] | None = None,
    lrs: Sequence[float] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, list[Any]]:
    """The sweep's axes by setting key (``seed``, ``optimizer.lr``, ...), checked for shape."""
    axes: dict[str, Sequence[Any]] = {}
    problems: list[str] = []
    named = [("seed", seeds), ("optimizer.lr", lrs)]
    for key, values in [*named, *(grid or {}).items()]:
        if values is None:
            continue
        if key in axes:
            problems.append(f"sweep: {key!r} is given twice")
            continue
        if isinstance(values, str | bytes) or not isinstance(values, Sequence | range):
            problems.append(f"sweep: {key!r} needs a list of values, got {values!r}")
            continue
        if len(values) == 0:
            problems.append(f"sweep: {key!r} has no values")
            continue
        axes[key] = values  # not copied yet: a range(10**10) must be refused, not listed
    if not axes and not problems:
        problems.append("sweep: nothing to vary; give seeds, lrs or a grid")
    if problems:
        raise ValidationError(problems)
    size_problem = too_many_members({key: len(values) for key, values in axes.items()})
    if size_problem is not None:
        raise ValidationError([size_problem])
    return {key: list(values) for key, values in axes.items()}


def too_many_members(sizes: Mapping[str, int]) -> str | None:
    """Why a grid with ``sizes`` values per axis has more than :data:`MAX_MEMBERS` members, or ``None``."""
    members = math.prod(sizes.values())
    if members <= MAX_MEMBERS:
        return None
    shape = " x ".join(f"{count:,} values of {key}" for key, count in sizes.items())
    return f"sweep: {shape} is {members:,} members; a sweep holds at most {MAX_MEMBERS:,}"


def grid_members(
    experiment: Experiment, axes: Mapping[str, Sequence[Any]]
) -> list[tuple[dict[str, Any], Experiment]]:
    """Every combination of the axes' values (the last axis varies fastest), with its experiment."""
    keys = list(axes)
    members = []
    for combination in itertools.product(*(axes[key] for key in keys)):
        values = dict(zip(keys, combination, strict=True))
        member = experiment
        for key, value in values.items():
            member = member.with_value(key, value)
        members.append((values, member))
    return members


def _prepare_all(members: Sequence[tuple[dict[str, Any], Experiment]], registry: Registry) -> list[Setup]:
    """Build every member; report all problems at once, naming members only where it matters."""
    setups: list[Setup] = []
    failures: list[tuple[str, list[str]]] = []
    for values, experiment in members:
        try:
            setups.append(prepare(experiment, registry))
        except MlbasicsError as exc:
            lines = list(exc.problems) if isinstance(exc, ValidationError) else str(exc).splitlines()
            failures.append((values_label(values), lines))
    if not failures:
        return setups
    common = (
        set.intersection(*(set(lines) for _, lines in failures)) if len(failures) == len(members) else set()
    )
    problems = [line for line in failures[0][1] if line in common]
    problems += [
        f"member {label}: {line}" for label, lines in failures for line in lines if line not in common
    ]
    raise ValidationError(problems)


# -- training ------------------------------------------------------------------------------------


@attrs.frozen
class EnsemblePlan:
    """How the members train as one ensemble: their optimizer's stacked update and its ``hyper``."""

    update: StackedUpdate
    hyper: dict[str, Any]


def ensemble_plan(setups: Sequence[Setup]) -> EnsemblePlan | str:
    """The stacked update that trains these members as one vmapped ensemble, or why they cannot be
    trained so."""
    first = setups[0]
    spec = first.specs["optimizer"]
    name = spec.name
    if any(s.experiment.optimizer.name != first.experiment.optimizer.name for s in setups[1:]):
        return "members differ in their optimizer"
    if isinstance(first.optimizer, ClosedFormSolver):
        return f"optimizer {name!r} solves in closed form: there are no steps to batch"
    if first.experiment.batch_size is not None and first.experiment.batch_size < first.n_train:
        return f"members train on mini-batches (batch_size {first.experiment.batch_size}), which the ensemble does not batch"
    if first.dataset.memory_mapped:
        return "the dataset is memory-mapped, and the ensemble trains on data held whole on the device"
    if first.callbacks:
        names = ", ".join(component.name for component in first.experiment.callbacks)
        return f"the experiment's callbacks ({names}) run on each member's own training, which the ensemble does not have"
    if first.needs_closure:
        return f"optimizer {name!r} needs a closure, which the ensemble cannot batch"
    if spec.stacked is None:
        return f"optimizer {name!r} declares no stacked form (ComponentSpec.stacked), so its update cannot be batched"
    for setup in setups:
        assert isinstance(setup.optimizer, torch.optim.Optimizer)  # prepare() allows nothing else here
        groups = setup.optimizer.param_groups
        if len(groups) != 1:
            return f"optimizer {name!r} has {len(groups)} parameter groups; a stacked update takes one"
        if [id(p) for p in groups[0]["params"]] != [id(p) for p in setup.model.parameters()]:
            return f"optimizer {name!r} does not train exactly the model's parameters, in order"
    for setup in setups[1:]:
        if setup.experiment.epochs != first.experiment.epochs:
            return "members differ in epochs"
        if setup.experiment.loss != first.experiment.loss:
            return "members differ in their loss"
        if setup.device != first.device:
            return "members differ in their device"
        if not (torch.equal(setup.features, first.features) and torch.equal(setup.targets, first.targets)):
            return "members train on different data"
    problem = model_problem([s.model for s in setups], first.specs["model"].name)
    if problem is not None:
        return problem
    dtype = next(first.model.parameters()).dtype
    hyper = stacked_hyper([s.components["optimizer"].params for s in setups], first.device, dtype)
    if isinstance(hyper, str):
        return hyper
    try:
        update = spec.load_stacked()
    except MlbasicsError as exc:
        return str(exc)
    assert update is not None
    return EnsemblePlan(update=update, hyper=hyper)


def sweep(
    experiment: Experiment | None = None,
    /,
    *,
    seeds: Sequence[int] | None = None,
    lrs: Sequence[float] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    registry: Registry | None = None,
    vmap: bool = True,
    progress: bool = False,
    signals: bool = False,
    target: str | Sequence[str] | None = None,
    **settings: Any,
) -> SweepResult:
    """Train ``experiment`` (default: the lecture's MLP) for every combination of ``seeds``,
    ``lrs`` (the optimizer's ``lr``) and ``grid`` (setting key -> values, e.g.
    ``{"optimizer.momentum": [0.0, 0.9]}``), as one vmapped ensemble where possible.

    ``settings`` override fields of the experiment, as in :func:`mlbasics.train` (data held in
    memory included: ``dataset=(X, y)``, ``validation=(X_val, y_val)``, ``target=`` for a DataFrame). ``vmap=False``
    trains the members one after another. ``progress=True`` shows one progress bar on stderr,
    over model-epochs (members × epochs). ``signals=True``: Ctrl-C or SIGTERM stops training at the
    end of the current step, and the result holds what was trained so far (the members' histories
    up to there, the members not started left out), marked :attr:`SweepResult.interrupted_by`, as
    ``mlbasics sweep`` does (not under torchrun, where the signal ends every rank).
    """
    experiment = with_settings(experiment or Experiment(), settings, caller="sweep()", target=target)
    axes = grid_axes(seeds, lrs, grid)
    members = grid_members(experiment, axes)
    registry = registry or default_registry()
    launched = launch()  # started by torchrun: this rank trains its share (mlbasics.sweeps.distributed)
    own = members if launched is None else distributed_sweeps.share_of(members, launched)
    with distributed.together():  # under torchrun, a mistake in one rank's members stops every rank
        start = time.perf_counter()
        setups = _prepare_all(own, registry)
        setup_seconds = time.perf_counter() - start
    first = (
        0 if launched is None else distributed.share(len(members), launched.rank, launched.world_size).start
    )
    for number, ((values, _), setup) in enumerate(zip(own, setups, strict=True), start=first):
        setup.member = member_name(number, values, len(members))  # a file-writing callback's own file
    bar = None
    if progress and (launched is None or launched.is_main):  # one bar, on rank 0
        from mlbasics.show.progress import ProgressBar  # rich, only when a bar is shown

        scale = len(members) / len(own)  # under torchrun, rank 0's share stands for the grid
        bar = ProgressBar(model_epochs=round(sum(s.end_epoch for s in setups) * scale), scale=scale)
    interrupt = Interrupt()
    try:
        with contextlib.ExitStack() as stack:
            if signals and launched is None:
                stack.enter_context(stop_on_signals(interrupt))
            stack.enter_context(distributed.together())
            result = train_setups(
                experiment, axes, own, setups, setup_seconds, vmap=vmap, bar=bar, interrupt=interrupt
            )
    finally:
        if bar is not None:
            bar.close()
    return result if launched is None else distributed_sweeps.gathered(experiment, axes, members, result)


def train_setups(
    experiment: Experiment,
    axes: Mapping[str, Any],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    setups: Sequence[Setup],
    setup_seconds: float,
    *,
    vmap: bool,
    bar: ProgressBar | None,
    interrupt: Interrupt | None = None,
) -> SweepResult:
    """Train the prepared members: as one vmapped ensemble where they allow it (and ``vmap``), else
    one after another, with a note saying why. ``interrupt``, once set, ends training after the
    current step (see :func:`sweep`'s ``signals``)."""
    interrupt = interrupt or Interrupt()
    plan = ensemble_plan(setups) if vmap else None
    reason = plan if isinstance(plan, str) else None
    if isinstance(plan, EnsemblePlan):
        try:
            return _vmapped(experiment, axes, members, setups, plan, setup_seconds, bar, interrupt)
        except NotVmappable as exc:
            if exc.part == "model":
                reason = f"model {setups[0].specs['model'].name!r} fails under vmap ({exc})"
            else:
                reason = f"optimizer {setups[0].specs['optimizer'].name!r}: its stacked form fails ({exc})"
    if reason is not None:
        note(f"training the {len(setups)} members one after another: {reason}")
    return _one_after_another(experiment, axes, members, setups, setup_seconds, reason, bar, interrupt)


def _vmapped(
    experiment: Experiment,
    axes: Mapping[str, Any],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    setups: Sequence[Setup],
    plan: EnsemblePlan,
    setup_seconds: float,
    bar: ProgressBar | None,
    interrupt: Interrupt,
) -> SweepResult:
    first = setups[0]
    count = len(setups)
    epochs = first.experiment.epochs
    on_sync = None
    if bar is not None:
        bar.on_train_start(first, count * epochs)

        modes = _metric_modes(first)

        def on_sync(done: int, losses: torch.Tensor, values: Mapping[str, torch.Tensor]) -> None:
            # One bar for the ensemble, over model-epochs, showing the best of the members' latest
            # values: the bar reads them where a single run keeps them, on the first member's setup
            # (which the ensemble only copied its start from).
            best = {
                name: _best(row, modes.get(name.removeprefix("validation_"), "min"))
                for name, row in values.items()
            }
            if "validation_loss" in best:
                first.validation_history.append((done, best["validation_loss"]))
            first.values.update(best)
            bar.on_sync(first, done * count, torch.tensor([_best(losses[-1], "min")]))

    forward = stacked_forward(first.model)
    try:
        trained = train_stacked(
            [s.model for s in setups],
            first.loss,
            first.features,
            first.targets,
            plan.update,
            plan.hyper,
            epochs=epochs,
            schedule=SyncSchedule(first.experiment),
            sync_values=_stacked_values(first, forward, at_end=False),
            end_values=_stacked_values(first, forward, at_end=True),
            on_sync=on_sync,
            interrupt=interrupt,
        )
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise TrainingError(
            f"out of memory training {count:,} members of model {first.specs['model'].name!r} as one vmapped "
            f"ensemble on {first.device}; sweep fewer at once, or train them one after another with "
            f"--sequential ({one_line(exc)})"
        ) from exc
    # (members, sync points): each member's history a contiguous row, in float64 as the sequential
    # path holds the Python floats a single run records
    values = {name: row.T.double().contiguous() for name, row in trained.values.items()}
    last = {name: row[:, -1].tolist() for name, row in values.items()} | {
        name: row.tolist() for name, row in trained.end_values.items()
    }
    sync_epochs = torch.tensor(trained.sync_epochs, dtype=torch.int64)
    metric_names = [name for name in values if name != "validation_loss"]
    stopped = None
    if trained.interrupted_by is not None:
        stopped = (
            f"interrupted by {signal_name(trained.interrupted_by)} after epoch {trained.histories.shape[1]}"
        )
    result_members = tuple(
        SweepMember(
            index=i,
            values=member_values,
            experiment=member,
            history=trained.histories[i],
            parameters=trained.parameters[i],
            validation_loss=last["validation_loss"][i] if "validation_loss" in last else None,
            test_loss=last["test_loss"][i] if "test_loss" in last else None,
            metrics={name: last[name][i] for name in last if name not in ("validation_loss", "test_loss")},
            sync_epochs=sync_epochs if metric_names else torch.empty(0, dtype=torch.int64),
            metric_history={name: values[name][i] for name in metric_names},
            stopped=stopped,
        )
        for i, (member_values, member) in enumerate(members)
    )
    return SweepResult(
        interrupted_by=trained.interrupted_by,
        experiment=experiment,
        axes=tuple(axes),
        members=result_members,
        mode=VMAP,
        reason=None,
        device=str(first.device),
        seconds=trained.seconds,
        setup_seconds=setup_seconds,
        metric_modes=_metric_modes(first),
    )


def _stacked_values(setup: Setup, forward: StackedForward, *, at_end: bool) -> ValuesOf | None:
    """What the training loop computes for one model, for an ensemble of ``setup``'s members:
    at a sync point (``at_end=False``) the validation loss and every metric on the training and
    validation rows; at the end the test loss and every metric on the test rows (``"test_"``).
    Each value is shaped (members,), on the device; ``None`` where there is nothing to compute.
    ``forward(params, x)`` gives the members' predictions (members, n, k) (see
    :func:`mlbasics.sweeps.ensemble.stacked_forward`)."""
    parts: list[tuple[Part, str, bool]] = []  # (part, prefix of the names, whether its loss counts)
    if at_end:
        if setup.test is not None:
            parts.append((setup.test, "test_", True))
    else:
        if setup.metrics:
            parts.append(((setup.features, setup.targets, setup.train_rows), "", False))
        if setup.validation is not None:
            parts.append((setup.validation, "validation_", True))
    if not parts:
        return None
    member_loss = torch.func.vmap(setup.loss, in_dims=(0, None))
    scaling = setup.standardization

    def values_of(params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        values: dict[str, torch.Tensor] = {}
        for (x, y, rows), prefix, with_loss in parts:
            assert rows is None  # a memory-mapped dataset never trains as an ensemble (ensemble_plan)
            prediction = forward(params, x)
            if with_loss:  # the loss in the units the model trains in, as Setup.evaluate_part gives it
                values[prefix + "loss"] = member_loss(prediction, y).reshape(-1)
            if setup.metrics:  # the metrics in the data's units, as metrics.predictions gives them
                target = y
                if scaling is not None:
                    prediction, target = scaling.outputs(prediction), scaling.outputs(target)
                # each member's targets: (members, n, k), or class indices (members, n)
                labels = setup.dataset.classes is not None
                target = target.expand(prediction.shape[:-1]) if labels else target.expand_as(prediction)
                for name, metric in setup.metrics.items():
                    values[prefix + name] = _per_member(
                        setup, name, metric(prediction, target), len(prediction)
                    )
        return values

    return values_of


def _per_member(setup: Setup, name: str, value: torch.Tensor, members: int) -> torch.Tensor:
    """A metric's value for predictions shaped (members, n, k): one per member, or a plugin's bug."""
    if value.shape != (members,):
        info = next(i for i in setup.listed["metrics"] if i.name == name)
        message = (
            f"metric {name!r} from plugin {info.plugin} gave a value shaped {tuple(value.shape)} for "
            f"predictions shaped ({members}, rows, outputs); a metric reduces the last two dimensions only"
        )
        raise PluginBugError(message, error=ValueError(message))
    return value


def _best(values: torch.Tensor, mode: str) -> float:
    """The lowest (``mode="min"``) or highest finite value, or NaN if none is finite."""
    finite = values[torch.isfinite(values)]
    if not len(finite):
        return math.nan
    return float(finite.min() if mode == "min" else finite.max())


def _metric_modes(setup: Setup) -> dict[str, str]:
    return {name: metric.mode for name, metric in setup.metrics.items()}


def _one_after_another(
    experiment: Experiment,
    axes: Mapping[str, Any],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    setups: Sequence[Setup],
    setup_seconds: float,
    reason: str | None,
    bar: ProgressBar | None,
    interrupt: Interrupt,
) -> SweepResult:
    """Each member trained through :func:`mlbasics.training.runner.run`, with the experiment's callbacks,
    as :func:`mlbasics.train` trains it alone; one that diverges does not end the sweep. Once
    ``interrupt`` is set, the member in training stops after its step, and the rest do not start."""
    result_members = []
    seconds = 0.0
    for i, ((values, member), setup) in enumerate(zip(members, setups, strict=True)):
        if interrupt.signal:
            break
        setup.interrupt = interrupt  # the one flag a signal sets stops whichever member is training
        start = time.perf_counter()
        pairs = setup.metric_history  # what run() records at every sync point, diverged or not
        validation_loss = test_loss = restored_loss = None
        restored_epoch = None
        try:
            result = run(setup, progress=bar or False)
            losses, parameters, stopped = result.history, result.parameters, result.stopped
            # Those of the model returned: restored weights (early stopping) are evaluated again.
            validation_loss, test_loss, metrics = result.validation_loss, result.test_loss, result.metrics
            restored_epoch, restored_loss = result.restored_epoch, result.restored_values.get("loss")
        except DivergenceError as diverged:  # one member's bad learning rate must not end the sweep
            losses, stopped = diverged.history, str(diverged)
            parameters = {name: p.detach().cpu().clone() for name, p in setup.model.named_parameters()}
            metrics = {name: p[-1][1] for name, p in pairs.items() if p}
            if setup.validation is not None:
                validation_loss = float("nan")  # ranked last, with the diverged
        seconds += time.perf_counter() - start
        epochs = next((p for p in pairs.values() if p), [])
        result_members.append(
            SweepMember(
                index=i,
                values=values,
                experiment=member,
                history=torch.tensor(losses, dtype=torch.float32),
                parameters=parameters,
                validation_loss=validation_loss,
                test_loss=test_loss,
                metrics=metrics,
                sync_epochs=torch.tensor([epoch for epoch, _ in epochs], dtype=torch.int64),
                metric_history={
                    name: torch.tensor([value for _, value in p], dtype=torch.float64)
                    for name, p in pairs.items()
                },
                stopped=stopped,
                restored_epoch=restored_epoch,
                restored_loss=restored_loss,
            )
        )
    return SweepResult(
        interrupted_by=interrupt.signal or None,
        not_trained=len(members) - len(result_members),
        experiment=experiment,
        axes=tuple(axes),
        members=tuple(result_members),
        mode=SEQUENTIAL,
        reason=reason,
        device=str(setups[0].device),
        seconds=seconds,
        setup_seconds=setup_seconds,
        metric_modes=_metric_modes(setups[0]),
    )
