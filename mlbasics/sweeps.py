"""Sweeps: one experiment trained over a grid of seeds, learning rates and other settings.

Each point of the grid is a *member*: the experiment with those values set, built exactly as
:func:`mlbasics.train` builds it (same validation, same seeded initialisation). Where the members
differ only in what a stacked model can hold -- the initial weights (``seed``) and the optimizer's
numeric params (learning rate, momentum, ...) -- and the optimizer declares a stacked form
(``ComponentSpec.stacked``, as the built-in ``sgd`` does), they are trained together as one vmapped
ensemble on one device (:mod:`mlbasics.ensemble`). Otherwise they are trained one after another,
and a note says why.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import torch

from mlbasics.distributed import launch
from mlbasics.ensemble import NotVmappable, StackedUpdate, model_problem, stacked_hyper, train_stacked
from mlbasics.errors import (
    DivergenceError,
    MlbasicsError,
    TrainingError,
    ValidationError,
    is_out_of_memory,
    one_line,
)
from mlbasics.experiment import Experiment, with_settings
from mlbasics.notes import note
from mlbasics.registry import Registry, default_registry
from mlbasics.solvers import ClosedFormSolver
from mlbasics.training import Callback, Setup, fit, prepare, sync_interval

VMAP: Final = "vmap"
SEQUENTIAL: Final = "sequential"
#: The most members one sweep may have. Each member is built on its own (its model, optimizer, data
#: and loss history are held until the sweep ends), so a grid must stay countable; 10,000 is a
#: hundred times the lecture's sweeps. A larger grid is refused, with its size, before anything of
#: it is built.
MAX_MEMBERS: Final = 10_000


@attrs.frozen(kw_only=True, eq=False)
class SweepMember:
    """One point of the grid: its values, its experiment, and what training it gave."""

    index: int
    values: dict[str, Any]
    experiment: Experiment
    #: The loss per epoch (float32, on the CPU), as :attr:`TrainResult.history` holds it.
    history: torch.Tensor
    parameters: dict[str, torch.Tensor]
    #: The loss on the validation rows after training (``None`` without a validation part).
    validation_loss: float | None = None
    #: The loss on the test rows, evaluated once at the end (``None`` without a test part).
    test_loss: float | None = None

    @property
    def final_loss(self) -> float:
        return float(self.history[-1])

    @property
    def ranking_loss(self) -> float:
        """The loss members are ranked by: the validation loss where there is one, else the final loss."""
        return self.final_loss if self.validation_loss is None else self.validation_loss

    @property
    def label(self) -> str:
        """``seed=3, optimizer.lr=0.1``"""
        return _label(self.values)

    def __repr__(self) -> str:
        from mlbasics import display

        return display.sweep_member(self)


def _label(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in values.items())


def _rank_key(member: SweepMember) -> tuple[bool, float, int]:
    loss = member.ranking_loss
    finite = math.isfinite(loss)
    return (not finite, loss if finite else 0.0, member.index)  # diverged members last


@attrs.frozen(kw_only=True, eq=False)
class SweepResult:
    """Every member's history and parameters, in grid order, and how they were trained."""

    experiment: Experiment
    axes: tuple[str, ...]
    members: tuple[SweepMember, ...]
    #: "vmap" (one ensemble) or "sequential" (one member after another).
    mode: str
    #: Why the members were trained one after another, if they could not be stacked.
    reason: str | None
    device: str
    #: Seconds spent training (setting the members up is in ``setup_seconds``).
    seconds: float
    setup_seconds: float

    def ranked(self) -> list[SweepMember]:
        """The members, lowest validation loss first (final training loss without a validation
        part: :attr:`ranked_by`); members whose loss is not finite come last."""
        return sorted(self.members, key=_rank_key)

    @property
    def ranked_by(self) -> str:
        """What :meth:`ranked` orders by: ``"validation loss"`` or ``"final loss"``."""
        held_out = any(member.validation_loss is not None for member in self.members)
        return "validation loss" if held_out else "final loss"

    @property
    def best(self) -> SweepMember:
        return self.ranked()[0]

    @property
    def model_steps(self) -> int:
        return sum(len(member.history) for member in self.members)

    def __repr__(self) -> str:
        """A few lines: what was swept, how it was trained, the spread of final losses, the best members."""
        from mlbasics import display

        title, rows, best = display.sweep_result(self)
        return display.text(title, rows, best)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary, the best members as a table, and every loss curve."""
        from mlbasics import display

        return display.sweep_result_html(self)

    def to_dict(self, *, history: bool = False) -> dict[str, Any]:
        """A JSON-ready summary, members best first; ``history=True`` adds each loss history."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "device": self.device,
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "axes": list(self.axes),
            **({"ranked_by": self.ranked_by} if self.ranked_by != "final loss" else {}),
            "experiment": self.experiment.to_dict(),
            "members": [
                {
                    "index": member.index,
                    "values": member.values,
                    "final_loss": member.final_loss,
                    **(
                        {"validation_loss": member.validation_loss}
                        if member.validation_loss is not None
                        else {}
                    ),
                    **({"test_loss": member.test_loss} if member.test_loss is not None else {}),
                    "parameters": {name: value.tolist() for name, value in member.parameters.items()},
                    **({"history": member.history.tolist()} if history else {}),
                }
                for member in self.ranked()
            ],
        }


