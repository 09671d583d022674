"""Timing helpers for the benchmarks: interleaved repeats, ratios against a baseline, medians.

These machines are shared and noisy, so a benchmark never compares absolute times from different
moments: it runs the baseline and the candidate alternately (A B B A ...), takes the ratio of each
adjacent pair, and reports the median ratio with its spread (the 25th-75th percentile range).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import attrs


@attrs.frozen
class Row:
    """One line of a benchmark table: candidate vs baseline, per unit of work (a step, a call).
    The ratio is candidate time / baseline time: below 1 the candidate is faster."""

    name: str
    baseline: str
    candidate_us: float
    baseline_us: float
    ratio: float
    ratio_low: float
    ratio_high: float
    repeats: int
    goal: str = ""
    #: The goal as a number: the median ratio must be at most this (None: no goal for this row).
    goal_max: float | None = None

    @property
    def speedup(self) -> float:
        """How many times faster the candidate is (baseline / candidate)."""
        return 1 / self.ratio if self.ratio > 0 else float("inf")

    @property
    def met(self) -> str:
        if self.goal_max is None:
            return "-"
        return "yes" if self.ratio <= self.goal_max else "no"

    def cells(self) -> list[str]:
        return [
            self.name,
            self.baseline,
            f"{self.candidate_us:,.1f}",
            f"{self.baseline_us:,.1f}",
            f"{self.ratio:.3g}",
            f"{self.ratio_low:.3g}-{self.ratio_high:.3g}",
            f"{self.speedup:,.3g}x",
            str(self.repeats),
            self.goal,
            self.met,
        ]


HEADERS = [
    "row",
    "baseline",
    "µs/unit",
    "baseline µs/unit",
    "ratio (median)",
    "ratio IQR",
    "speed-up",
    "repeats",
    "goal",
    "met",
]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def compare(
    name: str,
    baseline_name: str,
    baseline: Callable[[], float],
    candidate: Callable[[], float],
    *,
    units: int,
    repeats: int,
    goal: str = "",
    goal_max: float | None = None,
    candidate_units: int | None = None,
) -> Row:
    """Run ``baseline`` and ``candidate`` alternately ``repeats`` times each. Each callable does its
    work and returns the seconds it measured (so setup outside the timed part is not counted);
    ``units`` is how many steps or calls one run holds (``candidate_units``, if given, for the
    candidate: a sweep of 100 models over 50 epochs holds 5000 model-steps)."""
    per_candidate = candidate_units or units
    baseline()  # warm-up: first-call costs (allocator, lazy imports) are not what we measure
    candidate()
    base_times, cand_times, ratios = [], [], []
    for index in range(repeats):
        if index % 2 == 0:
            b, c = baseline(), candidate()
        else:
            c, b = candidate(), baseline()
        base_times.append(b / units)
        cand_times.append(c / per_candidate)
        ratios.append((c / per_candidate) / (b / units))
    low, median, high = quartiles(ratios)
    return Row(
        name=name,
        baseline=baseline_name,
        candidate_us=statistics.median(cand_times) * 1e6,
        baseline_us=statistics.median(base_times) * 1e6,
        ratio=median,
        ratio_low=low,
        ratio_high=high,
        repeats=repeats,
        goal=goal,
        goal_max=goal_max,
    )


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
