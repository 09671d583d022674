"""Shared fixtures: fake installed plugin distributions and two CLI runners, in this process and in a
fresh interpreter.

The registry, device and plugin fixtures, the ``cuda`` marker and the Hypothesis profiles come from
mlbasics' own pytest plugin, the one plugin authors use (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlbasics.core.plugins import ENV_VARIABLES
from mlbasics.core.registry import reset_default_registry

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
    """Run ``mlbasics ARGS`` in a fresh interpreter, as a user would. Only for what needs one: an exit
    status or output that the interpreter itself makes (a signal, an uncaught traceback), or a
    process environment (PYTHONPATH) that this process can no longer take on; otherwise
    :func:`run_main`, which checks the same in a fraction of the time."""
    return subprocess.run(
        [sys.executable, "-m", "mlbasics", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def run_main(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``mlbasics ARGS`` in this process, as ``python -m mlbasics`` would: ``mlbasics.cli.main``
    with ``env`` as the whole environment (like ``subprocess.run(env=...)``; None keeps this one),
    ``cwd`` as the working directory, and stdout and stderr captured; the exit status is what
    ``main`` returns or argparse exits with. An exception escaping ``main`` is not turned into a
    status: it fails the test with its traceback (a user would have seen that traceback).

    Around the call, what one command could leave behind for the next test is put back: the
    environment and working directory, the default registry (which caches the plugins found), the
    "mlbasics" logger that ``mlbasics: note:`` lines are handed to, and torch's random state."""
    import torch

    from mlbasics.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    logger = logging.getLogger("mlbasics")
    handlers, propagate = list(logger.handlers), logger.propagate
    with (
        pytest.MonkeyPatch.context() as patch,
        torch.random.fork_rng(devices=[]),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        if env is not None:
            for variable in list(os.environ):
                patch.delenv(variable)
            for variable, value in env.items():
                patch.setenv(variable, value)
        if cwd is not None:
            patch.chdir(cwd)
        reset_default_registry()
        try:
            status = main(list(args))
        except SystemExit as stop:  # argparse: --version, --help and usage errors
            status = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
            if isinstance(stop.code, str):
                print(stop.code, file=sys.stderr)
        finally:
            reset_default_registry()
            logger.handlers[:], logger.propagate = handlers, propagate
    return subprocess.CompletedProcess(["mlbasics", *args], status, stdout.getvalue(), stderr.getvalue())


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
