"""Mini-batches: an epoch is one pass over the training rows, ``batch_size`` rows per step.

The training rows are already on the device. Each epoch, one permutation of them is drawn with
``torch.randperm`` on the device, the rows are gathered in that order once (one indexing per
tensor), and the batches are slices of the gathered tensors: no per-row Python, no DataLoader, no
collate. The permutation of epoch ``e`` comes from a ``torch.Generator`` seeded with a hash of the
experiment's ``seed`` and ``e`` (:func:`epoch_seed`), so the shuffling state of a run is its seed
and its epoch, both in every checkpoint: a run resumed at any epoch draws the permutations a run
never stopped would have drawn, and on the CPU is bitwise the same.

The loss an epoch records in the history is the mean over the epoch's rows of the loss of the batch
each row was in, computed before that batch's step (each batch's loss weighted by its rows); the
weighting is done on the device, so an epoch still costs the host nothing to record. A batch that
holds every training row is the full batch: training is then exactly the lecture's full-batch loop
(there is nothing to shuffle), so ``batch_size = n`` gives bitwise the results of no batching.

A memory-mapped dataset (larger than memory) is never copied whole: the permutation indexes the
training rows' numbers, and each batch is gathered on the host and then moved to the device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mlbasics.engine.setup import Setup

Step = Callable[[], torch.Tensor]

#: Rows per evaluation batch for data that is not on the device whole (memory-mapped).
EVALUATION_ROWS = 1 << 16


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of the permutation of epoch ``epoch`` (0-based) of a run with model seed ``seed``."""
    digest = hashlib.sha256(f"mlbasics-shuffle:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def batch_bounds(n: int, batch_size: int, drop_last: bool) -> list[tuple[int, int]]:
    """``(start, rows)`` of each batch of an epoch over ``n`` rows."""
    end = n - n % batch_size if drop_last else n
    return [(start, min(batch_size, end - start)) for start in range(0, end, batch_size)]


def is_full_batch(setup: Setup) -> bool:
    """Whether each step sees every training row (no batch size, or one that covers them all)."""
    size = setup.experiment.batch_size
    return size is None or size >= setup.n_train


def shuffles(setup: Setup) -> bool:
    return setup.experiment.shuffle is not False and not is_full_batch(setup)


def minibatch_epoch(setup: Setup, body: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Step:
    """An epoch of mini-batch steps; ``body(x, y)`` takes one optimizer step on a batch and
    returns its (detached) loss. Returns the epoch's loss, on the device."""
    experiment = setup.experiment
    assert experiment.batch_size is not None
    n = setup.n_train
    bounds = batch_bounds(n, experiment.batch_size, experiment.drop_last)
    used = sum(rows for _, rows in bounds)
    device = setup.device
    weights = torch.tensor([rows / used for _, rows in bounds], dtype=torch.float32, device=device)
    shuffle = shuffles(setup)
    gather = _host_gather(setup) if setup.dataset.memory_mapped else None
    # A memory-mapped table's row numbers live on the host, and so must the permutation indexing them.
    generator = torch.Generator(device="cpu" if gather is not None else device)
    epochs_done = [len(setup.history)]  # the epoch the next call trains (0-based)
    x_all, y_all = setup.features, setup.targets

    def order() -> torch.Tensor | None:
        if not shuffle:
            return None
        generator.manual_seed(epoch_seed(experiment.seed, epochs_done[0]))
        return torch.randperm(n, generator=generator, device=generator.device)

    def epoch() -> torch.Tensor:
        permutation = order()
        losses = []
        if gather is not None:
            for start, rows in bounds:
                x, y = gather(permutation, start, rows)
                losses.append(body(x, y))
        else:
            x_epoch, y_epoch = (
                (x_all, y_all) if permutation is None else (x_all[permutation], y_all[permutation])
            )
            for start, rows in bounds:
                losses.append(body(x_epoch[start : start + rows], y_epoch[start : start + rows]))
        epochs_done[0] += 1
        return (torch.stack(losses) * weights.to(losses[0].dtype)).sum()

    return epoch


def _host_gather(
    setup: Setup,
) -> Callable[[torch.Tensor | None, int, int], tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a memory-mapped table: gathered on the host from the training rows' numbers,
    then moved to the device and scaled there."""
    rows_of_train = setup.train_rows
    assert rows_of_train is not None

    def gather(permutation: torch.Tensor | None, start: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = slice(start, start + rows)
        numbers = rows_of_train[positions] if permutation is None else rows_of_train[permutation[positions]]
        return _rows_on_device(setup, setup.features, setup.targets, numbers)

    return gather


def _rows_on_device(
    setup: Setup, x: torch.Tensor, y: torch.Tensor, numbers: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``numbers`` of a host table, gathered there, moved to the device and scaled there."""
    return setup.scale_batch(
        x.index_select(0, numbers).to(setup.device), y.index_select(0, numbers).to(setup.device)
    )


def evaluate_rows(
    setup: Setup, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """The loss of the current parameters on a part of the data, on the device, no gradients.
    On the device whole (``rows`` is ``None``): one forward pass. Memory-mapped: batches of
    :data:`EVALUATION_ROWS` rows gathered on the host, their losses weighted by their rows."""
    with torch.no_grad():
        if rows is None:
            return setup.loss(setup.model(x), y).detach()
        total: Any = None
        n = len(rows)
        for start in range(0, n, EVALUATION_ROWS):
            numbers = rows[start : start + EVALUATION_ROWS]
            xb, yb = _rows_on_device(setup, x, y, numbers)
            part = setup.loss(setup.model(xb), yb).detach() * (len(numbers) / n)
            total = part if total is None else total + part
        assert total is not None
        return total  # type: ignore[no-any-return]
