"""What plugins hand to mlbasics: component specs and their declared parameters.

A hook returns :class:`ComponentSpec` objects. A spec is cheap metadata: a name, a one-line summary,
the parameters it accepts and a *factory* that builds the component. The factory may be given as a
``"package.module:function"`` string so that listing components never imports heavy plugin code;
it is imported only when the component is built.

These classes import nothing heavy (no torch), so ``mlbasics list`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal, get_args

import attrs

from mlbasics.errors import PluginError

Kind = Literal["dataset", "model", "activation", "loss", "optimizer", "metric", "callback"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
#: What a model learns: real-valued targets (regression) or class labels (classification).
Task = Literal["regression", "classification"]
TASKS: Final[tuple[Task, ...]] = get_args(Task)
#: The tag of a classification loss that scores two classes with one output (the logit of class
#: 1), such as ``binary-cross-entropy``: the model then gets one output, not two.
ONE_LOGIT_TAG: Final = "one-logit"
#: The tasks a spec serves when it does not say: what each kind served before there were two. A
#: model, an optimizer, an activation or a callback does not care what its targets mean; a loss, a
#: metric and a dataset were written for real-valued targets.
DEFAULT_TASKS: Final[dict[Kind, frozenset[Task]]] = {
    kind: frozenset({"regression"}) if kind in ("dataset", "loss", "metric") else frozenset(TASKS)
    for kind in KINDS
}
#: Each kind's plural, as headings and messages spell it.
PLURALS: Final[dict[Kind, str]] = {kind: "losses" if kind == "loss" else f"{kind}s" for kind in KINDS}


#: How deep a value from a config, ``--set`` or a param may nest (lists in lists, tables in tables).
#: Nothing mlbasics or a plugin declares comes close (a param is at most a list); a value nested
#: deeper is refused before anything recurses into it (reading, validating, printing, writing TOML).
MAX_NESTING: Final = 16


def nested_too_deeply(value: object, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` holds lists, tuples or dicts more than ``limit`` deep; without recursing,
    so any depth is safe to ask about."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def plural(kind: Kind) -> str:
    """``"models"``, ``"losses"``."""
    return PLURALS[kind]


#: The value types a parameter may declare. They are exactly the types a TOML file can spell.
PARAM_TYPES: Final[tuple[Any, ...]] = (int, float, bool, str, list[int], list[float], list[str])


class _Required:
    """Marks a parameter without a default: the user must give it."""

    _instance: _Required | None = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"

    def __reduce__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
_PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Keys the experiment format uses next to a component's params, so no param may take them.
RESERVED_PARAM_NAMES: Final = frozenset({"name", "in_features", "out_features"})
#: The dataset name an experiment records for data handed over in Python (arrays, tensors, a
#: DataFrame: :mod:`mlbasics.data.arrays`); its params describe the data, which only Python can give.
IN_MEMORY: Final = "in-memory"


def type_name(tp: Any) -> str:
    """``int`` -> ``"int"``, ``list[float]`` -> ``"list[float]"``."""
    return tp.__name__ if isinstance(tp, type) else str(tp)


def _describe_value(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check_param_type(_: Any, __: attrs.Attribute[Any], value: Any) -> None:
    if value not in PARAM_TYPES:
        allowed = ", ".join(type_name(t) for t in PARAM_TYPES)
        raise TypeError(f"param type must be one of {allowed}; got {value!r}")


def _check_param_name(_: Any, __: attrs.Attribute[Any], value: str) -> None:
    if not _PARAM_NAME.match(value):
        raise ValueError(f"param name {value!r} must be a lowercase Python identifier")
    if value in RESERVED_PARAM_NAMES:
        raise ValueError(f"param name {value!r} is reserved by mlbasics")


def _to_params(values: Iterable[Param]) -> tuple[Param, ...]:
    return tuple(values)


def _to_tags(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _to_strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _to_tasks(values: Iterable[str] | str) -> frozenset[str]:
    return frozenset([values] if isinstance(values, str) else values)


def _default_tasks(spec: Any) -> frozenset[Task]:
    return DEFAULT_TASKS.get(spec.kind, frozenset(TASKS))


def _check_tasks(_: Any, __: attrs.Attribute[Any], value: frozenset[str]) -> None:
    unknown = sorted(value - set(TASKS))
    if unknown or not value:
        raise ValueError(f"tasks must be one or both of {', '.join(TASKS)}; got {sorted(value) or 'none'}")


@attrs.frozen(kw_only=True)
class Param:
    """One declared parameter of a component: its type, default and constraints.

    Values are checked before the factory runs. Bounds (``gt``, ``ge``, ``lt``, ``le``) apply to a
    number or to every item of a list; ``min_length`` to a list; ``choices`` to a string.
    A param with ``component="activation"`` names another registered component of that kind; the
    factory then receives a zero-argument callable that builds a fresh instance of it.
    """

    name: str = attrs.field(validator=_check_param_name)
    type: Any = attrs.field(validator=_check_param_type)
    default: Any = REQUIRED
    help: str = ""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    min_length: int | None = None
    choices: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(_to_strings)
    )
    component: Kind | None = None

    def __attrs_post_init__(self) -> None:
        if self.component is not None:
            if self.component not in KINDS:
                raise ValueError(f"param {self.name!r}: component must be one of {', '.join(KINDS)}")
            if self.type is not str:
                # The factory receives one builder; a list of names has no builder to receive.
                raise TypeError(
                    f"param {self.name!r}: a component param names one component, so its type must "
                    f"be str, not {type_name(self.type)}"
                )
        if self.default is not REQUIRED and self.default is not None:
            try:
                self.coerce(self.default)
            except ValueError as exc:
                raise ValueError(f"default of param {self.name!r} is invalid: {exc}") from None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def is_list(self) -> bool:
        return not isinstance(self.type, type)

    @property
    def item_type(self) -> type:
        """The scalar type: ``float`` for both ``float`` and ``list[float]``."""
        return self.type if isinstance(self.type, type) else get_args(self.type)[0]

    def constraint(self) -> str:
        """A short human description of the constraints, e.g. ``"> 0"`` or ``"one of: relu, tanh"``."""
        parts = [f"{op} {_fmt_number(bound)}" for op, bound in self._bounds() if bound is not None]
        if self.is_list and parts:
            parts = [f"each {' and '.join(parts)}"]
        if self.min_length is not None:
            parts.append(f"at least {self.min_length} item{'s' if self.min_length != 1 else ''}")
        if self.choices is not None:
            parts.append("one of: " + ", ".join(self.choices))
        if self.component is not None:
            parts.append(f"a registered {self.component}")
        return ", ".join(parts)

    def _bounds(self) -> tuple[tuple[str, float | None], ...]:
        return ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))

    def coerce(self, value: Any) -> Any:
        """Return ``value`` converted to the declared type, or raise ``ValueError`` saying why not.

        Ints are accepted for floats; bools are never accepted as numbers; ``None`` is accepted only
        where the default is ``None`` (an optional param).
        """
        if value is None:
            if self.default is None:
                return None
            raise ValueError(f"expected {type_name(self.type)}, got None")
        if not self.is_list:
            return self._coerce_item(value, expected=type_name(self.type))
        if not isinstance(value, list | tuple):
            raise ValueError(
                f"expected {type_name(self.type)}, got {_describe_value(value)}{self._list_hint(value)}"
            )
        items = [self._coerce_item(item, expected=type_name(self.type)) for item in value]
        if self.min_length is not None and len(items) < self.min_length:
            raise ValueError(f"needs at least {self.min_length} item(s), got {len(items)}")
        return items

    def _list_hint(self, value: Any) -> str:
        """How ``value`` is written as the list this param takes, where it reads as one: ``16,16``
        (what ``--set model.hidden=16,16`` gives) or ``16`` as ``[16, 16]`` or ``[16]``."""
        items: Any = [value]
        if isinstance(value, str):
            try:
                items = tomllib.loads(f"items = [{value}]")["items"]
            except (tomllib.TOMLDecodeError, RecursionError):
                items = [item.strip() for item in value.split(",")]
        try:
            written = [self._coerce_item(item, expected="") for item in items]
        except ValueError:
            return ""
        return f"; a list is written in brackets: {json.dumps(written)}"

    def _coerce_item(self, value: Any, *, expected: str) -> Any:
        item_type = self.item_type
        if item_type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not item_type:
            raise ValueError(f"expected {expected}, got {_describe_value(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value!r}")
        for op, bound in self._bounds():
            if bound is not None and not _OPS[op](value, bound):
                raise ValueError(f"must be {op} {_fmt_number(bound)}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}; got {value!r}")
        return value


_OPS: Final[dict[str, Callable[[Any, float], bool]]] = {
    ">": lambda v, b: v > b,
    ">=": lambda v, b: v >= b,
    "<": lambda v, b: v < b,
    "<=": lambda v, b: v <= b,
}


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


@attrs.frozen(kw_only=True)
class PluginInfo:
    """Where a component came from: the plugin's name and the distribution that installed it, or
    the file it was loaded from (``path``, for plugins given by ``--plugins-dir``)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.distribution is not None:
            return f"{self.name} ({self.distribution} {self.version})"
        if self.path is not None:
            return f"{self.name} ({self.path})"
        return self.name


