"""An experiment: which dataset, model, loss and optimizer (by registry name, with params), for how
many epochs, on which device, from which seed. Built in Python, read from TOML, written back to TOML.

The TOML form has one table per component, holding its ``name`` and its params::

    epochs = 500
    seed = 0

    [dataset]
    name = "synthetic-linear"
    noise = 0.0

    [model]
    name = "linear"

    [loss]
    name = "mse"

    [optimizer]
    name = "sgd"
    lr = 0.1

Anything left out takes the default: the lecture's MLP on ``quadratic``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import tomli_w

from mlbasics._files import atomic_write_text, check_names
from mlbasics.core.registry import suggest
from mlbasics.core.specs import IN_MEMORY, MAX_NESTING, Kind, nested_too_deeply
from mlbasics.devices import check_device_name
from mlbasics.errors import DataError, ValidationError

COMPONENT_KINDS: Final[tuple[Kind, ...]] = ("dataset", "model", "loss", "optimizer")


@attrs.frozen
class Component:
    """A component chosen by registry name, with the params to build it from.

    The dataset ``in-memory`` is data handed over in Python: its params record the data (shapes,
    names, SHA-256: :func:`mlbasics.data.arrays.record`) and ``data`` holds the
    :class:`mlbasics.Dataset` itself, which is never written anywhere (read back from a file, such a
    component has no data, and the arrays must be given again)."""

    name: str
    params: dict[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    data: Any = attrs.field(default=None, eq=False, hash=False, repr=False, kw_only=True)
    #: The experiment's default, not chosen by anyone: the default loss (``mse``) gives way to
    #: ``cross-entropy`` on a dataset of class labels. Not part of equality.
    implicit: bool = attrs.field(default=False, eq=False, repr=False, kw_only=True)

    @classmethod
    def of(cls, value: str | Mapping[str, Any] | Component, *, current: Component | None = None) -> Component:
        """Accept ``"mlp"``, ``{"name": "mlp", "hidden": [4]}`` or a Component. With ``current``
        (the component it replaces), a table without a name keeps that component and sets its
        params: ``{"lr": 0.1}`` over ``sgd(lr=0.01)`` is ``sgd(lr=0.1)``."""
        if isinstance(value, Component):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            params = dict(value)
            if "name" not in params and current is not None:  # a default stays one: its task may replace it
                return cls(current.name, {**current.params, **params}, implicit=current.implicit)
            name = params.pop("name", None)
            if not isinstance(name, str):
                raise ValidationError([f"a component needs a name (a string), got {name!r}"])
            return cls(name, params)
        raise ValidationError([f"a component is a name or a table with a name, got {value!r}"])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v for k, v in self.params.items() if v is not None}}

    def __str__(self) -> str:
        if self.name == IN_MEMORY:
            from mlbasics.data.in_memory import described

            return f"{self.name}({described(self.params)})"
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})" if args else self.name


def memory_dataset(
    value: Any,
    *,
    target: str | Sequence[str] | None = None,
    validation: Any = None,
    test: Any = None,
) -> Component:
    """The dataset component of data held in memory: ``value`` converted and checked
    (:mod:`mlbasics.data.arrays`), with its held-out parts, recorded as dataset ``in-memory``."""
    from mlbasics.data import arrays, in_memory

    dataset = value.data if isinstance(value, Component) else in_memory.as_dataset(value, target=target)
    dataset = arrays.with_held_out(dataset, validation=validation, test=test)
    return Component(IN_MEMORY, in_memory.record(dataset), data=dataset)


def _to_components(values: Any) -> tuple[Component, ...]:
    """A list of components: names, ``{"name": ..., **params}`` tables or Components."""
    if isinstance(values, str | Mapping | Component):
        values = [values]
    if not isinstance(values, Iterable):
        raise ValidationError([f"expected a list of components, got {values!r}"])
    return tuple(Component.of(value) for value in values)


def _default(name: str, **params: Any) -> Callable[[], Component]:
    return lambda: Component(name, params)


#: The loss an experiment that names none trains with, by the dataset's task.
DEFAULT_LOSSES: Final = {"regression": "mse", "classification": "cross-entropy"}


def _default_loss() -> Component:
    return Component(DEFAULT_LOSSES["regression"], implicit=True)


#: Each component's default, made anew each time (its params are a dict of its own).
_DEFAULT_COMPONENTS: Final = {
    "dataset": _default("quadratic"),
    "model": _default("mlp"),
    "loss": _default_loss,  # mse, or cross-entropy on class labels: the dataset's task chooses
    "optimizer": _default("sgd", lr=0.01),
}


# The converters of the component fields (named functions, as mypy's attrs plugin needs): a table
# without a name given for one sets params of the default (``Experiment(optimizer={"lr": 0.1})``).
def _to_dataset(value: Any) -> Component:
    """A dataset by name, table or Component, or data held in memory (a :class:`mlbasics.Dataset`,
    a ``(features, targets)`` pair: see :func:`memory_dataset`)."""
    if isinstance(value, str | Mapping | Component):
        return Component.of(value, current=_DEFAULT_COMPONENTS["dataset"]())
    return memory_dataset(value)


def _to_model(value: str | Mapping[str, Any] | Component) -> Component:
    return Component.of(value, current=_DEFAULT_COMPONENTS["model"]())


def _to_loss(value: str | Mapping[str, Any] | Component) -> Component:
    return Component.of(value, current=_DEFAULT_COMPONENTS["loss"]())


def _to_optimizer(value: str | Mapping[str, Any] | Component) -> Component:
    return Component.of(value, current=_DEFAULT_COMPONENTS["optimizer"]())


@attrs.frozen
class Experiment:
    """Everything needed to reproduce a training run. The defaults are the lecture's MLP:
    ``quadratic`` data, a 1-6-10-6-1 ReLU network, MSE, SGD with lr 0.01, 10000 epochs."""

    #: A registered dataset by name, or data held in memory (a ``(features, targets)`` pair of
    #: arrays, a :class:`mlbasics.Dataset`), recorded as dataset ``in-memory``.
    dataset: Component = attrs.field(factory=_DEFAULT_COMPONENTS["dataset"], converter=_to_dataset)
    model: Component = attrs.field(factory=_DEFAULT_COMPONENTS["model"], converter=_to_model)
    #: Left out: ``mse``, or ``cross-entropy`` on a dataset of class labels.
    loss: Component = attrs.field(factory=_DEFAULT_COMPONENTS["loss"], converter=_to_loss)
    optimizer: Component = attrs.field(factory=_DEFAULT_COMPONENTS["optimizer"], converter=_to_optimizer)
    epochs: int = 10000
    device: str = "auto"
    #: Seeds the model's initialisation (datasets have their own ``seed`` param). The default is 1
    #: because the lecture's MLP is sensitive to where it starts: from seeds 0-19, 18 end below loss
    #: 0.01 after 10000 epochs, but seed 0 ends at 0.0109 (docs/performance.md lists them all).
    seed: int = 1
    #: Epochs between the moments the loss is copied off the device (progress, checks); None: about 100 per run.
    log_every: int | None = None
    #: On CUDA, capture the training step in a CUDA graph and replay it where that is safe (see
    #: mlbasics/engine/steppers.py); False trains eagerly everywhere. Elsewhere it changes nothing.
    cuda_graph: bool = True
    #: Fractions of the rows held out for validation (its loss is computed at every sync point) and
    #: for test (evaluated once, at the end), split by ``split_seed``: see :mod:`mlbasics.data.splits`.
    validation: float = 0.0
    test: float = 0.0
    split_seed: int = 0
    #: Rows per step; ``None``: the whole training set (the lecture's full-batch training). An
    #: epoch is one pass over the training rows: see :mod:`mlbasics.data.batches`.
    batch_size: int | None = None
    #: A new order of the training rows every epoch; ``None``: on when there are mini-batches.
    shuffle: bool | None = None
    #: Leave out the last batch of an epoch if it is smaller than ``batch_size``.
    drop_last: bool = False
    #: Scale to mean 0 and standard deviation 1, with statistics of the training rows:
    #: "none", "features" or "features+target" (see :mod:`mlbasics.data.standardization`).
    standardize: str = "none"
    #: Split class labels stratified: every part holds each class in the whole table's proportion
    #: (within one row). Only class labels are stratified; regression targets are split at random.
    stratify: bool = True
    #: Metrics computed at sync points on the training and validation rows and once on the test
    #: rows, by registry name (``["r2", "mae"]``): see :mod:`mlbasics.engine.metrics`.
    metrics: tuple[Component, ...] = attrs.field(default=(), converter=_to_components)
    #: Callbacks that watch and steer training (early stopping, loggers, schedules), by registry
    #: name with their params, in the order they run: see :mod:`mlbasics.core.callbacks`.
    callbacks: tuple[Component, ...] = attrs.field(default=(), converter=_to_components)

    def components(self) -> dict[Kind, Component]:
        return {kind: getattr(self, kind) for kind in COMPONENT_KINDS}

    def __repr__(self) -> str:
        """Short, and Python that builds the same experiment: components as names, or as
        ``{"name": ..., **params}`` when they have params; ``log_every`` and ``cuda_graph`` only
        when they are not the defaults."""
        parts = [
            f"{kind}={component.name!r}"
            if not component.params
            else f"{kind}=<{component}>"
            if component.name == IN_MEMORY
            else f"{kind}={ ({'name': component.name, **component.params})!r}"
            for kind, component in self.components().items()
        ]
        parts += [f"{field}={getattr(self, field)!r}" for field in ("epochs", "device", "seed")]
        if self.log_every is not None:
            parts.append(f"log_every={self.log_every!r}")
        if self.cuda_graph is not True:
            parts.append(f"cuda_graph={self.cuda_graph!r}")
        for field in ("metrics", "callbacks"):
            listed = [c.name if not c.params else {"name": c.name, **c.params} for c in getattr(self, field)]
            if listed:
                parts.append(f"{field}={listed!r}")
        return f"Experiment({', '.join(parts)})"

    def _repr_html_(self) -> str:
        from mlbasics.show import display

        return display.html(*display.experiment(self))

    def problems(self) -> list[str]:
        """What is wrong with the experiment's own settings (components are checked by the registry)."""
        found = []
        for field, minimum in (("epochs", 1), ("seed", 0), ("log_every", 1)):
            value = getattr(self, field)
            if field == "log_every" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                found.append(f"{field} must be an integer, got {value!r}")
            elif value < minimum:
                found.append(f"{field} must be >= {minimum}, got {value}")
        cuda_graph: object = self.cuda_graph  # from TOML or --set, it may be anything
        if not isinstance(cuda_graph, bool):
            found.append(f"cuda_graph must be true or false, got {cuda_graph!r}")
        device_problem = check_device_name(self.device)
        if device_problem:
            found.append(device_problem)
        found += self.data_problems()
        return found

    def data_problems(self) -> list[str]:
        """What is wrong with the held-out, batching and standardization settings by themselves
        (sizes that depend on the data are checked when the data are loaded)."""
        from mlbasics.data.splits import fraction_problems

        found = fraction_problems(self.validation, self.test)
        split_seed: object = self.split_seed
        if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
            found.append(f"split_seed must be an integer >= 0, got {split_seed!r}")
        batch_size: object = self.batch_size
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
            found.append(f"batch_size must be an integer (rows per step), got {batch_size!r}")
        elif batch_size is not None and batch_size < 1:
            found.append(f"batch_size must be >= 1 (rows per step), got {batch_size}")
        shuffle: object = self.shuffle
        if shuffle is not None and not isinstance(shuffle, bool):
            found.append(f"shuffle must be true or false, got {shuffle!r}")
        for field in ("drop_last", "stratify"):
            value: object = getattr(self, field)
            if not isinstance(value, bool):
                found.append(f"{field} must be true or false, got {value!r}")
        if self.standardize not in STANDARDIZE_CHOICES:
            choices = ", ".join(repr(choice) for choice in STANDARDIZE_CHOICES)
            found.append(f"standardize must be one of {choices}, got {self.standardize!r}")
        return found

    # -- overrides, as the CLI applies them ----------------------------------------------------

    def with_component(self, kind: str, name: str) -> Experiment:
        """Choose another component of ``kind``; params of the previous one are dropped if the name changes."""
        kind = _component_kind(kind)
        current: Component = getattr(self, kind)
        # Naming the default (--loss mse) chooses it: it no longer gives way to the task's default.
        return self if current.name == name and not current.implicit else self._replace(kind, Component(name))

    def with_value(self, key: str, value: Any) -> Experiment:
        """Set ``epochs``, ``device``, ``seed``, ``log_every``, ``cuda_graph``, ``validation``,
        ``test``, ``split_seed``, ``batch_size``, ``shuffle``, ``drop_last``, ``standardize``,
        ``stratify``, a component
        (``model``), or a component param (``optimizer.lr``)."""
        if nested_too_deeply(value):
            raise ValidationError([f"{key}: {_TOO_DEEP}"])
        if key == LR:  # the shortcut --lr is: the optimizer's learning rate
            key = "optimizer.lr"
        head, dot, param = key.partition(".")
        if head in LIST_KINDS:
            return self._with_listed(head, param, value)
        if not dot:
            if head in COMPONENT_KINDS:
                if isinstance(value, str):
                    return self.with_component(head, value)
                current: Component = getattr(self, head)
                return self._replace(head, Component.of(value, current=current))
            if head not in _SCALAR_KEYS:
                raise ValidationError([f"unknown setting {key!r}{self.key_hint(head)}"])
            return self._replace(head, value)
        kind = _component_kind(head)
        component: Component = getattr(self, kind)
        if param == "name":
            return self.with_component(kind, value)
        # A param of the default loss (loss.weight) is a param of whichever loss the task chooses.
        params = {**component.params, param: value}
        return self._replace(kind, Component(component.name, params, implicit=component.implicit))

    def key_hint(self, key: str, *, form: str = "key") -> str:
        """``"; did you mean 'epochs'?"`` for a misspelt key; for a param of one of the experiment's
        components written alone (``hidden``), the key that reaches it, written as ``form`` says:
        ``"key"`` (``model.hidden``, for --set), ``"table"`` (TOML's ``[model]`` table) or
        ``"keyword"`` (Python's ``model={"hidden": ...}``)."""
        hint = suggest(key, _ALL_KEYS)
        if hint:
            return hint
        owners = [kind for kind, names in self._param_names().items() if key in names]
        if not owners:
            return ""
        forms = {
            "key": "'{kind}.{key}'",
            "table": "{key} in the [{kind}] table",
            "keyword": '{kind}={{"{key}": ...}}',
        }
        return "; it is a param of " + " and ".join(
            f"{kind} {getattr(self, kind).name!r}: did you mean {forms[form].format(kind=kind, key=key)}?"
            for kind in owners
        )

    def _param_names(self) -> dict[str, list[str]]:
        """The params each of the experiment's components declares, as the installed plugins say
        (for hints only: nothing if the registry cannot tell)."""
        from mlbasics.core.registry import default_registry
        from mlbasics.errors import MlbasicsError

        names: dict[str, list[str]] = {}
        for kind, component in self.components().items():
            try:
                spec = default_registry().get(kind, component.name)
            except MlbasicsError:
                continue
            names[kind] = [param.name for param in spec.params]
        return names

    def with_listed(self, field: str, name: str) -> Experiment:
        """Add metric or callback ``name`` to ``field`` (``"metrics"``, ``"callbacks"``) unless it is there."""
        listed: tuple[Component, ...] = getattr(self, field)
        if any(component.name == name for component in listed):
            return self
        return self._replace(field, (*listed, Component(name)))

    def _with_listed(self, field: str, rest: str, value: Any) -> Experiment:
        """``metrics = [...]`` replaces the list; ``callbacks.NAME.PARAM = value`` sets a param of
        callback NAME (added if it is not there yet)."""
        if not rest:
            try:
                return self._replace(field, _to_components(value))
            except ValidationError as exc:
                raise ValidationError([f"{field}: {line}" for line in exc.problems]) from None
        name, dot, param = rest.partition(".")
        if not dot or not param:
            raise ValidationError(
                [f"{field}.{rest}: name a param, as in {field}.{name or 'NAME'}.PARAM=VALUE"]
            )
        listed: tuple[Component, ...] = getattr(self.with_listed(field, name), field)
        changed = tuple(
            Component(c.name, {**c.params, param: value}) if c.name == name else c for c in listed
        )
        return self._replace(field, changed)

    def _replace(self, field: str, value: Any) -> Experiment:
        changes: dict[str, Any] = {field: value}
        return attrs.evolve(self, **changes)

    def with_assignments(self, assignments: Iterable[str]) -> Experiment:
        """Apply ``KEY=VALUE`` strings; VALUE is read as a TOML value (``0.1``, ``[6, 10]``, ``true``),
        and as a plain string if it is not one (but a list or table cut short, ``[16,``, is an error)."""
        experiment = self
        for key, value in parse_assignments(assignments):
            experiment = experiment.with_value(key, value)
        return experiment

    # -- TOML ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"epochs": self.epochs, "device": self.device, "seed": self.seed}
        if self.log_every is not None:
            data["log_every"] = self.log_every
        if self.cuda_graph is not True:
            data["cuda_graph"] = self.cuda_graph
        for field, default in _DATA_DEFAULTS.items():  # only what differs: lecture files stay as they were
            value = getattr(self, field)
            if value != default or type(value) is not type(default):
                data[field] = value
        for kind, component in self.components().items():
            if kind == "loss" and component.implicit and not component.params:
                continue  # the task's default, chosen when the data are known: not mse on class labels
            data[kind] = component.to_dict()
        if self.metrics:  # names alone where none has params: metrics = ["r2", "mae"]
            plain = not any(metric.params for metric in self.metrics)
            data["metrics"] = [m.name if plain else m.to_dict() for m in self.metrics]
        if self.callbacks:
            data["callbacks"] = [callback.to_dict() for callback in self.callbacks]
        return data

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "experiment") -> Experiment:
        problems: list[str] = []
        values: dict[str, Any] = {}
        defaults = cls()
        for key, value in data.items():
            # A component's table is one level more than its params, which are what --set sets.
            if nested_too_deeply(
                value, MAX_NESTING + _TABLE_LEVELS.get(key, 0) * isinstance(value, dict | list)
            ):
                problems.append(f"{source}: {key}: {_TOO_DEEP}")
            elif key in COMPONENT_KINDS:
                try:  # a table without a name sets params of the default component
                    values[key] = Component.of(value, current=getattr(defaults, key))
                except ValidationError as exc:
                    problems.extend(f"{source}: [{key}] {line}" for line in exc.problems)
            elif key == LR:
                continue  # the shortcut: set below, on whichever optimizer the file names
            elif key in _SCALAR_KEYS:
                values[key] = value
            elif key in LIST_KINDS:
                try:
                    values[key] = _to_components(value)
                except ValidationError as exc:
                    problems.extend(f"{source}: {key}: {line}" for line in exc.problems)
            else:
                hint = attrs.evolve(defaults, **values).key_hint(key, form="table")
                problems.append(f"{source}: unknown key {key!r}{hint}")
        if LR in data:
            optimizer: Component = values.get("optimizer", defaults.optimizer)
            table = data.get("optimizer")
            given = table.get("lr") if isinstance(table, Mapping) else None
            if given is not None:
                problems.append(
                    f"{source}: lr is given twice, lr = {data[LR]!r} and lr = {given!r} in the [optimizer] "
                    "table; keep one"
                )
            else:
                values["optimizer"] = Component(optimizer.name, {**optimizer.params, "lr": data[LR]})
        if problems:
            raise ValidationError(problems)
        return cls(**values)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "experiment") -> Experiment:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{source}: invalid TOML: {exc}") from None
        except RecursionError:
            raise DataError(f"{source}: a value {_TOO_DEEP}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        """Read an experiment from a TOML file."""
        file = Path(path)
        check_names(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise DataError(f"{path}: is a directory, not a TOML file") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
        return cls.from_toml(text, source=str(path))

    def save(self, path: str | Path) -> None:
        """Write the experiment as TOML (atomically: the file is whole or untouched)."""
        atomic_write_text(path, self.to_toml())


_TOO_DEEP: Final = f"nested more than {MAX_NESTING} levels deep (lists in lists or tables in tables)"
STANDARDIZE_CHOICES: Final = ("none", "features", "features+target")
_DATA_DEFAULTS: Final[dict[str, Any]] = {
    "validation": 0.0,
    "test": 0.0,
    "split_seed": 0,
    "batch_size": None,
    "shuffle": None,
    "drop_last": False,
    "standardize": "none",
    "stratify": True,
}
_SCALAR_KEYS: Final = ("epochs", "device", "seed", "log_every", "cuda_graph", *_DATA_DEFAULTS)
#: The one shortcut key: ``lr`` is the optimizer's learning rate (``--lr``, ``train(lr=...)``,
#: ``lr = 0.1`` at the top of a TOML file), as ``optimizer.lr``; written back as that.
LR: Final = "lr"
#: How many levels a field's TOML form adds above its params: a component's table, or a list of them.
_TABLE_LEVELS: Final = dict.fromkeys(COMPONENT_KINDS, 1) | {"metrics": 2, "callbacks": 2}
#: The experiment's lists of components, by field, and the kind of each.
LIST_KINDS: Final[dict[str, Kind]] = {"metrics": "metric", "callbacks": "callback"}
_ALL_KEYS: Final = (*COMPONENT_KINDS, *_SCALAR_KEYS, *LIST_KINDS, LR)


def with_settings(
    experiment: Experiment,
    settings: Mapping[str, Any],
    *,
    caller: str,
    target: str | Sequence[str] | None = None,
) -> Experiment:
    """``experiment`` with the keyword ``settings`` of ``caller`` (``"train()"``) set; a key that is
    not a field of :class:`Experiment` is refused, naming the caller. As on the command line, ``lr``
    sets the optimizer's learning rate, and a component given as a table without a name
    (``optimizer={"lr": 0.1}``) keeps the experiment's component and sets those params.

    ``dataset`` may be data held in memory, ``target`` naming a DataFrame's target column(s);
    ``validation`` and ``test`` may be data too (``(X_val, y_val)``), held-out rows of that data."""
    fields = attrs.fields_dict(Experiment)
    unknown = sorted(set(settings) - set(fields) - {LR})
    if unknown:
        raise ValidationError(
            [
                f"{caller} got an unknown setting {key!r}{experiment.key_hint(key, form='keyword')}"
                for key in unknown
            ]
        )
    shortcut = {key: settings[key] for key in (LR,) if key in settings}
    settings = {key: value for key, value in settings.items() if key != LR}
    held = {part: settings.pop(part) for part in ("validation", "test") if _is_data(settings.get(part))}
    if held or target is not None:
        dataset = settings.get("dataset", experiment.dataset)
        if isinstance(dataset, str | Mapping) or (isinstance(dataset, Component) and dataset.data is None):
            name = dataset if isinstance(dataset, str) else Component.of(dataset).name
            given = [f"{part}=(X, y)" for part in held] + (
                [f"target={target!r}"] if target is not None else []
            )
            raise ValidationError(
                [
                    f"{caller}: {' and '.join(given)} go with data held in memory (dataset=(X, y) or a "
                    f"DataFrame); dataset {name!r} is not: "
                    + (
                        "give validation and test as fractions of its rows"
                        if held
                        else "name its target in its params"
                    )
                ]
            )
        settings["dataset"] = memory_dataset(dataset, target=target, **held)
    for kind in COMPONENT_KINDS:
        value = settings.get(kind)
        if isinstance(value, Mapping) and "name" not in value:
            settings[kind] = Component.of(value, current=getattr(experiment, kind))
    changed = attrs.evolve(experiment, **settings)
    brought = [
        part for part in ("validation", "test") if getattr(changed.dataset.data, part, None) is not None
    ]
    fractions = [part for part in ("validation", "test") if part not in brought and getattr(changed, part)]
    if brought and fractions:
        raise ValidationError(
            [
                f"{caller}: {fractions[0]} = {getattr(changed, fractions[0])!r} is a fraction of the rows, but "
                f"the {brought[0]} rows are given as data: give {fractions[0]}=(X_{fractions[0]}, "
                f"y_{fractions[0]}) as data too"
            ]
        )
    return changed.with_value("optimizer.lr", shortcut[LR]) if shortcut else changed


def _is_data(value: object) -> bool:
    """Whether a ``validation``/``test`` setting is data (a pair of arrays, a DataFrame) rather than
    a fraction (a number; a string or ``None`` is refused as one, with the fraction's message)."""
    return not isinstance(value, int | float | str | type(None))


def _component_kind(kind: str) -> Kind:
    if kind not in COMPONENT_KINDS:
        raise ValidationError([f"unknown setting {kind!r}{suggest(kind, _ALL_KEYS)}"])
    return kind


def parse_assignments(assignments: Iterable[str]) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` strings as ``(key, value)`` pairs, each value read by :func:`parse_value`. A
    value that opens a list, table or string and does not close it (``[16,``: the shell cut
    ``model.hidden=[16, 16]`` at its space) is refused, saying how to write it (:func:`cut_short`)."""
    pairs = []
    for assignment in assignments:
        key, eq, text = assignment.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key:
            raise ValidationError([f"--set needs KEY=VALUE, got {assignment!r}"])
        problem = cut_short(f"--set {key}", text)
        if problem is not None:
            raise ValidationError([problem])
        pairs.append((key, parse_value(text, where=f"--set {key}")))
    return pairs


def cut_short(where: str, text: str, rest: str | None = None) -> str | None:
    """Why ``text`` (the value ``where`` names, ``--set model.hidden``) is not a whole value: it
    opens a TOML list, table or string without closing it. ``None`` if it is whole, or plain text.
    ``rest``, the next word of the command line, is named as the part the shell cut off where it
    completes the value."""
    if not text or text[0] not in "[{\"'" or _is_toml(text):
        return None
    flag, _, key = where.partition(" ")
    if rest is not None and _is_toml(f"{text} {rest}"):
        return (
            f"{where}={text}: the shell split the value at a space (the rest, {rest!r}, went on as another "
            f"word); quote it, {flag} '{key}={text} {rest}', or leave out the space: {flag} {key}={text}{rest}"
        )
    return (
        f"{where}={text}: {text!r} opens a list, table or string it does not close; close it (a list is "
        f"written [1, 2]) and quote a value that holds spaces: {flag} '{key}=...'"
    )


def _is_toml(text: str) -> bool:
    try:
        tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return False
    except RecursionError:  # whole, but nested too deep: parse_value says so
        return True
    return True


def parse_value(text: str, *, where: str = "value") -> Any:
    """Read a TOML value (number, bool, list, quoted string); anything else is a plain string. A
    value nested more than :data:`mlbasics.core.specs.MAX_NESTING` deep is refused, naming ``where``."""
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:
        raise ValidationError([f"{where}: {_TOO_DEEP}"]) from None
    if nested_too_deeply(value):
        raise ValidationError([f"{where}: {_TOO_DEEP}"])
    return value
