"""Continuing a saved run exactly where it stopped.

:func:`resume` reads the run folder's checkpoint, rebuilds the experiment's components through the
registry (by name, as :func:`mlbasics.prepare` does), checks that they are the ones the run was
trained with, and puts back the model's weights, the optimizer's state, the loss history and the
random generators' states. Training then continues up to the experiment's epochs; on the CPU the
result is bitwise the same as a run that was never stopped.

What must match, unless forced: every component's name and params (after defaults are filled in),
the seed, the data (by fingerprint), and each component's plugin, which must be installed and not
older than the one that trained the run. What may change: ``epochs`` (to train further),
``log_every`` and ``device`` (which do not change what is computed, though another device computes
in other rounding).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlbasics.core.callbacks import Callback
from mlbasics.core.registry import Registry, default_registry
from mlbasics.core.specs import IN_MEMORY
from mlbasics.data.in_memory import PARTS, missing_data_problem
from mlbasics.engine.experiment import COMPONENT_KINDS, Component, Experiment, with_settings
from mlbasics.engine.results import TrainResult
from mlbasics.engine.setup import Setup, prepare
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.errors import ValidationError
from mlbasics.runs._provenance import provenance_problems, refuse
from mlbasics.runs._run_lock import refuse_if_in_use
from mlbasics.runs.checkpoints import Checkpoint, Checkpointer
from mlbasics.training.runner import run as run_setup

#: Experiment settings that decide which rows are trained on, in which order and scale.
DATA_SETTINGS = (
    "validation",
    "test",
    "split_seed",
    "batch_size",
    "shuffle",
    "drop_last",
    "standardize",
    "stratify",
)


class ResumeWarning(UserWarning):
    """A forced resume went ahead despite a difference, or part of the state could not be restored."""


def differences(checkpoint: Checkpoint, setup: Setup) -> list[str]:
    """How ``setup`` differs from what ``checkpoint``'s run was trained with, one line each."""
    found = []
    for kind in COMPONENT_KINDS:
        old, new = checkpoint.components[kind], setup.components[kind]
        if old.name != new.name:
            found.append(f"{kind} is {new.name!r} now but was {old.name!r}")
            continue
        if new.name == IN_MEMORY and kind == "dataset":
            continue  # the data's record: compared below, in words
        for key in sorted(set(old.params) | set(new.params), key=str):
            was, now = old.params.get(key, "(unset)"), new.params.get(key, "(unset)")
            if was != now:
                found.append(f"{kind} {new.name!r}: {key} is {now!r} now but was {was!r}")
    if setup.experiment.seed != checkpoint.experiment.seed:
        found.append(f"seed is {setup.experiment.seed} now but was {checkpoint.experiment.seed}")
    for field in DATA_SETTINGS:  # they change which rows, in which order and scale, are trained on
        now, was = getattr(setup.experiment, field), getattr(checkpoint.experiment, field)
        if now != was:
            found.append(f"{field} is {now!r} now but was {was!r}")
    split = setup.split
    recorded = checkpoint.split
    now_split = None if split is None or split.is_whole else split.fingerprint()
    if recorded is not None and now_split is not None and recorded.get("fingerprint") != now_split:
        found.append(
            f"the held-out rows differ from the run's (split sizes {split.sizes() if split else None} now, "
            f"{recorded.get('sizes')} then)"
        )
    old, new = checkpoint.components["dataset"], setup.components["dataset"]
    if old.name == new.name == IN_MEMORY:
        return found + in_memory_differences(old.params, new.params)
    same_dataset = (old.name, old.params) == (new.name, new.params)
    if same_dataset and setup.data_fingerprint != checkpoint.data_fingerprint:
        found.append(
            f"dataset {setup.components['dataset'].name!r}: the data differ from the data the run was "
            "trained on (was the file changed?)"
        )
    return found


