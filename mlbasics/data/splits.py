"""Held-out rows: a seeded, deterministic split of a dataset's rows into training, validation and
test parts.

The rows are shuffled once by a permutation drawn from a ``torch.Generator`` seeded with
``split_seed`` (on the CPU, so the split is the same on every machine and device); the first
``round(test * n)`` rows of the permutation are the test part, the next ``round(validation * n)``
the validation part, the rest the training part. Each part keeps its rows in the table's own order,
so a split with no held-out rows is the table itself. The same table, fractions and seed give the
same split everywhere, which is what lets ``--resume`` and ``predict`` see the rows the run saw; the
run folder also records each part's size and a SHA-256 of its row numbers, and a resume checks them.

Class labels are split *stratified* (:func:`stratified_split_rows`): each class's rows are shuffled
on their own and dealt to the parts so that every part holds each class in the proportion of the
whole table, within one row, while the parts keep exactly the sizes an unstratified split gives.
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


def _sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    """The test and validation parts' sizes, checked as :func:`split_rows` checks them."""
    split = split_rows(n, validation=validation, test=test)  # the checks, and the sizes
    return len(split.test), len(split.validation)


def stratified_split_rows(
    labels: torch.Tensor, *, validation: float = 0.0, test: float = 0.0, seed: int = 0
) -> Split:
    """Split rows with class ``labels`` (int64, (n,)) so that each part holds each class in the
    proportion of the whole table, within one row: of ``n_c`` rows of class ``c``, a part of ``m``
    of the ``n`` rows gets ``floor`` or ``ceil`` of ``n_c · m / n``. The parts have exactly the
    sizes :func:`split_rows` gives them, and the same errors.

    Which rows of a class go where is drawn from ``seed`` (each class's rows in a seeded random
    order; test first, then validation, the rest training). How many go where is a rounding of the
    shares ``n_c · m / n`` to whole rows that keeps both every class's total and every part's size
    (a rounding of a table with whole row and column sums; one always exists). It is found per
    class from cumulative shares: with ``E1 = n_c·t/n`` (test) and ``E2 = n_c·(t + v)/n`` (test and
    validation), class ``c`` takes ``floor(E1 + θ)`` test rows and ``floor(E2 + θ) - floor(E1 + θ)``
    validation rows for one offset ``θ`` in [0, 1), which puts every part within one row of its
    share; the offsets are chosen so that the parts' sizes come out exact.
    """
    labels = labels.detach().cpu().to(torch.int64)
    n = int(labels.shape[0])
    n_test, n_validation = _sizes(n, validation, test)
    if n_test == 0 and n_validation == 0:
        return whole(n)
    counts = torch.bincount(labels).tolist()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(counts), generator=generator).tolist()
    ups = _round_shares(counts, n, n_test, n_test + n_validation, order)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "validation": [], "test": []}
    for label, count in enumerate(counts):
        if count == 0:
            continue
        rows = (labels == label).nonzero().flatten()
        rows = rows[torch.randperm(count, generator=generator)]
        first = count * n_test // n + ups[label][0]
        second = count * (n_test + n_validation) // n + ups[label][1]
        parts["test"].append(rows[:first])
        parts["validation"].append(rows[first:second])
        parts["train"].append(rows[second:])
    train, held_validation, held_test = (torch.cat(parts[part]).sort().values for part in PARTS)
    return Split(n, train, held_validation, held_test)


def _round_shares(
    counts: list[int], n: int, first_total: int, second_total: int, order: list[int]
) -> list[tuple[int, int]]:
    """For each class, whether its cumulative shares ``E1 = count·first_total/n`` and
    ``E2 = count·second_total/n`` round up (1) or down (0), as ``floor(E + θ)`` does for one
    offset ``θ`` per class, such that the rounded values add up to ``first_total`` and
    ``second_total``. Exact integer arithmetic: a share's fractional part is ``(count·m mod n)/n``.

    One ``θ`` per class can round: neither share up (θ = 0); both (θ close to 1), if both have a
    fractional part; only the one with the larger fractional part. The rows that must round up,
    ``R1`` and ``R2``, are the sums of the fractional parts. Classes are picked for each kind of
    rounding in ``order`` (a seeded random order) by their fractional parts; some count of "both up" always fits the totals (a table of
    shares with whole margins can be rounded keeping them), and the smallest that fits is taken.
    Within each kind, the classes with the largest fractional parts round up first."""
    f = [count * first_total % n for count in counts]  # fractional parts, times n
    g = [count * second_total % n for count in counts]
    r1, r2 = sum(f) // n, sum(g) // n
    rank = {c: i for i, c in enumerate(order)}
    # The largest fractional parts round up first (the largest-remainder rule), ties in ``order``.
    first_only = sorted((c for c in order if f[c] > g[c]), key=lambda c: (-f[c], rank[c]))  # E1 up only
    second_only = sorted((c for c in order if g[c] > f[c]), key=lambda c: (-g[c], rank[c]))
    either = {c for c in order if f[c] > 0 and g[c] > 0}  # may take both up
    order = sorted(order, key=lambda c: (-(f[c] + g[c]), rank[c]))
    for both in range(min(r1, r2) + 1):
        x, y = r1 - both, r2 - both
        # Classes that can only round one share take those first; "both" comes from the rest.
        ones = [c for c in first_only if c not in either][:x]
        ones += [c for c in first_only if c in either][: x - len(ones)]
        twos = [c for c in second_only if c not in either][:y]
        twos += [c for c in second_only if c in either][: y - len(twos)]
        pairs = [c for c in order if c in either and c not in ones and c not in twos][:both]
        if len(ones) == x and len(twos) == y and len(pairs) == both:
            ups = [(0, 0)] * len(counts)
            for c in ones:
                ups[c] = (1, 0)
            for c in twos:
                ups[c] = (0, 1)
            for c in pairs:
                ups[c] = (1, 1)
            return ups
    raise AssertionError(f"no rounding of the shares {counts} of {n} rows into {first_total}, {second_total}")
