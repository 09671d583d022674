"""Values that probe a component's declared params: some its declaration allows (which must then
build), some it forbids (which the registry must reject, naming the param).

The allowed values sit at the edges of the declared range, where a factory that needs a tighter
constraint than it declared breaks: a lower bound itself, 0 and -1 where there is no lower bound,
an empty list where no ``min_length`` is declared, every choice, every registered component a
param can name. Values are never large, so probing allocates nothing big.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from mlbasics.core.registry import Registry
from mlbasics.core.specs import ComponentSpec, Param
from mlbasics.testing._ranges import available_names, declared_range


class _Omitted:
    def __repr__(self) -> str:
        return "<omitted>"


#: Stands for "leave the param out" among the rejected cases of a required param.
OMITTED: Final = _Omitted()


@attrs.frozen
class Case:
    """One probe: ``param`` set to ``value`` (``why`` says what is wrong with it, for a rejected one)."""

    param: str
    value: Any
    why: str = ""

    def __str__(self) -> str:
        return f"{self.param}={self.value!r}"


def _nudge(bound: float) -> float:
    """A step just inside or outside a float bound, relative to its size."""
    return 1e-6 * max(1.0, abs(bound))


def _inside_items(param: Param, registry: Registry) -> list[Any]:
    """Scalar values (list items, for a list param) at the edges of the declared range;
    ``accepted_cases`` keeps only those the declaration allows."""
    item_type = param.item_type
    if item_type is bool:
        return [True, False]
    if item_type is str:
        if param.choices is not None:
            return list(param.choices)
        if param.component is not None:
            return available_names(registry, param.component)
        return []  # a free string (a path, a column name) has no value that is valid everywhere
    span = declared_range(param)
    values: list[Any] = []
    if item_type is int:
        values += [v for v in (span.low, span.high) if v is not None]
        if span.low is None:
            values += [0, -1]
        if span.low is None and span.high is None:
            values.append(1)
    else:
        if span.low is not None:
            values.append(span.low + _nudge(span.low) if span.open_low else span.low)
        if span.high is not None:
            values.append(span.high - _nudge(span.high) if span.open_high else span.high)
        if span.low is None:
            values += [0.0, -1.0]
        if span.low is None and span.high is None:
            values.append(1.0)
    return [item_type(v) for v in values]


def _allowed(param: Param, value: Any) -> bool:
    try:
        param.coerce(value)
    except ValueError:
        return False
    return True


def accepted_cases(spec: ComponentSpec, base: Mapping[str, Any], registry: Registry) -> list[Case]:
    """Values each param's declaration allows, one param at a time, other than its ``base`` value."""
    cases: list[Case] = []
    for param in spec.params:
        items = _inside_items(param, registry)
        if param.is_list:
            length = max(param.min_length or 0, 1)
            values: list[Any] = [[item] * length for item in items]
            if not param.min_length:
                values.append([])
        else:
            values = items
        if param.default is None:
            values.append(None)
        seen: list[Any] = [base.get(param.name, OMITTED)]
        for value in values:
            if value not in seen and _allowed(param, value):
                seen.append(value)
                cases.append(Case(param.name, value))
    return cases


def rejected_cases(spec: ComponentSpec, base: Mapping[str, Any]) -> list[Case]:
    """Values each param's declaration forbids: wrong types, just past each bound, too-short
    lists, unknown choices and component names, and a required param left out."""
    cases: list[Case] = []
    for param in spec.params:
        for value, why in _outside(param, base.get(param.name)):
            # Coercion checks types, bounds and choices, never whether a component name is
            # registered: the registry checks that, so a component param keeps every case.
            if param.component is not None or not _allowed(param, value):
                cases.append(Case(param.name, value, why))
    return cases


def _outside(param: Param, base: Any) -> Iterator[tuple[Any, str]]:
    if param.required:
        yield OMITTED, "required, left out"
    elif param.default is not None:
        yield None, "None, but the param is not optional"
    wrong_type = {bool: "yes", int: 1.5, float: "one", str: 3}[param.item_type]
    items = [(wrong_type, f"not a {param.item_type.__name__}")]
    if param.item_type in (int, float):
        items += list(_past_bounds(param))
    if param.choices is not None:
        items.append(("surely-not-a-choice", "not one of the choices"))
    if param.component is not None:
        items.append((f"no-such-{param.component}", f"not a registered {param.component}"))
    if not param.is_list:
        yield from items
        return
    yield "not-a-list", "not a list"
    length = max(param.min_length or 0, 1)
    for value, why in items:
        yield [value] * length, f"an item {why}"
    if param.min_length and isinstance(base, list) and len(base) >= param.min_length:
        yield base[: param.min_length - 1], f"fewer than {param.min_length} items"


def _past_bounds(param: Param) -> Iterator[tuple[Any, str]]:
    span = declared_range(param)
    if param.item_type is int:
        if span.low is not None:
            yield int(span.low) - 1, f"below {int(span.low)}"
        if span.high is not None:
            yield int(span.high) + 1, f"above {int(span.high)}"
        return
    if span.low is not None:
        value = span.low if span.open_low else span.low - _nudge(span.low)
        yield value, f"{'at' if span.open_low else 'below'} its lower bound {span.low}"
    if span.high is not None:
        value = span.high if span.open_high else span.high + _nudge(span.high)
        yield value, f"{'at' if span.open_high else 'above'} its upper bound {span.high}"
