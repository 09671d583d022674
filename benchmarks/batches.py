"""An epoch of mini-batches: mlbasics' index slicing against a DataLoader and a hand-written loop.

Workload: the lecture's MLP (1-6-10-6-1 ReLU), SGD lr 0.01, MSE, on 100,000 rows of y = x² + 3,
one epoch (one pass over the rows, shuffled) at batch size B. All three build the model from the
same seed and train the same number of steps; each times one epoch and ends with the device idle.

- candidate: mlbasics' epoch (:mod:`mlbasics.data.batches`), from ``prepare`` + ``eager_step``: one
  permutation on the device, one gather per tensor, batches as slices;
- baseline "DataLoader": ``DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True)``, which
  indexes row by row and collates in Python;
- baseline "hand loop": ``perm = torch.randperm(n)`` and ``x[perm[i:i + B]]`` per batch, written out
  as a user would.

Run: python benchmarks/batches.py [--rows 100000] [--repeats 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))

from _timing import Row, compare, markdown_table, timed

import mlbasics
from mlbasics.devices import synchronize
from mlbasics.engine.setup import prepare
from mlbasics.engine.steppers import eager_step

ROWS = 100_000
GOALS = {32: 1.95, 256: 4.1}  # the DataLoader's time / mlbasics' time measured before this work


def _setup(rows: int, batch_size: int, device: torch.device, registry: mlbasics.Registry) -> mlbasics.Setup:
    experiment = mlbasics.Experiment(
        dataset={"name": "quadratic", "n": rows}, batch_size=batch_size, device=str(device), cuda_graph=False
    )
    return prepare(experiment, registry)


def mlbasics_epoch(setup: mlbasics.Setup) -> Callable[[], float]:
    step = eager_step(setup)

    def once() -> float:
        def work() -> None:
            step()
            synchronize(setup.device)

        return timed(work)

    return once


def _parts(
    setup: mlbasics.Setup,
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Callable[..., torch.Tensor]]:
    optimizer = setup.optimizer
    assert isinstance(optimizer, torch.optim.Optimizer)
    return setup.model, optimizer, setup.loss


def dataloader_epoch(setup: mlbasics.Setup, batch_size: int) -> Callable[[], float]:
    model, optimizer, loss_fn = _parts(setup)
    loader = DataLoader(TensorDataset(setup.features, setup.targets), batch_size=batch_size, shuffle=True)

    def once() -> float:
        def work() -> None:
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            synchronize(setup.device)

        return timed(work)

    return once


def hand_epoch(setup: mlbasics.Setup, batch_size: int) -> Callable[[], float]:
    model, optimizer, loss_fn = _parts(setup)
    x_all, y_all = setup.features, setup.targets
    n = len(x_all)

    def once() -> float:
        def work() -> None:
            permutation = torch.randperm(n, device=x_all.device)
            for start in range(0, n, batch_size):
                rows = permutation[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(x_all[rows]), y_all[rows])
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
            synchronize(setup.device)

        return timed(work)

    return once


def versus_dataloader(
    batch_size: int, device: torch.device, repeats: int, registry: mlbasics.Registry, rows: int = ROWS
) -> Row:
    goal = GOALS.get(batch_size)
    return compare(
        f"mlbasics epoch, batch {batch_size}, per step",
        "DataLoader(shuffle=True)",
        dataloader_epoch(_setup(rows, batch_size, device, registry), batch_size),
        mlbasics_epoch(_setup(rows, batch_size, device, registry)),
        units=-(-rows // batch_size),
        repeats=repeats,
        goal=f">= {goal}x faster" if goal else "",
        goal_max=1 / goal if goal else None,
    )


def versus_hand_loop(
    batch_size: int, device: torch.device, repeats: int, registry: mlbasics.Registry, rows: int = ROWS
) -> Row:
    return compare(
        f"mlbasics epoch, batch {batch_size}, per step",
        "hand-written index slicing",
        hand_epoch(_setup(rows, batch_size, device, registry), batch_size),
        mlbasics_epoch(_setup(rows, batch_size, device, registry)),
        units=-(-rows // batch_size),
        repeats=repeats,
        goal="<= 1.05",
        goal_max=1.05,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    registry = mlbasics.Registry.isolated()
    device = torch.device(args.device)
    rows = [
        compare_with(size, device, args.repeats, registry, args.rows)
        for size in GOALS
        for compare_with in (versus_dataloader, versus_hand_loop)
    ]
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
