"""Finding plugins, loading them, and keeping a broken one from taking the others down.

Plugins are found through the ``mlbasics`` entry-point group (the built-in components arrive the same
way), loaded from plain ``.py`` files (:mod:`mlbasics.core.plugin_files`), or registered directly with
:meth:`PluginSet.add`. Each plugin is loaded, registered with pluggy and asked for its components on
its own: whatever goes wrong is recorded against that plugin (shown by ``mlbasics plugins``) and the
rest carry on. That includes ``sys.exit()`` and any other ``BaseException`` a plugin raises while it
is imported or asked for its components; only ``KeyboardInterrupt`` (Ctrl-C) goes through. ``MLBASICS_STRICT_PLUGINS=1`` turns such failures into errors, which is what a plugin
author wants while developing one.

Environment variables (read by :meth:`PluginSettings.from_env`):

``MLBASICS_PLUGINS=a,b``
    load only these plugins (set but empty: load none).
``MLBASICS_DISABLE_PLUGINS=a,b``
    load all plugins but these (the built-ins are called ``builtins``).
``MLBASICS_STRICT_PLUGINS=1``
    raise :class:`mlbasics.PluginError` instead of isolating a broken plugin.
``MLBASICS_PLUGINS_DIR=path:path``
    also load the ``.py`` files named (or found in the folders named), separated by ``os.pathsep``;
    the command line's ``--plugins-dir`` adds to these.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import sys
import traceback
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import pluggy

from mlbasics.core import hookspecs, plugin_files
from mlbasics.core.specs import ComponentSpec, PluginInfo
from mlbasics.errors import PluginError, one_line

ENTRY_POINT_GROUP = "mlbasics"
BUILTINS = "builtins"  # the plugin name of the built-in components
PATHS_VARIABLE = "MLBASICS_PLUGINS_DIR"
# Every environment variable that changes which plugins load (what a test clears to start clean).
ENV_VARIABLES = ("MLBASICS_PLUGINS", "MLBASICS_DISABLE_PLUGINS", "MLBASICS_STRICT_PLUGINS", PATHS_VARIABLE)

Status = Literal["active", "disabled", "failed"]


@attrs.frozen(kw_only=True)
class PluginRecord:
    """What happened to one plugin: active, disabled by the settings, or failed (and why)."""

    info: PluginInfo
    status: Status
    error: str | None = None
    details: str | None = attrs.field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.info.name


def _names(value: str) -> frozenset[str]:
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _to_paths(values: Iterable[str | os.PathLike[str]]) -> tuple[Path, ...]:
    return tuple(Path(value) for value in values)


@attrs.frozen(kw_only=True)
class PluginSettings:
    """Which plugins to load, and whether a broken one is an error.

    ``paths`` are plugin files, or folders of them, loaded after the installed plugins.
    """

    allow: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    strict: bool = False
    entry_points: bool = True
    paths: tuple[Path, ...] = attrs.field(default=(), converter=_to_paths)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        paths: Iterable[str | os.PathLike[str]] = (),
    ) -> PluginSettings:
        """Settings from the ``MLBASICS_*`` variables; ``paths`` come before ``MLBASICS_PLUGINS_DIR``'s."""
        env = os.environ if environ is None else environ
        allow = env.get("MLBASICS_PLUGINS")
        return cls(
            allow=None if allow is None else _names(allow),
            deny=_names(env.get("MLBASICS_DISABLE_PLUGINS", "")),
            strict=_truthy(env.get("MLBASICS_STRICT_PLUGINS")),
            paths=[*paths, *plugin_files.split_paths(env.get(PATHS_VARIABLE, ""))],
        )

    def blocks(self, name: str) -> str | None:
        """Why the settings keep plugin ``name`` out, or ``None`` if they let it in."""
        if name in self.deny:
            return "disabled by MLBASICS_DISABLE_PLUGINS"
        if self.allow is not None and name not in self.allow:
            return "not listed in MLBASICS_PLUGINS"
        return None


