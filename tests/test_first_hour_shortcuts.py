"""The shortcuts a student reaches for (issue 25): the command line's ``--lr`` as ``lr`` in Python and
TOML, a component table without a name that sets params of the current component, and a plugin
file added again after it was edited."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import mlbasics
from mlbasics import Component, Experiment, ValidationError
from mlbasics.core.plugins import PluginSet, PluginSettings
from tests.conftest import run_main

TINY = {"dataset": "tiny", "model": "linear", "epochs": 3, "device": "cpu"}


def test_train_takes_lr_as_the_command_line_does() -> None:
    result = mlbasics.train(lr=0.1, **TINY)
    assert result.experiment.optimizer == Component("sgd", {"lr": 0.1})
    assert result.components["optimizer"].params["lr"] == 0.1
    with_momentum = mlbasics.train(optimizer={"name": "sgd", "momentum": 0.9}, lr=0.05, **TINY)
    assert with_momentum.experiment.optimizer == Component("sgd", {"momentum": 0.9, "lr": 0.05})
    grid = mlbasics.sweep(lr=0.2, seeds=[0, 1], **TINY)
    assert {member.experiment.optimizer.params["lr"] for member in grid.members} == {0.2}


def test_a_table_without_a_name_keeps_the_component_and_sets_its_params() -> None:
    base = Experiment(
        optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.9}, model={"name": "mlp", "hidden": [4]}
    )
    result = mlbasics.train(base, optimizer={"lr": 0.01}, dataset="tiny", epochs=2, device="cpu")
    assert result.experiment.optimizer == Component("sgd", {"lr": 0.01, "momentum": 0.9})
    assert result.experiment.model == Component("mlp", {"hidden": [4]})
    # With a name, the table still replaces the component with all its params.
    assert mlbasics.train(
        base, optimizer={"name": "sgd", "lr": 0.01}, dataset="tiny", epochs=2, device="cpu"
    ).experiment.optimizer == Component("sgd", {"lr": 0.01})
    assert base.with_value("optimizer", {"momentum": 0.5}).optimizer == Component(
        "sgd", {"lr": 0.5, "momentum": 0.5}
    )


def test_a_toml_file_takes_lr_at_the_top_and_an_optimizer_table_without_a_name(tmp_path: Path) -> None:
    top = tmp_path / "top.toml"
    top.write_text(
        'lr = 0.1\nepochs = 3\ndevice = "cpu"\n[dataset]\nname = "tiny"\n[model]\nname = "linear"\n'
    )
    assert Experiment.load(top).optimizer == Component("sgd", {"lr": 0.1})
    table = tmp_path / "table.toml"
    table.write_text("epochs = 3\n[optimizer]\nlr = 0.1\n[model]\nhidden = [16, 16]\n")
    loaded = Experiment.load(table)
    assert loaded.optimizer == Component("sgd", {"lr": 0.1})
    assert loaded.model == Component("mlp", {"hidden": [16, 16]})
    other = tmp_path / "other.toml"
    other.write_text('lr = 0.02\noptimizer = "adam"\n')
    assert Experiment.load(other).optimizer == Component("adam", {"lr": 0.02})
    # Written back in full: the shortcut is only a way in.
    assert "lr = 0.1" in loaded.to_toml().split("[optimizer]")[1]
    trained = run_main("train", str(top), "--quiet", "--json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert '"lr": 0.1' in trained.stdout


def test_lr_given_twice_in_a_file_is_refused(tmp_path: Path) -> None:
    both = tmp_path / "both.toml"
    both.write_text("lr = 0.1\n[optimizer]\nname = 'sgd'\nlr = 0.2\n")
    with pytest.raises(ValidationError) as error:
        Experiment.load(both)
    assert error.value.problems == (
        f"{both}: lr is given twice, lr = 0.1 and lr = 0.2 in the [optimizer] table; keep one",
    )


def test_set_takes_lr_too() -> None:
    assert Experiment().with_assignments(["lr=0.3"]).optimizer == Component("sgd", {"lr": 0.3})
    with pytest.raises(ValidationError, match=r"unknown setting 'lrr'; did you mean 'lr'\?"):
        Experiment().with_assignments(["lrr=0.3"])


# -- a plugin file edited in the same session ---------------------------------------------------

CUBE = """
import torch
from mlbasics import ComponentSpec, hookimpl


class Cube(torch.nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.linear(x**3)


def build(in_features, out_features):
    return Cube(in_features, out_features)


@hookimpl
def mlbasics_models():
    return [ComponentSpec(kind="model", name="cube", factory=build, summary="SUMMARY")]
"""


def _write(path: Path, summary: str) -> None:
    path.write_text(textwrap.dedent(CUBE).replace("SUMMARY", summary))


def test_adding_an_edited_plugin_file_again_loads_the_edit(tmp_path: Path) -> None:
    file = tmp_path / "my_model.py"
    _write(file, "the first version")
    registry = mlbasics.Registry.isolated()
    [first] = registry.add_plugin_path(file)
    assert first.status == "active"
    assert registry.get("model", "cube").summary == "the first version"
    [again] = registry.add_plugin_path(file)  # unchanged: not run again, its record as it is
    assert again is first
    _write(file, "the edited version")
    [edited] = registry.add_plugin_path(file)
    assert edited.status == "active"
    assert registry.get("model", "cube").summary == "the edited version"
    assert [record.name for record in registry.records].count("my_model") == 1
    assert registry.build("model", "cube", in_features=1).__class__.__name__ == "Cube"


def test_a_plugin_file_fixed_after_failing_loads_when_added_again(tmp_path: Path) -> None:
    file = tmp_path / "my_model.py"
    file.write_text("raise RuntimeError('not yet')\n")
    plugins = PluginSet(PluginSettings(entry_points=False))
    [failed] = plugins.load_path(file)
    assert failed.status == "failed"
    _write(file, "fixed")
    [fixed] = plugins.load_path(file)
    assert fixed.status == "active"
    assert [record.status for record in plugins.records] == ["active"]


def test_the_default_registry_reloads_through_the_public_call(tmp_path: Path) -> None:
    file = tmp_path / "lecture.py"
    _write(file, "one")
    mlbasics.default_registry().add_plugin_path(file)
    _write(file, "two")
    mlbasics.default_registry().add_plugin_path(file)
    assert mlbasics.default_registry().get("model", "cube").summary == "two"