def _check_name(_: Any, __: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"component name {value!r} must be lowercase letters and digits, separated by - _ or ."
        )


def _check_summary(_: Any, __: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise ValueError("summary must be one non-empty line")


def _check_factory(_: Any, __: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str):
        module, sep, attr = value.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"factory string {value!r} must look like 'package.module:function'")
    elif not callable(value):
        raise TypeError(f"factory must be callable or a 'module:function' string, got {value!r}")


def _check_stacked(spec: Any, _: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if spec.kind != "optimizer":
        raise ValueError(f"only an optimizer has a stacked form, not a {spec.kind}")
    _check_factory(spec, _, value)


def _check_params(_: Any, __: attrs.Attribute[Any], value: tuple[Param, ...]) -> None:
    names = [p.name for p in value]
    if not all(isinstance(p, Param) for p in value):
        raise TypeError("params must be Param instances")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"params declared twice: {', '.join(duplicated)}")


@attrs.frozen(kw_only=True)
class ComponentSpec:
    """A buildable component, as returned by a plugin's hook.

    Args:
        kind: one of ``dataset``, ``model``, ``activation``, ``loss``, ``optimizer``.
        name: the registry name users type (``"mlp"``, ``"synthetic-linear"``).
        factory: builds the component from the validated params; a callable, or a
            ``"package.module:function"`` string imported only when the component is built.
        summary: one line for listings.
        params: the parameters the factory accepts, with types, defaults and constraints.
        tags: capabilities other code may look for (``"least-squares"`` on a loss, ``"closure"``
            on an optimizer whose ``step`` needs a closure).
        requires: importable module names the factory needs; a spec whose requirement is missing
            is listed as unavailable instead of failing at build time.
        install_hint: what to run to get the requirements, e.g. ``pip install mlbasics-extra[sk]``.
        overrides: replace a same-named component of another plugin instead of conflicting with it.
        tasks: what the component serves: ``{"regression"}``, ``{"classification"}`` or both. A loss
            or metric for class labels, a dataset of them, or an optimizer that cannot fit them
            says so here, and training refuses a combination that does not fit (``lstsq`` on class
            labels, ``mse`` on them). Default: both for models, activations, optimizers and
            callbacks; regression for datasets, losses and metrics.
        stacked: an optimizer's update over parameters stacked along a first, member dimension, which
            lets a sweep train its members as one vmapped ensemble (:class:`mlbasics.sweeps.ensemble.StackedUpdate`:
            ``update(params, grads, state, hyper) -> (params, state)``); a callable, or a
            ``"package.module:function"`` string imported only when a sweep uses it. ``None``: sweeps
            with this optimizer train their members one after another.
        plugin: provenance, filled in by mlbasics when it collects the spec; plugins leave it unset.
    """

    kind: Kind = attrs.field(validator=attrs.validators.in_(KINDS))
    name: str = attrs.field(validator=_check_name)
    factory: Callable[..., Any] | str = attrs.field(validator=_check_factory)
    summary: str = attrs.field(validator=_check_summary)
    params: tuple[Param, ...] = attrs.field(default=(), converter=_to_params, validator=_check_params)
    tags: frozenset[str] = attrs.field(default=frozenset(), converter=_to_tags)
    requires: tuple[str, ...] = attrs.field(default=(), converter=_to_strings)
    install_hint: str = ""
    overrides: bool = False
    stacked: Callable[..., Any] | str | None = attrs.field(default=None, validator=_check_stacked)
    tasks: frozenset[Task] = attrs.field(
        default=attrs.Factory(_default_tasks, takes_self=True), converter=_to_tasks, validator=_check_tasks
    )
    plugin: PluginInfo | None = attrs.field(default=None, eq=False)

    def serves(self, task: str) -> bool:
        """Whether this component serves ``task`` (``"regression"`` or ``"classification"``)."""
        return task in self.tasks

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def defaults(self) -> dict[str, Any]:
        """The params that have defaults, with their default values."""
        return {p.name: p.default for p in self.params if not p.required}

    def missing_requirements(self) -> tuple[str, ...]:
        """The declared requirements that cannot be imported here (checked without importing them)."""
        return tuple(module for module in self.requires if not _importable(module))

    def load_factory(self) -> Callable[..., Any]:
        """The factory itself, importing it first if it was given as a string."""
        return self._load(self.factory, "factory")

    def load_stacked(self) -> Callable[..., Any] | None:
        """The stacked form (see ``stacked``), importing it first if it was given as a string."""
        return None if self.stacked is None else self._load(self.stacked, "stacked form")

    def _load(self, target_or_path: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
        if callable(target_or_path):
            return target_or_path
        module_name, _, qualname = target_or_path.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for attr in qualname.split("."):
                target = getattr(target, attr)
        except (ImportError, AttributeError) as exc:
            whose = "" if what == "factory" else f" ({what})"
            raise PluginError(
                f"{self.kind} {self.name!r}{whose} from plugin {self.plugin or '?'} cannot be loaded: {exc}"
            ) from exc
        if not callable(target):
            raise PluginError(f"{self.kind} {self.name!r}: {what} {target_or_path!r} is not callable")
        return target  # type: ignore[no-any-return]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
