"""Data-parallel training under torchrun: one model, every batch shared by the ranks.

``torchrun --nproc-per-node N -m mlbasics train ...`` builds the same experiment on every rank (the
same seed gives the same initial weights; DistributedDataParallel broadcasts rank 0's anyway) and
wraps the model in :class:`torch.nn.parallel.DistributedDataParallel` (:func:`parallelize`). Every
rank draws the same permutation of the training rows each epoch (:mod:`mlbasics.data.batches` seeds it
with the run's seed and the epoch), so all see the same global batches; each rank takes its shard of
every one, a contiguous block of its rows (:func:`mlbasics.distributed.share`), and the engine
averages the gradients in the backward pass. Each rank's loss is weighted so that the average is
the gradient of the whole batch's loss: by ``rows_r · N / rows`` for a loss that averages over rows
(MSE and every built-in but ``sse-half``), by ``N`` for one that sums (:func:`row_reduction` finds out
which). So every step is the step one process takes with the same batch, up to the rounding of a
sum taken in another order. The loss recorded per epoch is summed over the ranks (one all-reduce of
one number an epoch), so the history, the divergence check and every checkpoint are those of the
one-process run, on every rank.

Without ``batch_size`` (the lecture's full-batch runs) every step's batch is all the training rows:
each rank takes a shard of the rows, the same way.

Rank 0 alone keeps the run folder (checkpoints, the lock) and prints; the others train silently.
A checkpoint holds no per-rank state, so a run saved by N ranks resumes on any number of ranks: the
same global batches, the same steps, up to rounding (:func:`resume_note` says so when the count
differs). A rank may not stop alone at an epoch's end when Ctrl-C or SIGTERM reaches it (its peers
would wait for it in the next all-reduce): the signal is only requested there
(:mod:`mlbasics.distributed._signals`), the epoch's all-reduce of the loss carries the requests, and every
rank stops after the same epoch, where rank 0 checkpoints as one process does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeVar

import torch

from mlbasics import distributed
from mlbasics.distributed import _signals, ranks
from mlbasics.engine.interrupts import STOP_SIGNALS
from mlbasics.engine.solvers import ClosedFormSolver
from mlbasics.engine.tasks import outputs
from mlbasics.errors import ValidationError

if TYPE_CHECKING:
    from mlbasics.engine.setup import Setup
    from mlbasics.runs.checkpoints import Checkpoint

T = TypeVar("T")

MEAN: Final = "mean"
SUM: Final = "sum"


def prepared(build: Callable[[], T], setup_of: Callable[[T], Setup]) -> T:
    """``build()`` (which prepares a setup); under torchrun, on every rank, with the ranks agreeing
    that all built it and that it can be trained in parallel, then the model wrapped for it."""
    if distributed.launch() is None:
        return build()
    with distributed.together() as launch:
        built = build()
        setup = setup_of(built)
        assert launch is not None
        problem = parallel_problem(setup, launch.world_size)
        if problem is not None:
            raise ValidationError([problem])
    parallelize(setup)
    return built


def parallel_problem(setup: Setup, world_size: int) -> str | None:
    """Why ``setup`` cannot be trained on ``world_size`` ranks, or ``None``."""
    from mlbasics.data.batches import batch_bounds, is_full_batch

    optimizer = setup.specs["optimizer"].name
    ranks = f"{world_size} ranks"
    if isinstance(setup.optimizer, ClosedFormSolver):
        return (
            f"optimizer {optimizer!r} solves in closed form: there are no gradient steps for {ranks} to share"
        )
    if setup.needs_closure:
        return f"optimizer {optimizer!r} needs a closure (it re-evaluates the loss), which data-parallel training cannot share"
    experiment = setup.experiment
    n = setup.n_train
    # A resumed run (it has a history) may change its experiment only with --force.
    resumed = bool(setup.history)
    if is_full_batch(setup):
        if n < world_size:
            held = (
                " (or hold out fewer rows)"
                if (experiment.validation or experiment.test) and not resumed
                else ""
            )
            return (
                f"the training rows ({_rows(n)}) cannot be shared by {ranks}: each needs at least one "
                f"row; use at most {_ranks_of(n)}{held}"
            )
        return _loss_problem(setup, ranks)
    assert experiment.batch_size is not None
    size = experiment.batch_size
    smallest = min(rows for _, rows in batch_bounds(n, size, experiment.drop_last))
    if smallest >= world_size:
        return _loss_problem(setup, ranks)
    if size < world_size:
        advice = (
            f"resume it on at most {_ranks_of(size)} (or with a larger batch_size and --force)"
            if resumed
            else f"a batch_size of at least {world_size} rows, or at most {_ranks_of(size)}"
        )
    else:  # the last, smaller batch
        advice = (
            f"resume it on at most {_ranks_of(smallest)}, or with --drop-last --force (it leaves that "
            "batch out from here on)"
            if resumed
            else f"--drop-last to leave it out, another batch_size, or at most {_ranks_of(smallest)}"
        )
    return (
        f"the smallest batch ({_rows(smallest)}) cannot be shared by {ranks}: each needs at least one "
        f"row of every batch; {'' if resumed else 'use '}{advice}"
    )


def _loss_problem(setup: Setup, ranks: str) -> str | None:
    if row_reduction(setup) is None:
        return (
            f"loss {setup.specs['loss'].name!r} neither averages nor sums over rows (a mean weighted by "
            f"class is neither), so it cannot be split into shards for {ranks}"
        )
    return None


def _rows(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''}"


def _ranks_of(count: int) -> str:
    return f"{count} rank{'s' if count != 1 else ''}"


def row_reduction(setup: Setup) -> str | None:
    """Whether the loss averages (``"mean"``) or sums (``"sum"``) over rows, or ``None``: its loss
    for a prediction off a training row's target, and for that row twice (the same for a mean,
    twice as much for a sum); and, where there is a training row of another target, the loss of
    the two rows together (their mean or their sum: a mean weighted by class, as cross-entropy
    with class weights takes, is neither, and cannot be split into shards by their rows)."""
    targets = setup.targets  # the first rows suffice to find one of another target, if there is one
    rows = targets[:1024] if setup.train_rows is None else targets.index_select(0, setup.train_rows[:1024])
    first = rows[:1]
    other = rows[(rows != first).reshape(len(rows), -1).any(dim=1)][:1]
    y, z = first.to(setup.device), other.to(setup.device)
    with torch.no_grad():
        once = float(setup.loss(_off(setup, y, 1.0), y))
        twice = float(setup.loss(torch.cat([_off(setup, y, 1.0)] * 2), torch.cat([y, y])))
        pair = None
        if len(z):
            alone = float(setup.loss(_off(setup, z, 2.0), z))
            both = float(setup.loss(torch.cat([_off(setup, y, 1.0), _off(setup, z, 2.0)]), torch.cat([y, z])))
            pair = (alone, both)
    if not once > 0.0:
        return None
    ratio = twice / once
    if abs(ratio - 1.0) < 1e-3:
        reduction, together = MEAN, None if pair is None else (once + pair[0]) / 2
    elif abs(ratio - 2.0) < 2e-3:
        reduction, together = SUM, None if pair is None else once + pair[0]
    else:
        return None
    if (
        pair is not None
        and together is not None
        and abs(pair[1] - together) > 1e-3 * max(abs(together), 1e-12)
    ):
        return None
    return reduction


def _off(setup: Setup, y: torch.Tensor, by: float) -> torch.Tensor:
    """A prediction off ``y`` by ``by``: for real-valued targets ``y + by``; for class labels,
    logits that put ``by`` on the class after the right one (one logit: ``by`` on the wrong side)."""
    if setup.dataset.classes is None:
        return y + by
    width = outputs(setup.dataset, setup.specs["loss"])
    if width == 1:
        return (by * (1 - 2 * y.to(torch.float32))).unsqueeze(1)
    logits = torch.zeros(len(y), width, device=y.device)
    return logits.scatter_(1, ((y + 1) % width).unsqueeze(1), by)


def parallelize(setup: Setup) -> None:
    """Wrap ``setup``'s model in DistributedDataParallel for its steps (:func:`eager_step` takes them)."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [setup.device.index or torch.cuda.current_device()] if setup.device.type == "cuda" else None
    setup.ddp = DistributedDataParallel(setup.model, device_ids=device_ids)
    ranks.in_lockstep = True  # from here on the ranks meet in every step's all-reduce