def builtins_info() -> PluginInfo:
    """The provenance of the built-in components, as their entry point gives it (distribution
    ``mlbasics`` and its version), for registries that add them directly."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=BUILTINS):
        if ep.dist is not None:
            return PluginInfo(
                name=BUILTINS, distribution=ep.dist.name, version=ep.dist.version, module=ep.value
            )
    from mlbasics._version import __version__  # run from a source tree that is not installed

    return PluginInfo(name=BUILTINS, distribution="mlbasics", version=__version__, module="mlbasics.builtin")


class PluginSet:
    """The plugins of one registry: a pluggy manager plus a record of every plugin seen."""

    def __init__(self, settings: PluginSettings | None = None) -> None:
        self.settings = settings or PluginSettings()
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._records: dict[str, PluginRecord] = {}
        self._loaded_paths: set[Path] = set()
        #: Each loaded plugin file's own record, and a hash of its bytes when it was loaded.
        self._file_records: dict[Path, PluginRecord] = {}
        self._file_stamps: dict[Path, str] = {}
        if self.settings.entry_points:
            self.load_entry_points()
        for path in self.settings.paths:
            self.load_path(path)

    @property
    def records(self) -> list[PluginRecord]:
        """Every plugin seen, in the order it was found."""
        return list(self._records.values())

    def allow_list_problem(self) -> str | None:
        """What is wrong with ``MLBASICS_PLUGINS``, if it is set: empty (nothing loads), or naming
        plugins that are not found (a typo, or a plugin not installed here); ``None`` if it is fine."""
        allow = self.settings.allow
        if allow is None:
            return None
        found = list(dict.fromkeys(record.name for record in self._records.values()))
        if not allow:
            return "MLBASICS_PLUGINS is set but empty, which loads no plugin"
        unmatched = sorted(allow - set(found))
        if not unmatched:
            return None
        names = ", ".join(repr(name) for name in unmatched)
        which = (
            "which is not an installed plugin" if len(unmatched) == 1 else "which are not installed plugins"
        )
        return f"MLBASICS_PLUGINS names {names}, {which} (installed: {', '.join(found) or 'none'})"

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load and register every plugin installed under the entry-point ``group``."""
        for ep in importlib.metadata.entry_points(group=group):
            info = _entry_point_info(ep)
            if self._blocked(info):
                continue
            try:
                plugin = ep.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # sys.exit() in a plugin is that plugin's failure
                self._fail(info, exc, context="import failed")
                continue
            self._register(plugin, info)

    def load_path(self, path: str | os.PathLike[str]) -> list[PluginRecord]:
        """Load a plugin file, or every plugin file in a folder (see :mod:`mlbasics.core.plugin_files`).

        Each file is a plugin named after it, isolated like any other: a file that fails to run is
        recorded as failed. A path that does not exist is recorded as a failed plugin named after
        the path. Returns the records of the files it names. A file already loaded is loaded again
        if it changed since (edited in a notebook: its components replace the old ones), and
        otherwise not (its record is returned as it is).
        """
        path = Path(path)
        try:
            files = plugin_files.plugin_files(path)
        except (OSError, ValueError) as exc:
            # Named after the path as given, so `mlbasics plugins` shows which one is wrong.
            problem = plugin_files.path_problem(path) or one_line(exc)
            return [self._fail(PluginInfo(name=str(path)), exc, context="path", error=problem)]
        records = []
        for file in files:
            resolved = file.resolve()
            if resolved in self._loaded_paths:
                previous = self._file_records.get(resolved)
                if previous is None or self._file_stamps.get(resolved) == _file_stamp(resolved):
                    if previous is not None:
                        records.append(previous)
                    continue
                self._forget(previous)  # edited since it was loaded: load it again
            self._loaded_paths.add(resolved)
            self._file_stamps[resolved] = _file_stamp(resolved)
            info = PluginInfo(name=plugin_files.plugin_name(file), path=str(file))
            # Checked before the file runs: a disabled or clashing file executes nothing.
            record = self._blocked(info) or self._taken(info)
            if record is None:
                try:
                    module = plugin_files.load_file(file)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # sys.exit() in a plugin is that plugin's failure
                    record = self._fail(info, exc, context="import failed")
                else:
                    record = self._register(module, info)
            if record.info == info:  # its own record, not the one of a plugin that holds the name
                self._file_records[resolved] = record
            records.append(record)
        return records

    def _forget(self, record: PluginRecord) -> None:
        """Unregister the plugin of ``record`` and drop its record, so its file can load again."""
        if self._records.get(record.name) is record and self._pm.has_plugin(record.name):
            self._pm.unregister(name=record.name)
        for key in [key for key, kept in self._records.items() if kept is record]:
            del self._records[key]

    def add(self, plugin: object, name: str | None = None, *, info: PluginInfo | None = None) -> PluginRecord:
        """Register ``plugin`` (a module or object with hook implementations) directly.

        A module that is installed as a plugin (the target of an entry point in the ``mlbasics``
        group) is named after its entry point and carries its distribution and version, as when it
        is loaded as installed; any other plugin is named after its module (``__name__``), unless
        ``name`` is given. Returns its record; check ``record.status`` (or use strict settings) to
        see if it took.
        """
        if info is None:
            module = getattr(plugin, "__name__", None)
            installed = _installed_plugin(module) if isinstance(plugin, types.ModuleType) else None
            if installed is not None:
                info = attrs.evolve(installed, name=name or installed.name)
            else:
                info = PluginInfo(name=name or module or type(plugin).__name__, module=module)
        return self._blocked(info) or self._register(plugin, info)

    def _blocked(self, info: PluginInfo) -> PluginRecord | None:
        """Record ``info`` as disabled if the settings keep it out, and return that record."""
        reason = self.settings.blocks(info.name)
        if reason is None:
            return None
        record = PluginRecord(info=info, status="disabled", error=reason)
        self._records[info.name] = record
        return record

    def _taken(self, info: PluginInfo) -> PluginRecord | None:
        """Record ``info`` as failed if another plugin already has its name, and return that record."""
        if info.name not in self._records:
            return None
        previous = self._records[info.name].info
        exc = ValueError(f"plugin name {info.name!r} is already taken by {previous}")
        key = f"{info.name} [{info.distribution or info.path}]"
        return self._fail(info, exc, context="not registered", key=key)

    def _register(self, plugin: object, info: PluginInfo) -> PluginRecord:
        taken = self._taken(info)
        if taken is not None:
            return taken
        try:
            self._pm.register(plugin, name=info.name)
            self._pm.check_pending()  # catches misspelt hook names such as `mlbasics_model`
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # sys.exit() in a plugin is that plugin's failure
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            return self._fail(info, exc, context="invalid hooks")
        record = PluginRecord(info=info, status="active")
        self._records[info.name] = record
        return record

    def _fail(
        self,
        info: PluginInfo,
        exc: BaseException,
        *,
        context: str,
        key: str | None = None,
        error: str | None = None,
    ) -> PluginRecord:
        """Record ``info`` as failed because of ``exc`` (raise instead, if strict); ``error`` replaces
        the default one-line reason ``"{context}: {exception}"``."""
        error = error or f"{context}: {one_line(exc)}"
        if self.settings.strict:
            raise PluginError(f"plugin {info}: {error}") from exc
        details = "".join(traceback.format_exception(exc))
        record = PluginRecord(info=info, status="failed", error=error, details=details)
        self._records[key or info.name] = record
        return record

    def collect(self) -> list[ComponentSpec]:
        """Ask every active plugin for its components, with provenance attached.

        Each implementation is called on its own (not through one pluggy hook call) so that one
        plugin raising or returning garbage fails only that plugin; all of a failed plugin's
        components are dropped, so a half-working plugin never shadows anything.
        """
        collected: dict[str, list[ComponentSpec]] = {}
        for kind, hook_name in hookspecs.HOOK_FOR_KIND.items():
            caller = getattr(self._pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                record = self._records.get(impl.plugin_name)
                if record is None or record.status != "active":
                    continue
                try:
                    specs = _checked_specs(impl.function(), kind=kind, hook=hook_name)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # sys.exit() in a plugin is that plugin's failure
                    self._pm.unregister(name=impl.plugin_name)
                    self._fail(record.info, exc, context=f"hook {hook_name} failed")
                    collected.pop(impl.plugin_name, None)
                    continue
                provenance = record.info
                collected.setdefault(impl.plugin_name, []).extend(
                    attrs.evolve(spec, plugin=provenance) for spec in specs
                )
        return [
            spec
            for name, specs in collected.items()
            if self._records[name].status == "active"
            for spec in specs
        ]


def _file_stamp(file: Path) -> str:
    """What tells that a plugin file changed: a hash of its bytes (its modification time may not
    move for an edit made within the file system's time resolution)."""
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return ""


def _checked_specs(result: Any, *, kind: str, hook: str) -> list[ComponentSpec]:
    if result is None:
        return []
    if isinstance(result, str | bytes | Mapping) or not isinstance(result, Iterable):
        raise TypeError(f"{hook} must return an iterable of ComponentSpec, got {type(result).__name__}")
    specs = list(result)
    for spec in specs:
        if not isinstance(spec, ComponentSpec):
            raise TypeError(f"{hook} returned {type(spec).__name__} {spec!r:.60}, expected ComponentSpec")
        if spec.kind != kind:
            raise TypeError(
                f"{hook} returned {spec.kind} {spec.name!r}; it may only return specs of kind {kind!r}"
            )
    return specs


def _installed_plugin(module: str | None) -> PluginInfo | None:
    """The plugin installed with ``module`` as its entry point's target, or ``None``."""
    return _installed_plugins(tuple(map(_path_state, sys.path))).get(module or "")


def _path_state(entry: str) -> tuple[str, int]:
    """A sys.path entry and its folder's modification time, which changes when a distribution is
    installed into it or removed (importlib.metadata's own caches go by the same)."""
    try:
        return entry, os.stat(entry or ".").st_mtime_ns
    except OSError:
        return entry, -1


@functools.lru_cache(maxsize=4)
def _entry_point_info(ep: importlib.metadata.EntryPoint) -> PluginInfo:
    """The plugin an installed entry point names: its name, distribution, version and module."""
    dist = ep.dist
    return PluginInfo(
        name=ep.name,
        distribution=dist.name if dist else None,
        version=dist.version if dist else None,
        module=ep.value,
    )


def _installed_plugins(path: tuple[tuple[str, int], ...]) -> dict[str, PluginInfo]:
    """Entry-point target module -> its plugin's info, for what is installed on ``path`` (the cache
    key: what importlib.metadata searches, as it stands; reading every distribution's metadata
    takes milliseconds, and an isolated registry is made for many a test)."""
    found: dict[str, PluginInfo] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.value, _entry_point_info(ep))
    return found
