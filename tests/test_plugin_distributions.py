"""The plugin distributions under plugins/, tried as a new user would: pip install one, see its
components in `mlbasics list` with the plugin's name and version, train with them, uninstall it and
see them go; and a plugin whose import fails leaves everything else working.

Each test installs into a throwaway environment (tests/throwaway_venv.py) that sees this one's
packages but not the plugin distributions, so these run whether or not they are installed here.
"""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.throwaway_venv import ThrowawayVenv, copy_source

PLUGINS = Path(__file__).parent.parent / "plugins"
DISTRIBUTIONS = sorted(p.name for p in PLUGINS.iterdir() if (p / "pyproject.toml").is_file())

pytestmark = pytest.mark.slow


def _version(folder: str) -> str:
    project = tomllib.loads((PLUGINS / folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    version: str = project["version"]
    return version


@pytest.fixture
def user_env(tmp_path: Path) -> ThrowawayVenv:
    return ThrowawayVenv(tmp_path, hide=DISTRIBUTIONS)


def _components(env: ThrowawayVenv, *args: str) -> dict[str, dict[str, Any]]:
    result = env.mlbasics("list", *args, "--json")
    assert result.returncode == 0, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)}


def test_there_are_plugin_distributions() -> None:
    assert {"mlbasics-torch-optim", "mlbasics-extras"} <= set(DISTRIBUTIONS)


def test_install_list_train_uninstall(user_env: ThrowawayVenv, tmp_path: Path) -> None:
    assert "adam" not in _components(user_env, "optimizers")

    user_env.install(copy_source(PLUGINS / "mlbasics-torch-optim", tmp_path))
    listed = _components(user_env)
    ours = {name: c for name, c in listed.items() if c["plugin"]["name"] == "torch-optim"}
    assert sorted(ours) == ["adam", "adamw", "huber", "l1", "lbfgs", "rmsprop", "smooth-l1"]
    version = _version("mlbasics-torch-optim")
    for component in ours.values():
        assert component["plugin"] == {
            "name": "torch-optim",
            "distribution": "mlbasics-torch-optim",
            "version": version,
            "path": None,
        }
        assert component["status"] == "available"
    table = user_env.mlbasics("list", "optimizers", "adam")
    assert f"torch-optim {version}" in table.stdout

    train = user_env.mlbasics(
        "train", "--dataset", "synthetic-linear", "--model", "linear", "--optimizer", "adam",
        "--lr", "0.1", "--epochs", "300", "--json",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    result = json.loads(train.stdout)
    assert result["components"]["optimizer"]["plugin"] == "torch-optim"
    assert result["components"]["optimizer"]["version"] == version
    assert result["parameters"]["weight"][0] == pytest.approx([1.0, 2.0, 3.0], abs=1e-3)

    user_env.pip("uninstall", "--yes", "mlbasics-torch-optim")
    assert not {"adam", "lbfgs", "l1"} & set(_components(user_env))
    gone = user_env.mlbasics("train", "--optimizer", "adam")
    assert gone.returncode == 2
    assert gone.stderr.startswith("mlbasics: error: unknown optimizer 'adam'")


BROKEN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "mlbasics-broken"
version = "0.2.0"

[project.entry-points.mlbasics]
broken = "mlbasics_broken"
"""


def test_a_plugin_whose_import_fails_leaves_the_rest_working(user_env: ThrowawayVenv, tmp_path: Path) -> None:
    broken = tmp_path / "mlbasics-broken"
    (broken / "mlbasics_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(textwrap.dedent(BROKEN_PYPROJECT))
    (broken / "mlbasics_broken" / "__init__.py").write_text("import a_dependency_nobody_installed\n")
    user_env.install(broken, copy_source(PLUGINS / "mlbasics-extras", tmp_path))

    plugins = user_env.mlbasics("plugins", "--json")
    assert plugins.returncode == 0, plugins.stderr
    records = {r["name"]: r for r in json.loads(plugins.stdout)}
    assert records["broken"]["status"] == "failed"
    assert (records["broken"]["distribution"], records["broken"]["version"]) == ("mlbasics-broken", "0.2.0")
    assert records["broken"]["error"] == (
        "import failed: ModuleNotFoundError: No module named 'a_dependency_nobody_installed'"
    )
    assert records["extras"]["status"] == records["builtins"]["status"] == "active"
    table = user_env.mlbasics("plugins")
    assert "failed: import failed" in table.stdout

    # The rest works, data files of a real (not editable) install included.
    assert {"anscombe", "mlp", "gelu"} <= set(_components(user_env))
    train = user_env.mlbasics(
        "train", "--dataset", "anscombe", "--model", "linear", "--optimizer", "lstsq", "--json"
    )
    assert train.returncode == 0, train.stderr
    result = json.loads(train.stdout)
    assert result["parameters"]["weight"][0][0] == pytest.approx(0.5, abs=1e-3)
    assert result["parameters"]["bias"][0] == pytest.approx(3.0, abs=2e-3)
    # An unknown name points at the failed plugin.
    unknown = user_env.mlbasics("train", "--model", "resnet")
    assert unknown.returncode == 2
    assert "plugin broken failed to load: see `mlbasics plugins`" in unknown.stderr
