"""Held-out rows: a seeded, deterministic split of a dataset's rows into training, validation and
test parts.

The rows are shuffled once by a permutation drawn from a ``torch.Generator`` seeded with
``split_seed`` (on the CPU, so the split is the same on every machine and device); the first
``round(test * n)`` rows of the permutation are the test part, the next ``round(validation * n)``
the validation part, the rest the training part. Each part keeps its rows in the table's own order,
so a split with no held-out rows is the table itself. The same table, fractions and seed give the
same split everywhere, which is what lets ``--resume`` and ``predict`` see the rows the run saw; the
run folder also records each part's size and a SHA-256 of its row numbers, and a resume checks them.
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

import attrs
import torch

PARTS: Final = ("train", "validation", "test")


def part_size(fraction: float, n: int) -> int:
    """The rows ``fraction`` of ``n`` rows stands for, rounded half up (0.1 of 5 rows is 1 row)."""
    return math.floor(fraction * n + 0.5)


def fraction_problems(validation: object, test: object) -> list[str]:
    """Why ``validation`` and ``test`` are not fractions a split can use, one line each."""
    found = []
    for name, value in (("validation", validation), ("test", test)):
        if isinstance(value, bool | str | type(None)):
            found.append(f"{name} must be a fraction of the rows in [0, 1), got {value!r}")
        elif not isinstance(value, int | float):
            # Data (a pair of arrays): held-out rows are given to train() and sweep(), which hold them.
            found.append(
                f"{name} must be a fraction of the rows in [0, 1), got a {type(value).__name__}; held-out "
                f"data go to train(..., {name}=(X, y)), sweep() or Dataset.from_arrays(..., {name}=(X, y))"
            )
        elif not 0.0 <= value < 1.0:
            found.append(f"{name} must be a fraction of the rows in [0, 1), got {value}")
    if not found and validation + test >= 1.0:  # type: ignore[operator]
        found.append(
            f"validation + test must leave rows to train on, but {validation} + {test} = "
            f"{validation + test:g} >= 1"  # type: ignore[operator]
        )
    return found


@attrs.frozen(eq=False)
class Split:
    """Row numbers (int64, on the CPU, ascending) of each part of a table of ``n`` rows."""

    n: int
    train: torch.Tensor
    validation: torch.Tensor
    test: torch.Tensor

    @property
    def is_whole(self) -> bool:
        """Whether every row is a training row (nothing held out)."""
        return len(self.train) == self.n

    def sizes(self) -> dict[str, int]:
        return {part: len(getattr(self, part)) for part in PARTS}

    def fingerprint(self) -> str:
        """A SHA-256 of the parts' row numbers, recorded in the run folder."""
        digest = hashlib.sha256()
        for part in PARTS:
            rows: torch.Tensor = getattr(self, part)
            digest.update(f"{part}:{len(rows)};".encode())
            digest.update(rows.to(torch.int64).contiguous().numpy().tobytes())
        return digest.hexdigest()


def whole(n: int) -> Split:
    """The split that holds nothing out."""
    empty = torch.empty(0, dtype=torch.int64)
    return Split(n, torch.arange(n), empty, empty.clone())


def split_rows(n: int, *, validation: float = 0.0, test: float = 0.0, seed: int = 0) -> Split:
    """Split ``n`` rows into training, validation and test parts (see the module's docstring).
    Raises ``ValueError`` with one line naming the sizes if a part that was asked for would be
    empty, or no rows would be left to train on."""
    problems = fraction_problems(validation, test)
    if problems:
        raise ValueError(problems[0])
    if validation == 0.0 and test == 0.0:
        return whole(n)
    n_test, n_validation = part_size(test, n), part_size(validation, n)
    n_train = n - n_test - n_validation
    for name, fraction, size in (("validation", validation, n_validation), ("test", test, n_test)):
        if fraction > 0 and size == 0:
            raise ValueError(
                f"{name} = {fraction:g} of {n} rows is 0 rows; use a larger fraction (at least "
                f"{0.5 / n:.3g}) or more data"
            )
    if n_train < 1:
        raise ValueError(
            f"validation = {validation:g} and test = {test:g} of {n} rows leave {n_train} rows to "
            f"train on ({n_validation} validation, {n_test} test)"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    test_rows, validation_rows, train_rows = (
        order[:n_test],
        order[n_test : n_test + n_validation],
        order[n_test + n_validation :],
    )
    return Split(n, train_rows.sort().values, validation_rows.sort().values, test_rows.sort().values)
