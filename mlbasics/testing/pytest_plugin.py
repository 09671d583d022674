"""An opt-in pytest plugin for testing code built on mlbasics, plugins above all.

It is not loaded automatically (mlbasics declares no ``pytest11`` entry point). Enable it with
``pytest -p mlbasics.testing.pytest_plugin``, or in the top-level ``conftest.py``::

    pytest_plugins = ["mlbasics.testing.pytest_plugin"]

It adds:

``--mlbasics-device NAME`` (or the ini option ``mlbasics_device``)
    the device the ``device`` fixture gives: ``cpu`` (the default), ``cuda``, ``cuda:N``, ``mps`` or
    ``auto``.
``device`` (session)
    that ``torch.device``; every test that uses it is skipped, with the reason, if the device is not
    available here.
``registry``
    a :class:`mlbasics.Registry` holding the built-in components only: no installed plugin is
    loaded, and a broken plugin added to it raises at once. While the test runs it is also what
    :func:`mlbasics.default_registry` returns, so ``mlbasics.train`` and ``mlbasics.build`` see it.
``empty_registry``
    the same, without the built-ins.
``register_plugin``
    ``register_plugin(plugin, name=None)`` adds a plugin (a module, an object with hook
    implementations, or a module's import name) to ``registry`` for this test only, collects its
    components at once (so a broken plugin fails right there) and returns the registry.
the ``cuda`` marker
    tests marked ``@pytest.mark.cuda`` are skipped, with the reason, where CUDA is not available.
Hypothesis profiles ``ci`` and ``dev``
    ``ci``: derandomised, no example database, no deadline, a reproduction blob printed for every
    failure; ``dev``: random exploration with the example database, no deadline. The profile is
    ``$MLBASICS_HYPOTHESIS_PROFILE`` if set, else ``ci`` if ``$CI`` is set (as CI services do),
    else ``dev``; Hypothesis's own ``--hypothesis-profile`` overrides it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping

import pytest
import torch
from hypothesis import settings
from hypothesis.errors import InvalidArgument

import mlbasics.core.registry
from mlbasics.core.registry import Registry
from mlbasics.devices import check_device_name
from mlbasics.errors import DeviceError

PROFILE_VARIABLE = "MLBASICS_HYPOTHESIS_PROFILE"
DEVICE_OPTION = "--mlbasics-device"

# Registered at import, before any test module applies @settings on top of the loaded profile.
# A profile of the same name that the project registered itself is left alone.
_PROFILES = {
    "ci": {"deadline": None, "derandomize": True, "database": None, "print_blob": True},
    "dev": {"deadline": None, "print_blob": True},
}
for _name, _values in _PROFILES.items():
    try:
        settings.get_profile(_name)
    except InvalidArgument:
        settings.register_profile(_name, **_values)  # type: ignore[arg-type]


def chosen_profile(environ: Mapping[str, str] | None = None) -> str:
    """The Hypothesis profile to load: ``$MLBASICS_HYPOTHESIS_PROFILE``, else ``ci`` where ``$CI``
    is set to anything but ``0``/``false``, else ``dev``."""
    env = os.environ if environ is None else environ
    explicit = env.get(PROFILE_VARIABLE, "").strip()
    if explicit:
        return explicit
    ci = env.get("CI", "").strip().lower()
    return "ci" if ci and ci not in {"0", "false", "no"} else "dev"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlbasics")
    group.addoption(
        DEVICE_OPTION,
        dest="mlbasics_device",
        default=None,
        metavar="NAME",
        help="device for the `device` fixture: cpu (default), cuda, cuda:N, mps or auto",
    )
    parser.addini("mlbasics_device", "default for --mlbasics-device", default="cpu")


def _device_name(config: pytest.Config) -> str:
    return str(config.getoption("mlbasics_device") or config.getini("mlbasics_device") or "cpu")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis's own plugin applies --hypothesis-* on top
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped cleanly without one")
    problem = check_device_name(_device_name(config))
    if problem:
        raise pytest.UsageError(f"{DEVICE_OPTION}: {problem}")
    if config.getoption("hypothesis_profile", None):
        return
    profile = chosen_profile()
    try:
        settings.load_profile(profile)
    except InvalidArgument:
        raise pytest.UsageError(
            f"{PROFILE_VARIABLE}={profile!r} is not a registered Hypothesis profile; "
            f"mlbasics registers {', '.join(_PROFILES)}"
        ) from None


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"mlbasics: device {_device_name(config)}, hypothesis profile {settings.get_current_profile_name()}"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped, with the reason, where no CUDA device is available."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked or torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is available here")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> torch.device:
    """The device chosen with ``--mlbasics-device`` (default cpu); tests using it are skipped if
    that device is not available here."""
    from mlbasics.devices import resolve_device

    name = _device_name(pytestconfig)
    try:
        return resolve_device(name)
    except DeviceError as exc:
        pytest.skip(f"{DEVICE_OPTION} {name}: {exc}")


def _as_default(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    # The process-wide registry is a module global; monkeypatch puts the previous one back.
    monkeypatch.setattr(mlbasics.core.registry, "_default", registry)
    return registry


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The built-in components and nothing installed; strict; the default registry for the test."""
    return _as_default(Registry.isolated(), monkeypatch)


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """No components at all until plugins are added; strict; the default registry for the test."""
    return _as_default(Registry.isolated(builtins=False), monkeypatch)


@pytest.fixture
def register_plugin(registry: Registry) -> Callable[..., Registry]:
    """``register_plugin(plugin, name=None) -> Registry``: add a plugin to ``registry`` for this test."""

    def register(plugin: object, name: str | None = None) -> Registry:
        if isinstance(plugin, str):
            plugin = importlib.import_module(plugin)
        registry.add_plugin(plugin, name)
        registry.specs()  # collect now, so a broken plugin raises here (the registry is strict)
        return registry

    return register
