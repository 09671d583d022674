"""Finding plugins through entry points, and keeping a broken one from taking the others down."""

from __future__ import annotations

import importlib

import pytest

from mlbasics import PluginError, PluginSettings, Registry, UnknownComponentError
from mlbasics.core.plugins import PluginSet
from tests.conftest import FakeSite, plugin_source


def _registry(**settings: object) -> Registry:
    return Registry(PluginSet(PluginSettings(**settings)))  # type: ignore[arg-type]


def test_builtins_arrive_through_the_entry_point_group() -> None:
    registry = _registry()
    builtins = next(r for r in registry.records if r.name == "builtins")
    assert builtins.status == "active"
    assert builtins.info.distribution == "mlbasics"
    assert builtins.info.module == "mlbasics.builtin"
    mlp = registry.get("model", "mlp")
    assert mlp.plugin is not None
    assert (mlp.plugin.name, mlp.plugin.distribution) == ("builtins", "mlbasics")


def test_an_installed_plugin_is_found_with_its_version(site: FakeSite) -> None:
    site.install(
        "mlbasics-softsign",
        version="2.3",
        entry_points={"softsign": "softsign_plugin"},
        modules={"softsign_plugin": plugin_source("softsign_plugin")},
    )
    registry = _registry()
    spec = registry.get("activation", "softsign")
    assert spec.plugin is not None
    assert (spec.plugin.name, spec.plugin.distribution, spec.plugin.version) == (
        "softsign",
        "mlbasics-softsign",
        "2.3",
    )
    assert registry.build("activation", "softsign").__class__.__name__ == "Softsign"
    assert registry.get("activation", "relu")  # the built-ins are still there


BROKEN_PLUGINS = {
    "import-error": (
        "import no_such_dependency_xyz\n",
        "import failed: ModuleNotFoundError: No module named 'no_such_dependency_xyz'",
    ),
    "raising-hook": (
        "from mlbasics import hookimpl\n@hookimpl\ndef mlbasics_models():\n    raise RuntimeError('boom')\n",
        "hook mlbasics_models failed: RuntimeError: boom",
    ),
    "bad-return": (
        "from mlbasics import hookimpl\n@hookimpl\ndef mlbasics_losses():\n    return 42\n",
        "hook mlbasics_losses failed: TypeError: mlbasics_losses must return an iterable of ComponentSpec, got int",
    ),
    "bad-item": (
        "from mlbasics import hookimpl\n@hookimpl\ndef mlbasics_losses():\n    return ['mse']\n",
        "hook mlbasics_losses failed: TypeError: mlbasics_losses returned str 'mse', expected ComponentSpec",
    ),
    "wrong-kind": (
        "from mlbasics import ComponentSpec, hookimpl\n@hookimpl\ndef mlbasics_losses():\n"
        "    return [ComponentSpec(kind='model', name='m', factory='x:y', summary='s')]\n",
        "hook mlbasics_losses failed: TypeError: mlbasics_losses returned model 'm'; it may only return specs of kind 'loss'",
    ),
    "misspelt-hook": (
        "from mlbasics import hookimpl\n@hookimpl\ndef mlbasics_model():\n    return []\n",
        "invalid hooks: PluginValidationError: unknown hook 'mlbasics_model'",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PLUGINS))
def test_a_broken_plugin_is_isolated_and_reported(site: FakeSite, case: str) -> None:
    source, error = BROKEN_PLUGINS[case]
    site.install(
        "mlbasics-broken", entry_points={"broken": "broken_plugin"}, modules={"broken_plugin": source}
    )
    site.install(
        "mlbasics-softsign",
        entry_points={"softsign": "good_plugin"},
        modules={"good_plugin": plugin_source("good_plugin")},
    )
    registry = _registry()
    broken = next(r for r in registry.records if r.name == "broken")
    assert broken.status == "failed"
    assert broken.error is not None
    assert broken.error.startswith(error.split(":")[0])
    assert error.split(": ", 1)[1][:40] in broken.error
    assert broken.info.distribution == "mlbasics-broken"
    assert broken.details
    assert "Traceback" in broken.details
    assert registry.get("activation", "softsign")
    assert registry.get("model", "mlp")
    assert not [s for s in registry.specs() if s.plugin and s.plugin.name == "broken"]


def test_strict_mode_raises_for_a_broken_plugin(site: FakeSite) -> None:
    site.install(
        "mlbasics-broken",
        entry_points={"broken": "broken_plugin2"},
        modules={"broken_plugin2": "raise ImportError('needs a GPU driver')\n"},
    )
    with pytest.raises(
        PluginError,
        match=r"plugin broken \(mlbasics-broken 1.0\): import failed: ImportError: needs a GPU driver",
    ):
        _registry(strict=True)


