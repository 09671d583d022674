"""The plugin as installed: found through the `mlbasics` entry-point group, listed with its version,
shown as unavailable (with the command that fixes it) where tensorboard is missing, and used by
the `mlbasics` command."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

from mlbasics import Registry

DISTRIBUTION = "mlbasics-tensorboard"
VERSION = importlib.metadata.version(DISTRIBUTION)
UNAVAILABLE = "unavailable: needs tensorboard (pip install tensorboard)"

# Runs the command in an interpreter that cannot find tensorboard, installed or not: what a user
# who installed the plugin with --no-deps (or uninstalled tensorboard) sees.
WITHOUT_TENSORBOARD = """
import sys

class NoTensorBoard:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoTensorBoard())
from mlbasics.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(*args: str, without_tensorboard: bool = False) -> subprocess.CompletedProcess[str]:
    command = ["-c", WITHOUT_TENSORBOARD] if without_tensorboard else ["-m", "mlbasics"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBASICS_")}
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env=env | {"MLBASICS_PLUGINS": "builtins,tensorboard", "COLUMNS": "200"},
        timeout=300,
        check=False,
    )


def test_the_entry_point_is_declared() -> None:
    [entry_point] = [
        ep for ep in importlib.metadata.entry_points(group="mlbasics") if ep.name == "tensorboard"
    ]
    assert entry_point.value == "mlbasics_tensorboard"
    assert entry_point.dist is not None
    assert entry_point.dist.name == DISTRIBUTION


def test_the_installed_registry_finds_it_with_its_version() -> None:
    spec = Registry().get("callback", "tensorboard")
    assert spec.plugin is not None
    assert (spec.plugin.name, spec.plugin.distribution, spec.plugin.version) == (
        "tensorboard",
        DISTRIBUTION,
        VERSION,
    )


def test_mlbasics_list_shows_the_callback_with_its_distribution() -> None:
    listing = _run("list", "callbacks", "--json")
    assert listing.returncode == 0, listing.stderr
    [ours] = [c for c in json.loads(listing.stdout) if c["name"] == "tensorboard"]
    assert ours["kind"] == "callback"
    assert ours["status"] == "available"
    assert (ours["plugin"]["name"], ours["plugin"]["distribution"], ours["plugin"]["version"]) == (
        "tensorboard",
        DISTRIBUTION,
        VERSION,
    )
    table = _run("list", "callbacks", "tensorboard")
    assert f"tensorboard {VERSION}" in table.stdout


def test_without_tensorboard_it_is_unavailable_and_the_rest_works() -> None:
    listing = _run("list", "--json", without_tensorboard=True)
    assert listing.returncode == 0, listing.stderr
    components = {(c["kind"], c["name"]): c for c in json.loads(listing.stdout)}
    assert components["callback", "tensorboard"]["status"] == UNAVAILABLE
    assert components["model", "mlp"]["status"] == "available"
    markdown = _run("list", "callbacks", "tensorboard", "--format", "markdown", without_tensorboard=True)
    assert f"| `tensorboard`<br>*{UNAVAILABLE}* |" in markdown.stdout

    asked = _run("train", "--epochs", "5", "--callback", "tensorboard", without_tensorboard=True)
    assert asked.returncode == 2
    assert asked.stderr == (
        f"mlbasics: error: callback 'tensorboard' from plugin tensorboard ({DISTRIBUTION} {VERSION}) is "
        "unavailable: needs tensorboard; pip install tensorboard\n"
    )
    assert asked.stdout == ""
    plain = _run("train", "--epochs", "5", "--json", without_tensorboard=True)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["epochs"] == 5