# -- the grid ------------------------------------------------------------------------------------


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
            failures.append((_label(values), lines))
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
    **settings: Any,
) -> SweepResult:
    """Train ``experiment`` (default: the lecture's MLP) for every combination of ``seeds``,
    ``lrs`` (the optimizer's ``lr``) and ``grid`` (setting key -> values, e.g.
    ``{"optimizer.momentum": [0.0, 0.9]}``), as one vmapped ensemble where possible.

    ``settings`` override fields of the experiment, as in :func:`mlbasics.train`. ``vmap=False``
    trains the members one after another. ``progress=True`` shows a progress bar on stderr.
    """
    experiment = with_settings(experiment or Experiment(), settings, caller="sweep()")
    axes = grid_axes(seeds, lrs, grid)
    members = grid_members(experiment, axes)
    registry = registry or default_registry()
    if launch() is not None:  # started by torchrun: each rank trains its share (mlbasics.distributed_sweeps)
        from mlbasics.distributed_sweeps import sweep_on_ranks

        return sweep_on_ranks(experiment, axes, members, registry, vmap=vmap, progress=progress)
    start = time.perf_counter()
    setups = _prepare_all(members, registry)
    setup_seconds = time.perf_counter() - start
    bar = _ProgressBar(sum(s.end_epoch for s in setups)) if progress else None
    try:
        return train_setups(experiment, axes, members, setups, setup_seconds, vmap=vmap, bar=bar)
    finally:
        if bar is not None:
            bar.stop()


def train_setups(
    experiment: Experiment,
    axes: Mapping[str, Any],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    setups: Sequence[Setup],
    setup_seconds: float,
    *,
    vmap: bool,
    bar: _ProgressBar | None,
) -> SweepResult:
    """Train the prepared members: as one vmapped ensemble where they allow it (and ``vmap``), else
    one after another, with a note saying why."""
    plan = ensemble_plan(setups) if vmap else None
    reason = plan if isinstance(plan, str) else None
    if isinstance(plan, EnsemblePlan):
        try:
            return _vmapped(experiment, axes, members, setups, plan, setup_seconds, bar)
        except NotVmappable as exc:
            if exc.part == "model":
                reason = f"model {setups[0].specs['model'].name!r} fails under vmap ({exc})"
            else:
                reason = f"optimizer {setups[0].specs['optimizer'].name!r}: its stacked form fails ({exc})"
    if reason is not None:
        note(f"training the {len(setups)} members one after another: {reason}")
    return _one_after_another(experiment, axes, members, setups, setup_seconds, reason, bar)


def _vmapped(
    experiment: Experiment,
    axes: Mapping[str, Any],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    setups: Sequence[Setup],
    plan: EnsemblePlan,
    setup_seconds: float,
    bar: _ProgressBar | None,
) -> SweepResult:
    first = setups[0]
    count = len(setups)
    try:
        run = train_stacked(
            [s.model for s in setups],
            first.loss,
            first.features,
            first.targets,
            plan.update,
            plan.hyper,
            epochs=first.experiment.epochs,
            interval=sync_interval(first.experiment),
            on_sync=None if bar is None else lambda done: bar.update(done * count),
        )
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        raise TrainingError(
            f"out of memory training {count:,} members of model {first.specs['model'].name!r} as one vmapped "
            f"ensemble on {first.device}; sweep fewer at once, or train them one after another with "
            f"--sequential ({one_line(exc)})"
        ) from exc
    validation = _held_out_losses(setups, run.parameters, "validation")
    test = _held_out_losses(setups, run.parameters, "test")
    result_members = tuple(
        SweepMember(
            index=i,
            values=values,
            experiment=member,
            history=run.histories[i],
            parameters=run.parameters[i],
            validation_loss=validation[i],
            test_loss=test[i],
        )
        for i, (values, member) in enumerate(members)
    )
    return SweepResult(
        experiment=experiment,
        axes=tuple(axes),
        members=result_members,
        mode=VMAP,
        reason=None,
        device=str(first.device),
        seconds=run.seconds,
        setup_seconds=setup_seconds,
    )