def eager_step(setup: Setup) -> Callable[[], torch.Tensor]:
    """One epoch of data-parallel training (what :func:`mlbasics.training.runner.eager_step` is for one
    process), returning the epoch's loss over all ranks, on the device."""
    import torch.distributed as dist

    from mlbasics.data.batches import is_full_batch, minibatch_epoch
    from mlbasics.engine._gradients import gradient_reset

    launch = distributed.launch()
    assert launch is not None
    assert setup.ddp is not None
    ddp, loss_fn, optimizer = setup.ddp, setup.loss, setup.optimizer
    assert isinstance(optimizer, torch.optim.Optimizer)
    zero_grad = gradient_reset(optimizer)
    rank, world_size = launch.rank, launch.world_size
    averaged = row_reduction(setup) == MEAN

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        mine = distributed.share(rows, rank, world_size)
        zero_grad()
        loss = loss_fn(ddp(x[mine.start : mine.stop]), y[mine.start : mine.stop])
        # DDP averages the ranks' gradients; weighted so, the average is the whole batch's gradient.
        weight = len(mine) * world_size / rows if averaged else float(world_size)
        (loss * weight if weight != 1.0 else loss).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return loss.detach() * (len(mine) / rows) if averaged else loss.detach()  # summed over ranks below

    x, y = setup.features, setup.targets

    def full_batch() -> torch.Tensor:
        return step(x, y)

    epoch = full_batch if is_full_batch(setup) else minibatch_epoch(setup, step)

    interrupt = setup.interrupt
    # Whether this rank was asked to stop, by which signal: one flag per signal, made once.
    asked = {
        number: torch.tensor([float(number == signum) for signum in STOP_SIGNALS], device=setup.device)
        for number in (0, *STOP_SIGNALS)
    }

    def summed() -> torch.Tensor:
        loss = epoch()
        # The ranks' parts of the epoch's loss, and how many ranks were asked to stop by each signal
        # (Ctrl-C, SIGTERM): if any, every rank stops after this epoch (a host sync on a GPU).
        together = torch.cat([loss.reshape(1), asked[interrupt.requested].to(loss.dtype)])
        dist.all_reduce(together)
        counts = together[1:].tolist()
        if any(counts):  # SIGTERM, where some rank got it
            interrupt.signal = max(n for n, count in zip(STOP_SIGNALS, counts, strict=True) if count)
            _signals.agreed()
        return together[0]

    return summed


def resume_note(checkpoint: Checkpoint, world_size: int) -> str | None:
    """What resuming ``checkpoint`` on ``world_size`` ranks means, if they are not as many as saved it."""
    saved = saved_world_size(checkpoint)
    if saved == world_size:
        return None
    return (
        f"resuming a run saved by {_ranks(saved)} on {_ranks(world_size)}: the global batches and steps "
        f"are the same (a checkpoint holds no per-rank state); only the rounding of the summed "
        f"gradients differs"
    )


def _ranks(count: int) -> str:
    return f"{count} ranks" if count > 1 else "one process"


def saved_world_size(checkpoint: Checkpoint) -> int:
    """How many ranks trained ``checkpoint`` (1 for a run saved before ranks were recorded)."""
    state = json.loads((checkpoint.folder / "state.json").read_text())
    ranks = state.get("ranks", 1)
    return ranks if isinstance(ranks, int) and ranks >= 1 else 1


def world_size_of(setup: Setup) -> int:
    """How many ranks train ``setup``: the world's size when its model is wrapped for them, else 1."""
    if setup.ddp is None:
        return 1
    import torch.distributed as dist

    return dist.get_world_size()
