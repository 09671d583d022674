"""The plugin as installed: found through the `mlbasics` entry-point group, listed with its version,
its optional dependency reported when missing, and used by the `mlbasics` command."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from importlib import resources

from mlbasics import Registry

DISTRIBUTION = "mlbasics-extras"
VERSION = importlib.metadata.version(DISTRIBUTION)

# Runs the command in an interpreter that cannot find scikit-learn, installed or not: what a user
# without it sees.
WITHOUT_SKLEARN = """
import sys

class NoSklearn:
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoSklearn())
from mlbasics.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBASICS_")}
    return env | {"MLBASICS_PLUGINS": "builtins,extras", "COLUMNS": "200"}


def _run(*args: str, without_sklearn: bool = False) -> subprocess.CompletedProcess[str]:
    command = ["-c", WITHOUT_SKLEARN] if without_sklearn else ["-m", "mlbasics"]
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        check=False,
    )


def test_the_entry_point_is_declared() -> None:
    [entry_point] = [ep for ep in importlib.metadata.entry_points(group="mlbasics") if ep.name == "extras"]
    assert entry_point.value == "mlbasics_extras"
    assert entry_point.dist is not None
    assert entry_point.dist.name == DISTRIBUTION


def test_the_installed_registry_finds_it_with_its_version() -> None:
    spec = Registry().get("dataset", "anscombe")
    assert spec.plugin is not None
    assert (spec.plugin.name, spec.plugin.distribution, spec.plugin.version) == (
        "extras",
        DISTRIBUTION,
        VERSION,
    )


def test_the_anscombe_table_ships_in_the_package() -> None:
    assert (resources.files("mlbasics_extras") / "data" / "anscombe.csv").is_file()
    installed = [str(f) for f in importlib.metadata.files(DISTRIBUTION) or []]
    if any(f.startswith("mlbasics_extras/") for f in installed):  # a regular install lists its files
        assert "mlbasics_extras/data/anscombe.csv" in installed


def test_listing_shows_an_unavailable_component_and_why() -> None:
    listing = _run("list", "datasets", "--json", without_sklearn=True)
    assert listing.returncode == 0, listing.stderr
    diabetes = next(c for c in json.loads(listing.stdout) if c["name"] == "diabetes")
    assert diabetes["status"] == "unavailable: needs sklearn (pip install 'mlbasics-extras[sklearn]')"
    assert diabetes["plugin"]["version"] == VERSION
    table = _run("list", "datasets", "d*", without_sklearn=True)
    assert "unavailable: needs sklearn (pip install 'mlbasics-extras[sklearn]')" in table.stdout
    markdown = _run("list", "datasets", "d*", "--format", "markdown", without_sklearn=True)
    assert (
        "| `diabetes`<br>*unavailable: needs sklearn (pip install 'mlbasics-extras[sklearn]')* |"
        in markdown.stdout
    )


def test_asking_for_an_unavailable_component_says_why() -> None:
    result = _run("train", "--dataset", "diabetes", "--model", "linear", without_sklearn=True)
    assert result.returncode == 2
    assert result.stderr == (
        f"mlbasics: error: dataset 'diabetes' from plugin extras ({DISTRIBUTION} {VERSION}) is unavailable: "
        "needs sklearn; pip install 'mlbasics-extras[sklearn]'\n"
    )
    assert result.stdout == ""


def test_mlbasics_train_polynomial() -> None:
    result = _run(
        "train",
        "--dataset",
        "polynomial",
        "--model",
        "polynomial",
        "--lr",
        "0.1",
        "--epochs",
        "500",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {data["components"][k]["plugin"] for k in ("dataset", "model")} == {"extras"}
    assert data["components"]["model"]["version"] == VERSION
    assert data["final_loss"] < 1e-3
