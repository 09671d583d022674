"""The registry: list, look up and build components by kind and name.

Params are validated against the spec before the factory runs, and every problem of one build is
reported together, one line each, naming the component and the param, with a "did you mean"
suggestion for misspelt names.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Final

from mlbasics.core.plugins import PluginRecord, PluginSet, PluginSettings, builtins_info
from mlbasics.core.specs import KINDS, MAX_NESTING, PLURALS, TASKS, ComponentSpec, Kind, nested_too_deeply
from mlbasics.errors import (
    ComponentBuildError,
    MlbasicsError,
    PluginBugError,
    PluginError,
    UnknownComponentError,
    ValidationError,
    caused_by_params,
    is_out_of_memory,
    one_line,
)

#: Keys of a model's table that are not declared params: the sizes the model maps between.
MODEL_SIZE_PARAMS: Final = ("in_features", "out_features")


def suggest(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'mlp'?"`` if ``word`` looks like a misspelling of a candidate, else ``""``.
    Case does not count as a misspelling: ``MLP`` and ``SGD`` suggest ``mlp`` and ``sgd``."""
    names = list(candidates)
    same = [name for name in names if name.lower() == word.lower()]
    if same:
        matches = same
    else:
        by_folded: dict[str, list[str]] = {}
        for name in names:
            by_folded.setdefault(name.lower(), []).append(name)
        close = difflib.get_close_matches(word.lower(), list(by_folded), n=3, cutoff=0.6)
        matches = [name for folded in close for name in by_folded[folded]][:3]
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"


def normalize_kind(kind: str) -> Kind:
    """Accept ``model``, ``models`` or ``Models``; raise for anything else."""
    word = kind.strip().lower()
    singular = _SINGULAR.get(word, word)
    if singular in KINDS:
        return singular
    raise ValidationError(
        [f"unknown component kind {kind!r}{suggest(singular, KINDS)}; kinds: {', '.join(KINDS)}"]
    )


_SINGULAR: Final = {plural: kind for kind, plural in PLURALS.items()}