def in_memory_differences(was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How data held in memory differ from those a run was trained on (their records), in words."""
    found = []
    for key, what in (("features", "features"), ("targets", "targets")):
        if was.get(key) != now.get(key):
            found.append(
                f"the {what} are shaped {tuple(now.get(key) or ())} now but were {tuple(was.get(key) or ())}"
            )
    for key in ("feature_names", "target_names"):
        if was.get(key) != now.get(key):
            found.append(f"the {key.replace('_', ' ')} are {now.get(key)} now but were {was.get(key)}")
    if not found and was.get("sha256") != now.get("sha256"):
        found.append(
            f"the arrays hold other values than those the run was trained on (SHA-256 {str(now.get('sha256'))[:12]}... "
            f"now, {str(was.get('sha256'))[:12]}... then)"
        )
    for part in PARTS:
        rows, digest = was.get(f"{part}_rows"), was.get(f"{part}_sha256")
        if rows is not None and f"{part}_rows" not in now:
            found.append(
                f"the run had {rows} {part} rows given as data: pass them again, {part}=(X_{part}, y_{part})"
            )
        elif rows is None and f"{part}_rows" in now:
            found.append(f"{part} rows are given now, but the run had none given as data")
        elif rows is not None and (rows, digest) != (now.get(f"{part}_rows"), now.get(f"{part}_sha256")):
            found.append(f"the {part} rows differ from those the run was trained with")
    return found


def restore(
    checkpoint: Checkpoint, experiment: Experiment, registry: Registry | None = None, *, force: bool = False
) -> tuple[Setup, list[str]]:
    """Prepare ``experiment`` and put ``checkpoint``'s state into it. Returns the setup and notes on
    what a forced resume let through. Raises :class:`mlbasics.ValidationError` listing every
    difference (unless ``force``) and :class:`mlbasics.DataError` if the state does not fit."""
    registry = registry or default_registry()
    run = checkpoint.run
    if experiment.dataset.name == IN_MEMORY and experiment.dataset.data is None:
        call = f"mlbasics.resume({str(run)!r}, "
        raise ValidationError(
            [f"cannot resume {run}: {missing_data_problem(experiment.dataset.params, call)}"]
        )
    problems = provenance_problems(checkpoint, registry, experiment=experiment)
    notes = refuse(problems, prefix=f"cannot resume {run}", force=force, hint="--force resumes anyway")
    if experiment.epochs < checkpoint.epoch:
        raise ValidationError(
            [f"cannot resume {run} to {experiment.epochs} epochs: it has trained {checkpoint.epoch} already"]
        )
    setup = prepare(experiment, registry)
    changed = differences(checkpoint, setup)
    if changed and not force:
        raise ValidationError(
            [
                f"cannot resume {run}: it was trained with another experiment: {line} (--force resumes anyway)"
                for line in changed
            ]
        )
    notes += changed
    new_model = setup.components["model"]
    checkpoint.load_weights(setup.model, built=Component(new_model.name, new_model.params))
    old_optimizer, new_optimizer = checkpoint.components["optimizer"], setup.components["optimizer"]
    if not isinstance(setup.optimizer, ClosedFormSolver):
        if old_optimizer.name == new_optimizer.name:
            checkpoint.load_optimizer(
                setup.optimizer, hyperparameters=old_optimizer.params == new_optimizer.params
            )
        else:
            notes.append(
                f"the state of optimizer {old_optimizer.name!r} was not restored into {new_optimizer.name!r}"
            )
    notes += checkpoint.restore_rng()
    names = [info.name for info in setup.listed.get("callbacks", [])]
    notes += checkpoint.load_callbacks(setup.callbacks, names)
    setup.history.extend(checkpoint.history)
    setup.validation_history.extend(checkpoint.validation_history)
    for name, pairs in checkpoint.metric_history.items():  # of the metrics the run still computes
        if name.removeprefix("validation_") in setup.metrics:
            setup.metric_history.setdefault(name, []).extend(pairs)
    return setup, notes


def resume(
    run: str | Path,
    /,
    *,
    registry: Registry | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
    save: str | Path | None = None,
    checkpoint_every: int | None = None,
    force: bool = False,
    divergence_threshold: float | None = None,
    target: str | Sequence[str] | None = None,
    **settings: Any,
) -> TrainResult:
    """Continue the run saved in folder ``run`` up to its experiment's epochs, and return the
    :class:`mlbasics.TrainResult` of the whole run (its history starts at epoch 1).

    ``settings`` change the recorded experiment: ``epochs=N`` trains further; anything that changes
    what is trained (a component, a param, the seed) is refused unless ``force``. Checkpoints go on
    into ``run`` (or into ``save``), at the end and every ``checkpoint_every`` epochs.

    A run trained on data held in memory needs the same data again: ``dataset=(X, y)`` (and
    ``validation=``/``test=`` where the run had them as data, ``target=`` for a DataFrame); data
    whose values differ (by their SHA-256) are refused.
    """
    into = Path(save) if save is not None else Path(run)
    if into.resolve() == Path(run).resolve():
        refuse_if_in_use(into)  # before reading a checkpoint its holder may be replacing
    checkpoint = Checkpoint.load(run)
    experiment = with_settings(checkpoint.experiment, settings, caller="resume()", target=target)
    setup, notes = restore(checkpoint, experiment, registry, force=force)
    for note in notes:
        warnings.warn(f"resuming {run}: {note}", ResumeWarning, stacklevel=2)
    checkpointer = Checkpointer.for_run(into, checkpoint, every=checkpoint_every, overwrite=force)
    return run_setup(
        setup,
        callbacks,
        progress=progress,
        checkpointer=checkpointer,
        divergence_threshold=divergence_threshold,
    )
