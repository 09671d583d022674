"""mlbasics.testing.pytest_plugin: its fixtures (used here, as this suite loads the plugin), and its
options, profiles and skips as seen from a separate pytest run."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import ComponentSpec, PluginError, Registry, hookimpl
from mlbasics.devices import resolve_device
from mlbasics.testing.pytest_plugin import chosen_profile


def _softsign_plugin(name: str = "softsign") -> types.SimpleNamespace:
    spec = ComponentSpec(
        kind="activation", name="softsign", factory=torch.nn.Softsign, summary="x / (1 + |x|)"
    )
    plugin = types.SimpleNamespace(mlbasics_activations=hookimpl(lambda: [spec]))
    plugin.__name__ = name
    return plugin


def test_the_device_fixture_is_the_one_asked_for(device: torch.device, pytestconfig: pytest.Config) -> None:
    asked = pytestconfig.getoption("mlbasics_device") or pytestconfig.getini("mlbasics_device")
    assert device == resolve_device(asked)


def test_the_registry_fixture_holds_the_builtins_only_and_is_the_default(registry: Registry) -> None:
    assert {s.plugin.name for s in registry.specs() if s.plugin} == {"builtins"}
    assert [r.name for r in registry.records] == ["builtins"]
    assert mlbasics.default_registry() is registry


def test_the_empty_registry_fixture_holds_nothing(empty_registry: Registry) -> None:
    assert empty_registry.specs() == []
    assert mlbasics.default_registry() is empty_registry


def test_register_plugin_adds_a_plugin_for_this_test(register_plugin: Callable[..., Registry]) -> None:
    registry = register_plugin(_softsign_plugin())
    assert registry.get("activation", "softsign").plugin.name == "softsign"  # type: ignore[union-attr]
    assert isinstance(mlbasics.build("activation", "softsign"), torch.nn.Softsign)  # through the default


def test_register_plugin_fails_at_once_on_a_broken_plugin(register_plugin: Callable[..., Registry]) -> None:
    broken = types.SimpleNamespace(mlbasics_losses=hookimpl(lambda: ["not a spec"]))
    broken.__name__ = "broken"
    with pytest.raises(PluginError, match=r"plugin broken: hook mlbasics_losses failed: TypeError"):
        register_plugin(broken)


def test_without_the_fixtures_the_default_registry_is_the_installed_one() -> None:
    builtins = [r for r in mlbasics.default_registry().records if r.name == "builtins"]
    assert [r.info.distribution for r in builtins] == ["mlbasics"]  # found as installed, by entry point


@pytest.mark.parametrize(
    ("environ", "profile"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "1"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"CI": "0"}, "dev"),
        ({"MLBASICS_HYPOTHESIS_PROFILE": "dev", "CI": "true"}, "dev"),
        ({"MLBASICS_HYPOTHESIS_PROFILE": "ci"}, "ci"),
    ],
)
def test_the_profile_follows_the_environment(environ: dict[str, str], profile: str) -> None:
    assert chosen_profile(environ) == profile


def test_the_plugin_is_opt_in() -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    assert not [ep for ep in entry_points if ep.value.startswith("mlbasics")]


# -- a separate pytest run, as a plugin's repository would make ----------------------------------------

PROBE = """
    import pytest
    from hypothesis import settings

    def test_device(device):
        print("DEVICE", device)

    def test_profile():
        print("PROFILE", settings.get_current_profile_name(), settings.default.derandomize)

    @pytest.mark.cuda
    def test_needs_cuda():
        pass
"""


def _pytest(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(PROBE))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLBASICS_", "CI"))} | env
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "mlbasics.testing.pytest_plugin",
            "-s",
            "-rs",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_a_pytest_run_gets_the_device_profile_and_cuda_skips(tmp_path: Path) -> None:
    result = _pytest(tmp_path, CI="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mlbasics: device cpu, hypothesis profile ci" in result.stdout
    assert "DEVICE cpu" in result.stdout
    assert "PROFILE ci True" in result.stdout
    if not torch.cuda.is_available():
        assert re.search(
            r"SKIPPED \[1\] test_probe.py:\d+: needs a CUDA device; none is available here", result.stdout
        )

    result = _pytest(tmp_path, MLBASICS_HYPOTHESIS_PROFILE="dev")
    assert "PROFILE dev False" in result.stdout


@pytest.mark.slow
def test_an_unavailable_device_skips_the_tests_that_use_it(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here, so nothing to skip")
    result = _pytest(tmp_path, "--mlbasics-device", "cuda")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "SKIPPED [1] test_probe.py:5: --mlbasics-device cuda: device 'cuda' is not available" in result.stdout
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--mlbasics-device", "gpu"],
            {},
            "--mlbasics-device: unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps",
        ),
        (
            [],
            {"MLBASICS_HYPOTHESIS_PROFILE": "fast"},
            "MLBASICS_HYPOTHESIS_PROFILE='fast' is not a registered Hypothesis profile",
        ),
    ],
)
def test_a_bad_setting_is_a_usage_error(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = _pytest(tmp_path, *args, **env)
    assert result.returncode == 4  # pytest's exit status for usage errors
    assert message in result.stderr
    assert "Traceback" not in result.stderr