def _one_after_another(
    experiment: Experiment,
    axes: Mapping[str, Any],
    members: Sequence[tuple[dict[str, Any], Experiment]],
    setups: Sequence[Setup],
    setup_seconds: float,
    reason: str | None,
    bar: _ProgressBar | None,
) -> SweepResult:
    result_members = []
    seconds = 0.0
    finished = 0
    for i, ((values, member), setup) in enumerate(zip(members, setups, strict=True)):
        callbacks = [] if bar is None else [_Advance(bar, finished)]
        start = time.perf_counter()
        validation_loss = test_loss = None
        try:
            result = fit(setup, callbacks)
            losses, parameters = result.history, result.parameters
            validation_loss, test_loss = result.validation_loss, result.test_loss
        except DivergenceError as diverged:  # one member's bad learning rate must not end the sweep
            losses = diverged.history
            parameters = {name: p.detach().cpu().clone() for name, p in setup.model.named_parameters()}
            if setup.validation is not None:
                validation_loss = float("nan")  # ranked last, with the diverged
        finished += len(losses)
        seconds += time.perf_counter() - start
        history = torch.tensor(losses, dtype=torch.float32)
        result_members.append(
            SweepMember(
                index=i,
                values=values,
                experiment=member,
                history=history,
                parameters=parameters,
                validation_loss=validation_loss,
                test_loss=test_loss,
            )
        )
    return SweepResult(
        experiment=experiment,
        axes=tuple(axes),
        members=tuple(result_members),
        mode=SEQUENTIAL,
        reason=reason,
        device=str(setups[0].device),
        seconds=seconds,
        setup_seconds=setup_seconds,
    )


def _held_out_losses(
    setups: Sequence[Setup], parameters: Sequence[dict[str, torch.Tensor]], part: str
) -> list[float | None]:
    """Each stacked member's loss on a held-out part after training: computed on the device,
    copied out in one transfer."""
    if getattr(setups[0], part) is None:
        return [None] * len(setups)
    losses = []
    for setup, learned in zip(setups, parameters, strict=True):
        x, y, _ = getattr(setup, part)
        values = {name: value.to(setup.device) for name, value in learned.items()}
        with torch.no_grad():
            losses.append(
                setup.loss(torch.func.functional_call(setup.model, values, (x,)), y).detach().reshape(())
            )
    return [float(loss) for loss in torch.stack(losses).cpu()]


class _ProgressBar:
    """A rich progress bar over model-epochs (members × epochs), fed at sync points only."""

    def __init__(self, total: int, *, scale: float = 1.0) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from mlbasics.notebook import RichOutput, in_notebook

        self._notebook = RichOutput() if in_notebook() else None  # one bar redrawn in place
        self._progress = Progress(
            TextColumn("[bold]model-epochs"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            refresh_per_second=10,
            auto_refresh=self._notebook is None,
        )
        self._task = self._progress.add_task("sweep", total=total)
        #: Model-epochs of the whole sweep per model-epoch reported (a rank reports its own share).
        self._scale = scale
        if self._notebook is not None:
            self._notebook.render(self._progress.get_renderable(), force=True)
        else:
            self._progress.start()

    def update(self, completed: int) -> None:
        self._progress.update(self._task, completed=round(completed * self._scale))
        if self._notebook is not None:
            self._notebook.render(self._progress.get_renderable())

    def stop(self) -> None:
        if self._notebook is not None:
            self._progress.stop_task(self._task)
            self._notebook.render(self._progress.get_renderable(), force=True)
        else:
            self._progress.stop()


class _Advance(Callback):
    def __init__(self, bar: _ProgressBar, before: int) -> None:
        self._bar = bar
        self._before = before

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        self._bar.update(self._before + epoch)