class Registry:
    """Components collected from a set of plugins.

    ``Registry()`` loads the installed plugins (entry points) and the plugin files of
    ``MLBASICS_PLUGINS_DIR``, honouring the ``MLBASICS_*`` environment variables;
    ``Registry.isolated(plugin, ...)`` loads only what it is given. Specs are collected lazily, on
    first use.
    """

    def __init__(self, plugins: PluginSet | None = None) -> None:
        self.plugins = plugins if plugins is not None else PluginSet(PluginSettings.from_env())
        self._index: dict[tuple[Kind, str], ComponentSpec] | None = None
        self._conflicts: dict[tuple[Kind, str], list[ComponentSpec]] = {}
        self._all: list[ComponentSpec] = []

    @classmethod
    def isolated(cls, *plugins: object, builtins: bool = True, strict: bool = True) -> Registry:
        """A registry that loads no installed plugins: only the built-ins (unless ``builtins=False``)
        and the ``plugins`` given. Strict by default, so a broken test plugin fails loudly."""
        registry = cls(PluginSet(PluginSettings(entry_points=False, strict=strict)))
        if builtins:
            from mlbasics import builtin

            registry.plugins.add(builtin, info=builtins_info())  # with its real distribution and version
        for plugin in plugins:
            registry.add_plugin(plugin)
        return registry

    def add_plugin(self, plugin: object, name: str | None = None) -> PluginRecord:
        """Register one more plugin (a module or an object with hook implementations)."""
        record = self.plugins.add(plugin, name)
        self._index = None
        return record

    def add_plugin_path(self, path: str | os.PathLike[str]) -> list[PluginRecord]:
        """Load a plugin file, or the plugin files in a folder, as ``--plugins-dir`` does: e.g.
        ``default_registry().add_plugin_path("my_model.py")`` in a notebook. Returns their records.
        Adding a file again after editing it loads it again: its components replace the old ones."""
        records = self.plugins.load_path(path)
        self._index = None
        return records

    # -- looking things up ---------------------------------------------------------------------

    @property
    def records(self) -> list[PluginRecord]:
        """Every plugin seen, with its status; collecting components first, so hook failures show."""
        self._load()
        return self.plugins.records

    def specs(
        self,
        kind: str | None = None,
        pattern: str = "*",
        *,
        plugin: str | None = None,
        task: str | None = None,
    ) -> list[ComponentSpec]:
        """All specs (conflicting ones included), sorted by kind then name, optionally filtered by
        kind, a glob ``pattern`` on the name, the name of the ``plugin`` that provides them (as
        ``mlbasics plugins`` shows it: an installed plugin's entry-point name), and the ``task``
        they serve (``"regression"`` or ``"classification"``). A ``plugin`` that names no plugin of
        this registry raises :class:`mlbasics.ValidationError` rather than matching nothing; an
        installed plugin's module name (``"mlbasics_torch_optim"``, what an isolated registry named
        it by before 0.2) still finds it, with a ``DeprecationWarning`` naming the plugin's name,
        until mlbasics 0.3."""
        self._load()
        if plugin is not None:
            plugin = self._plugin_name(plugin)
        wanted = normalize_kind(kind) if kind is not None else None
        if task is not None and task not in TASKS:
            raise ValidationError([f"unknown task {task!r}{suggest(task, TASKS)}; tasks: {', '.join(TASKS)}"])
        return sorted(
            (
                s
                for s in self._all
                if (wanted is None or s.kind == wanted)
                and fnmatch.fnmatchcase(s.name, pattern)
                and (plugin is None or (s.plugin is not None and s.plugin.name == plugin))
                and (task is None or s.serves(task))
            ),
            key=lambda s: (KINDS.index(s.kind), s.name, s.plugin.name if s.plugin else ""),
        )

    def _plugin_name(self, name: str) -> str:
        """The name of the plugin ``name`` means: itself, or (deprecated) the plugin whose module it
        is; a name no plugin has is one line, with the names there are."""
        records = self.plugins.records
        names = list(dict.fromkeys(record.name for record in records))
        if name in names:
            return name
        by_module = {
            record.info.module.partition(":")[0]: record.name for record in records if record.info.module
        }
        if name in by_module:
            new = by_module[name]
            warnings.warn(
                f"specs(plugin={name!r}): {name!r} is the module of plugin {new!r}, which is named after "
                f"its entry point; use specs(plugin={new!r}) (a module's name stops working in mlbasics 0.3)",
                DeprecationWarning,
                stacklevel=3,
            )
            return new
        hint = suggest(name, names) or suggest(name, by_module)
        raise ValidationError(
            [
                f"specs(plugin={name!r}): no plugin is named {name!r}{hint} (plugins: {', '.join(names) or 'none'})"
            ]
        )

    def names(self, kind: str) -> list[str]:
        index = self._load()
        wanted = normalize_kind(kind)
        return sorted({name for k, name in [*index, *self._conflicts] if k == wanted})

    def get(self, kind: str, name: str) -> ComponentSpec:
        """The spec for ``name``; raises with a suggestion if it is unknown, conflicting or unavailable."""
        spec_kind = normalize_kind(kind)
        index = self._load()
        spec = index.get((spec_kind, name))
        if spec is None:
            if (spec_kind, name) in self._conflicts:
                raise PluginError(self._conflict_message(spec_kind, name))
            raise UnknownComponentError([self._unknown_message(spec_kind, name)])
        missing = spec.missing_requirements()
        if missing:
            hint = f"; {spec.install_hint}" if spec.install_hint else ""
            raise PluginError(
                f"{spec_kind} {name!r} from plugin {spec.plugin} is unavailable: "
                f"needs {', '.join(missing)}{hint}"
            )
        return spec

    def status(self, spec: ComponentSpec) -> str:
        """``available``; ``overridden`` (another plugin's spec replaces it); ``conflict`` (another
        plugin provides the same name); or ``unavailable: needs X`` (a requirement is missing)."""
        index = self._load()
        key = (spec.kind, spec.name)
        if key in self._conflicts:
            return "conflict"
        if index.get(key) is not spec:
            return "overridden"
        missing = spec.missing_requirements()
        if missing:
            hint = f" ({spec.install_hint})" if spec.install_hint else ""
            return f"unavailable: needs {', '.join(missing)}{hint}"
        return "available"

    def conflicts(self, plugin: str) -> list[str]:
        """The components of active plugin ``plugin`` that another plugin also provides (neither
        overriding), each as ``"model 'mlp' (also from builtins)"``: names no one can use until
        one of the plugins is disabled."""
        self._load()
        found = []
        for (kind, name), specs in self._conflicts.items():
            providers = [s.plugin.name for s in specs if s.plugin is not None]
            if plugin in providers:
                others = ", ".join(p for p in providers if p != plugin)
                found.append(f"{kind} {name!r} (also from {others})")
        return found

    def _unknown_message(self, kind: Kind, name: str) -> str:
        allow_problem = self.plugins.allow_list_problem()
        if allow_problem is not None:
            return f"{allow_problem}, so {kind} {name!r} is unknown"
        known = self.names(kind)
        hint = suggest(name, known)
        if not hint:
            hint = f"; available: {', '.join(known)}" if 0 < len(known) <= 12 else ""
        failed = [r.name for r in self.plugins.records if r.status == "failed"]
        if failed:
            hint += f" (plugin{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed to load: see `mlbasics plugins`)"
        return f"unknown {kind} {name!r}{hint}"

    def _conflict_message(self, kind: Kind, name: str) -> str:
        providers = " and ".join(str(s.plugin) for s in self._conflicts[(kind, name)])
        return (
            f"{kind} {name!r} is provided by both {providers}; disable one with "
            f"MLBASICS_DISABLE_PLUGINS, or have one declare overrides=True"
        )

    def _load(self) -> dict[tuple[Kind, str], ComponentSpec]:
        if self._index is not None:
            return self._index
        self._all = self.plugins.collect()
        by_key: dict[tuple[Kind, str], list[ComponentSpec]] = {}
        for spec in self._all:
            by_key.setdefault((spec.kind, spec.name), []).append(spec)
        index: dict[tuple[Kind, str], ComponentSpec] = {}
        self._conflicts = {}
        for key, specs in by_key.items():
            overriding = [s for s in specs if s.overrides]
            if len(specs) == 1:
                index[key] = specs[0]
            elif len(overriding) == 1:
                index[key] = overriding[0]
            else:
                self._conflicts[key] = specs
                if self.plugins.settings.strict:
                    raise PluginError(self._conflict_message(*key))
        self._index = index
        return index

    # -- validating and building ---------------------------------------------------------------

    def resolve(
        self, kind: str, name: str, params: Mapping[str, Any] | None = None
    ) -> tuple[ComponentSpec, dict[str, Any]]:
        """Validate ``params`` for component ``name``; return its spec and the complete params
        (defaults filled in, values coerced). Raises :class:`ValidationError` listing every problem."""
        spec = self.get(kind, name)
        values, problems = self._check_params(spec, dict(params or {}))
        if problems:
            raise ValidationError(problems)
        return spec, values

    def check(self, kind: str, name: str, params: Mapping[str, Any] | None = None) -> list[str]:
        """Every problem with building ``name`` from ``params``, as lines; empty if it would build."""
        try:
            self.resolve(kind, name, params)
        except ValidationError as exc:
            return list(exc.problems)
        except PluginError as exc:
            return [str(exc)]
        return []

    def build(self, kind: str, name: str, /, *args: Any, **params: Any) -> Any:
        """Build component ``name`` of ``kind`` from ``params``.

        Positional ``args`` go to the factory first (an optimizer's model parameters). Models also
        take ``in_features`` (required) and ``out_features`` (default 1).
        """
        spec, values = self.resolve(kind, name, params)
        return self.instantiate(spec, values, *args)

    def instantiate(self, spec: ComponentSpec, values: Mapping[str, Any], /, *args: Any) -> Any:
        """Call ``spec``'s factory with params already checked by :meth:`resolve`. A param naming
        another component reaches the factory as a zero-argument builder of that component.

        What the factory raises becomes one line naming the component and its plugin:
        :class:`mlbasics.ComponentBuildError` if the params caused it, :class:`mlbasics.PluginBugError`
        if the plugin did (the rule: :func:`mlbasics.errors.caused_by_params`)."""
        kwargs = {
            key: functools.partial(self.build, param.component, value)
            if (param := spec.param(key)) is not None and param.component is not None and value is not None
            else value
            for key, value in values.items()
        }
        try:
            return spec.load_factory()(*args, **kwargs)
        except (MlbasicsError, PluginBugError, KeyboardInterrupt):
            raise  # already one clear line (a nested component's, or the factory's own)
        except BaseException as exc:  # a plugin's sys.exit() must not end the process either
            raise build_error(spec, values, exc) from exc

    def _check_params(self, spec: ComponentSpec, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        where = f"{spec.kind} {spec.name!r}"
        problems: list[str] = []
        values: dict[str, Any] = {}
        if spec.kind == "model":
            for size in MODEL_SIZE_PARAMS:
                value = params.pop(size, 1 if size == "out_features" else None)
                if value is None:
                    problems.append(f"{where}: {size} is required (the number of input features)")
                elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    problems.append(f"{where}: {size} must be an integer >= 1, got {value!r}")
                else:
                    values[size] = value
        declared = {p.name: p for p in spec.params}
        for key in params:
            if key not in declared:
                known = list(declared) + (list(MODEL_SIZE_PARAMS) if spec.kind == "model" else [])
                hint = suggest(key, known) or (
                    f"; it takes: {', '.join(known)}" if known else "; it takes no params"
                )
                problems.append(f"{where}: unknown param {key!r}{hint}")
        for param in spec.params:
            if param.name not in params:
                if param.required:
                    problems.append(f"{where}: param {param.name!r} is required")
                    continue
                value = param.default
            elif nested_too_deeply(params[param.name]):
                problems.append(
                    f"{where}: param {param.name!r} is nested more than {MAX_NESTING} levels deep"
                )
                continue
            else:
                try:
                    value = param.coerce(params[param.name])
                except ValueError as exc:
                    problems.append(f"{where}: param {param.name!r} {exc}")
                    continue
            if param.component is not None and value is not None:
                nested = self.check(param.component, value)
                if nested:
                    problems.extend(f"{where}: param {param.name!r}: {line}" for line in nested)
                    continue
            values[param.name] = value
        return values, problems


def shown_params(params: Mapping[str, Any]) -> str:
    """Params as a message shows them, without a model's sizes (the data set those):
    ``hidden=[3], activation='relu'``."""
    return ", ".join(f"{k}={v!r}" for k, v in params.items() if k not in MODEL_SIZE_PARAMS)


def build_error(spec: ComponentSpec, values: Mapping[str, Any], exc: BaseException) -> Exception:
    """The one-line error for ``exc``, raised by ``spec``'s factory building from ``values``:
    :class:`ComponentBuildError` when the params caused it, else :class:`PluginBugError`
    (see :func:`mlbasics.errors.caused_by_params`)."""
    where = f"{spec.kind} {spec.name!r} from plugin {spec.plugin or '?'}"
    if is_out_of_memory(exc):
        given = shown_params(values)
        with_params = f" with {given}" if given else ""
        return ComponentBuildError(
            f"{where} ran out of memory being built{with_params}; choose smaller sizes ({one_line(exc)})",
            error=exc,
        )
    if isinstance(exc, TypeError) and exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
        # Raised by the call itself, before the factory ran: its signature does not take the params
        # it declares, which no value a user gives can fix.
        return PluginBugError(
            f"{where} cannot be called with its declared params, a bug in the plugin: {one_line(exc)}",
            error=exc,
        )
    if caused_by_params(exc):
        return ComponentBuildError(f"{where} refused its params: {one_line(exc)}", error=exc)
    return PluginBugError(
        f"{where} failed while being built, a bug in the plugin rather than in the input: {one_line(exc)}",
        error=exc,
    )


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry of installed plugins, created on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reset_default_registry() -> None:
    """Forget the process-wide registry, so the next use re-reads plugins and environment."""
    global _default
    _default = None


def set_default_registry(registry: Registry) -> None:
    """Make ``registry`` the process-wide one (what ``mlbasics --plugins-dir`` does)."""
    global _default
    _default = registry
