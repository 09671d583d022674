"""The values a :class:`~mlbasics.Param` declares (the range of a numeric one, the names a
component one may take), shared by the strategies that draw params and the conformance checks that
probe them. No torch, no Hypothesis."""

from __future__ import annotations

import math

import attrs

from mlbasics.core.registry import Registry
from mlbasics.core.specs import Param


@attrs.frozen
class Range:
    """Numbers between ``low`` and ``high`` (``None``: unbounded on that side); an open end is
    excluded. For an int param both ends are the inclusive integer bounds."""

    low: float | None
    high: float | None
    open_low: bool = False
    open_high: bool = False


def declared_range(param: Param) -> Range:
    """The range ``param`` (or each item of a list param) may take, from its ``ge/gt/le/lt``."""
    if param.item_type is int:
        lows = [math.ceil(param.ge)] if param.ge is not None else []
        lows += [math.floor(param.gt) + 1] if param.gt is not None else []
        highs = [math.floor(param.le)] if param.le is not None else []
        highs += [math.ceil(param.lt) - 1] if param.lt is not None else []
        return Range(max(lows, default=None), min(highs, default=None))
    # On a tie the open bound is the tighter one.
    low_bound = max(_given((param.ge, False), (param.gt, True)), default=(None, False), key=_low_key)
    high_bound = min(_given((param.le, False), (param.lt, True)), default=(None, False), key=_high_key)
    return Range(low_bound[0], high_bound[0], low_bound[1], high_bound[1])


def _given(*bounds: tuple[float | None, bool]) -> list[tuple[float | None, bool]]:
    return [bound for bound in bounds if bound[0] is not None]


def _low_key(bound: tuple[float | None, bool]) -> tuple[float, bool]:
    return (bound[0] if bound[0] is not None else 0.0, bound[1])


def _high_key(bound: tuple[float | None, bool]) -> tuple[float, bool]:
    return (bound[0] if bound[0] is not None else 0.0, not bound[1])


def closed(span: Range, width: float) -> tuple[float, float]:
    """``span`` with a missing side put ``width`` beyond the other side (or around 0)."""
    if span.low is None and span.high is None:
        return -width, width
    if span.low is None:
        assert span.high is not None
        return span.high - width, span.high
    if span.high is None:
        return span.low, span.low + width
    return span.low, span.high


def available_names(registry: Registry, kind: str) -> list[str]:
    """The names of the components of ``kind`` that ``registry`` can build, sorted."""
    return [s.name for s in registry.specs(kind) if registry.status(s) == "available"]
