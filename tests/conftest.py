"""Shared fixtures: fake installed plugin distributions and a CLI runner.

The registry, device and plugin fixtures, the ``cuda`` marker and the Hypothesis profiles come from
mlbasics' own pytest plugin, the one plugin authors use (docs/testing.md).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlbasics.plugins import ENV_VARIABLES
from mlbasics.registry import reset_default_registry

pytest_plugins = ["mlbasics.testing.pytest_plugin"]


@pytest.fixture(autouse=True)
def _clean_plugin_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts from the installed plugins and no MLBASICS_* settings."""
    for variable in ENV_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    reset_default_registry()
    yield
    reset_default_registry()


class FakeSite:
    """A folder on sys.path holding fake installed distributions, as pip would leave them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self,
        distribution: str,
        *,
        version: str = "1.0",
        entry_points: dict[str, str],
        modules: dict[str, str],
    ) -> None:
        """Write ``modules`` (name -> source) and a dist-info declaring ``entry_points`` in the
        ``mlbasics`` group (plugin name -> ``module`` or ``module:object``)."""
        for name, source in modules.items():
            (self.root / f"{name}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[mlbasics]\n{lines}")
        importlib.invalidate_caches()

    def env(self) -> dict[str, str]:
        """An environment for a subprocess that sees these distributions."""
        env = dict(os.environ)
        for variable in ENV_VARIABLES:
            env.pop(variable, None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        return env


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield FakeSite(root)
    for name in set(sys.modules) - before:  # fake plugin modules must not leak into other tests
        if getattr(sys.modules[name], "__file__", "") and str(root) in (sys.modules[name].__file__ or ""):
            del sys.modules[name]


def builtins_only_env(**extra: str) -> dict[str, str]:
    """An environment for a subprocess that loads only the built-in plugin, whatever else is
    installed (the plugin distributions under plugins/ are, in CI)."""
    env = {key: value for key, value in os.environ.items() if key not in ENV_VARIABLES}
    return env | {"MLBASICS_PLUGINS": "builtins"} | extra


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``mlbasics ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "mlbasics", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


PLUGIN_SOURCE = """
from mlbasics import ComponentSpec, Param, hookimpl

@hookimpl
def mlbasics_activations():
    return [ComponentSpec(kind="activation", name="softsign", factory="{module}:softsign",
                          summary="x / (1 + |x|)")]

def softsign():
    import torch
    return torch.nn.Softsign()
"""


def plugin_source(module: str) -> str:
    """A small valid plugin that adds the activation ``softsign``."""
    return PLUGIN_SOURCE.format(module=module)