def test_strict_mode_from_the_environment(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install(
        "mlbasics-broken", entry_points={"broken": "broken_plugin3"}, modules={"broken_plugin3": "1 / 0\n"}
    )
    monkeypatch.setenv("MLBASICS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="ZeroDivisionError"):
        Registry()


def test_a_failed_plugin_is_mentioned_when_a_name_is_unknown(site: FakeSite) -> None:
    site.install(
        "mlbasics-vision",
        entry_points={"vision": "vision_plugin"},
        modules={"vision_plugin": "import torchvision_not_here\n"},
    )
    with pytest.raises(UnknownComponentError, match=r"unknown model 'resnet'.*plugin vision failed to load"):
        _registry().get("model", "resnet")


def test_disabling_plugins_including_builtins(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install(
        "mlbasics-softsign",
        entry_points={"softsign": "softsign_plugin2"},
        modules={"softsign_plugin2": plugin_source("softsign_plugin2")},
    )
    monkeypatch.setenv("MLBASICS_DISABLE_PLUGINS", "builtins")
    # Only these two may load: other installed plugins (those under plugins/, in CI) would add theirs.
    monkeypatch.setenv("MLBASICS_PLUGINS", "builtins,softsign")
    registry = Registry()
    records = {r.name: r for r in registry.records}
    assert (records["builtins"].status, records["softsign"].status) == ("disabled", "active")
    assert records["builtins"].error == "disabled by MLBASICS_DISABLE_PLUGINS"
    assert [s.name for s in registry.specs()] == ["softsign"]
    with pytest.raises(UnknownComponentError):
        registry.get("model", "mlp")


def test_allow_list_loads_only_the_named_plugins(site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install(
        "mlbasics-softsign",
        entry_points={"softsign": "softsign_plugin3"},
        modules={"softsign_plugin3": plugin_source("softsign_plugin3")},
    )
    monkeypatch.setenv("MLBASICS_PLUGINS", "softsign")
    registry = Registry()
    builtins = next(r for r in registry.records if r.name == "builtins")
    assert builtins.status == "disabled"
    assert builtins.error == "not listed in MLBASICS_PLUGINS"
    assert [s.name for s in registry.specs()] == ["softsign"]


def test_empty_allow_list_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLBASICS_PLUGINS", "")
    assert Registry().specs() == []


def test_settings_from_environment() -> None:
    settings = PluginSettings.from_env(
        {"MLBASICS_PLUGINS": " a, b ,", "MLBASICS_DISABLE_PLUGINS": "c", "MLBASICS_STRICT_PLUGINS": "yes"}
    )
    assert settings.allow == {"a", "b"}
    assert settings.deny == {"c"}
    assert settings.strict
    assert PluginSettings.from_env({}).allow is None


def test_two_distributions_with_the_same_plugin_name(site: FakeSite) -> None:
    site.install(
        "mlbasics-one", entry_points={"extra": "extra_one"}, modules={"extra_one": plugin_source("extra_one")}
    )
    site.install("mlbasics-two", entry_points={"extra": "extra_two"}, modules={"extra_two": "X = 1\n"})
    registry = _registry()
    statuses = sorted((r.info.distribution, r.status) for r in registry.records if r.name == "extra")
    assert statuses == [("mlbasics-one", "active"), ("mlbasics-two", "failed")] or statuses == [
        ("mlbasics-one", "failed"),
        ("mlbasics-two", "active"),
    ]
    failed = next(r for r in registry.records if r.name == "extra" and r.status == "failed")
    assert failed.error is not None
    assert "already taken" in failed.error


def test_an_installed_module_given_to_an_isolated_registry_has_its_entry_point_name(site: FakeSite) -> None:
    """The name, distribution and version it has when loaded as installed, so ``specs(plugin=...)``
    takes the entry point's name either way; a module that is no entry point's target keeps its
    module name."""
    site.install(
        "mlbasics-softsign",
        version="2.3",
        entry_points={"softsign": "softsign_plugin4"},
        modules={
            "softsign_plugin4": plugin_source("softsign_plugin4"),
            "loose_plugin": plugin_source("loose"),
        },
    )
    registry = Registry.isolated(importlib.import_module("softsign_plugin4"), builtins=False)
    [spec] = registry.specs(plugin="softsign")
    assert spec.plugin is not None
    assert (spec.plugin.name, spec.plugin.distribution, spec.plugin.version) == (
        "softsign",
        "mlbasics-softsign",
        "2.3",
    )
    with pytest.warns(DeprecationWarning, match=r"use specs\(plugin='softsign'\)"):
        assert registry.specs(plugin="softsign_plugin4") == [spec]  # the module's name, until 0.3
    loose = Registry.isolated(importlib.import_module("loose_plugin"), builtins=False)
    assert [(r.info.name, r.info.distribution) for r in loose.records] == [("loose_plugin", None)]
