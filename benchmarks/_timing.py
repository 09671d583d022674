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
    """One line of a benchmark table: candidate vs baseline, per unit of work (a step, a call)."""

    name: str
    baseline: str
    candidate_us: float
    baseline_us: float
    ratio: float
    ratio_low: float
    ratio_high: float
    repeats: int
    goal: str = ""

    def cells(self) -> list[str]:
        return [
            self.name,
            self.baseline,
            f"{self.candidate_us:,.1f}",
            f"{self.baseline_us:,.1f}",
            f"{self.ratio:.3f}",
            f"{self.ratio_low:.3f}-{self.ratio_high:.3f}",
            str(self.repeats),
            self.goal,
        ]


HEADERS = ["row", "baseline", "µs/unit", "baseline µs/unit", "ratio (median)", "ratio IQR", "repeats", "goal"]


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
) -> Row:
    """Run ``baseline`` and ``candidate`` alternately ``repeats`` times each. Each callable does its
    work and returns the seconds it measured (so setup outside the timed part is not counted);
    ``units`` is how many steps or calls one run holds."""
    baseline()  # warm-up: first-call costs (allocator, lazy imports) are not what we measure
    candidate()
    base_times, cand_times, ratios = [], [], []
    for index in range(repeats):
        if index % 2 == 0:
            b, c = baseline(), candidate()
        else:
            c, b = candidate(), baseline()
        base_times.append(b)
        cand_times.append(c)
        ratios.append(c / b)
    low, median, high = quartiles(ratios)
    return Row(
        name=name,
        baseline=baseline_name,
        candidate_us=statistics.median(cand_times) / units * 1e6,
        baseline_us=statistics.median(base_times) / units * 1e6,
        ratio=median,
        ratio_low=low,
        ratio_high=high,
        repeats=repeats,
        goal=goal,
    )


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
