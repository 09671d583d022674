"""The plugin as installed: found through the `mlbasics` entry-point group, listed with its version,
and used by the `mlbasics` command, without importing torch just to list it."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys

from mlbasics import Registry

DISTRIBUTION = "mlbasics-torch-optim"
VERSION = importlib.metadata.version(DISTRIBUTION)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBASICS_")}
    return env | {"MLBASICS_PLUGINS": "builtins,torch-optim"}


def _mlbasics(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlbasics", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        check=False,
    )


def test_the_entry_point_is_declared() -> None:
    [entry_point] = [
        ep for ep in importlib.metadata.entry_points(group="mlbasics") if ep.name == "torch-optim"
    ]
    assert entry_point.value == "mlbasics_torch_optim"
    assert entry_point.dist is not None
    assert entry_point.dist.name == DISTRIBUTION


def test_the_installed_registry_finds_it_with_its_version() -> None:
    spec = Registry().get("optimizer", "adam")
    assert spec.plugin is not None
    assert (spec.plugin.name, spec.plugin.distribution, spec.plugin.version) == (
        "torch-optim",
        DISTRIBUTION,
        VERSION,
    )


def test_mlbasics_list_shows_the_plugin() -> None:
    result = _mlbasics("list", "--json")
    assert result.returncode == 0, result.stderr
    ours = {c["name"]: c for c in json.loads(result.stdout) if c["plugin"]["name"] == "torch-optim"}
    assert sorted(ours) == ["adam", "adamw", "huber", "l1", "lbfgs", "rmsprop", "smooth-l1"]
    assert {c["plugin"]["version"] for c in ours.values()} == {VERSION}
    assert {c["status"] for c in ours.values()} == {"available"}


def test_listing_does_not_import_torch() -> None:
    probe = (
        "import sys\nfrom mlbasics.cli import main\nmain(['list', 'optimizers'])\n"
        "print('torch imported:', 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_env(), timeout=300, check=True
    )
    assert "adam" in result.stdout
    assert result.stdout.strip().endswith("torch imported: False")


def test_mlbasics_train_with_adam() -> None:
    result = _mlbasics(
        "train",
        "--dataset",
        "synthetic-linear",
        "--model",
        "linear",
        "--optimizer",
        "adam",
        "--lr",
        "0.1",
        "--epochs",
        "300",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["components"]["optimizer"] == {
        "name": "adam",
        "params": {
            "lr": 0.1,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.0,
            "amsgrad": False,
        },
        "plugin": "torch-optim",
        "distribution": DISTRIBUTION,
        "version": VERSION,
    }
    assert data["final_loss"] < 1e-6


def test_a_bad_param_is_one_line_and_exit_2() -> None:
    result = _mlbasics("train", "--optimizer", "adam", "--set", "optimizer.beta2=1.5")
    assert result.returncode == 2
    assert result.stderr == "mlbasics: error: optimizer 'adam': param 'beta2' must be < 1, got 1.5\n"
