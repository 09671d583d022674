"""Experiments: built in Python, read from TOML, written back, and changed the way the CLI changes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbasics import Component, DataError, Experiment, ValidationError


def test_default_is_the_lecture_mlp() -> None:
    experiment = Experiment()
    assert experiment.dataset == Component("quadratic")
    assert experiment.model == Component("mlp")
    assert experiment.loss == Component("mse")
    assert experiment.optimizer == Component("sgd", {"lr": 0.01})
    assert (experiment.epochs, experiment.device) == (10000, "auto")
    assert experiment.problems() == []


def test_components_accept_names_and_tables() -> None:
    experiment = Experiment(dataset="tiny", optimizer={"name": "sgd", "lr": 0.1})
    assert experiment.dataset == Component("tiny")
    assert experiment.optimizer == Component("sgd", {"lr": 0.1})
    # A table without a name sets params of the default component, as on the command line.
    assert Experiment(model={"hidden": [3]}).model == Component("mlp", {"hidden": [3]})
    assert Experiment(optimizer={"momentum": 0.9}).optimizer == Component(
        "sgd", {"lr": 0.01, "momentum": 0.9}
    )
    with pytest.raises(ValidationError, match="a component needs a name"):
        Experiment(model={"name": 3, "hidden": [3]})


def test_toml_round_trip(tmp_path: Path) -> None:
    experiment = Experiment(
        dataset={"name": "synthetic-linear", "weights": [1.0, -2.0], "noise": 0.1},
        model={"name": "mlp", "hidden": [4, 4], "activation": "tanh"},
        loss="sse-half",
        optimizer={"name": "sgd", "lr": 0.001, "momentum": 0.9},
        epochs=42,
        device="cpu",
        seed=7,
        log_every=5,
    )
    path = tmp_path / "experiment.toml"
    experiment.save(path)
    assert Experiment.load(path) == experiment
    assert Experiment.from_toml(experiment.to_toml()) == experiment


def test_none_params_are_left_out_of_toml() -> None:
    text = Experiment(dataset={"name": "csv", "path": "d.csv", "target": None}).to_toml()
    assert "target" not in text
    assert 'path = "d.csv"' in text


def test_a_partial_file_takes_the_defaults() -> None:
    experiment = Experiment.from_toml('epochs = 3\n[model]\nname = "linear"\n')
    assert experiment.epochs == 3
    assert experiment.model == Component("linear")
    assert experiment.dataset == Component("quadratic")


def test_component_given_as_a_plain_string_in_toml() -> None:
    assert Experiment.from_toml('loss = "sse-half"\n').loss == Component("sse-half")


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('epochs = 10\n[model\nname = "mlp"\n')
    with pytest.raises(DataError, match=r"broken\.toml: invalid TOML: .*line 2"):
        Experiment.load(path)


def test_unknown_keys_are_reported_together_with_suggestions() -> None:
    with pytest.raises(ValidationError) as error:
        Experiment.from_toml('epoch = 10\n[modle]\nname = "mlp"\n[loss]\nname = 3\n', source="x.toml")
    assert error.value.problems == (
        "x.toml: unknown key 'epoch'; did you mean 'epochs'?",
        "x.toml: unknown key 'modle'; did you mean 'model'?",
        "x.toml: [loss] a component needs a name (a string), got 3",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("epochs = 0", "epochs must be >= 1, got 0"),
        ("epochs = 1.5", "epochs must be an integer, got 1.5"),
        ("seed = -1", "seed must be >= 0, got -1"),
        ("log_every = 0", "log_every must be >= 1, got 0"),
        ('device = "gpu"', "unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps"),
        ("epochs = true", "epochs must be an integer, got True"),
    ],
)
def test_bad_settings_are_problems(text: str, problem: str) -> None:
    assert Experiment.from_toml(text).problems() == [problem]


@pytest.mark.parametrize(
    ("path", "message"),
    [("missing.toml", "no such file"), (".", "is a directory")],
)
def test_unreadable_files(tmp_path: Path, path: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        Experiment.load(tmp_path / path)


@pytest.mark.parametrize(
    ("path", "reason"),
    [("no/such/folder/x.toml", "No such file or directory"), ("folder", "Is a directory")],
)
def test_unwritable_paths_are_one_error_and_leave_nothing_behind(
    tmp_path: Path, path: str, reason: str
) -> None:
    (tmp_path / "folder" / "inside").mkdir(parents=True)
    with pytest.raises(DataError) as caught:
        Experiment().save(tmp_path / path)
    assert str(caught.value) == f"{tmp_path / path}: cannot be written ({reason})"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["folder", "inside"]  # no temporary file


def test_choosing_another_component_drops_the_old_params() -> None:
    experiment = Experiment(model={"name": "mlp", "hidden": [3]})
    assert experiment.with_component("model", "mlp") is experiment
    assert experiment.with_component("model", "linear").model == Component("linear")


def test_assignments_are_read_as_toml_values() -> None:
    experiment = Experiment().with_assignments(
        [
            "epochs=50",
            "model.hidden=[8, 8]",
            "optimizer.lr=1e-3",
            "dataset.path=data/my file.csv",
            "model.activation=tanh",
            "loss=sse-half",
            "optimizer.name=lstsq",
        ]
    )
    assert experiment.epochs == 50
    assert experiment.model.params == {"hidden": [8, 8], "activation": "tanh"}
    assert experiment.dataset.params == {"path": "data/my file.csv"}
    assert experiment.loss == Component("sse-half")
    assert experiment.optimizer == Component("lstsq")


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("epochs", "--set needs KEY=VALUE"),
        ("=3", "--set needs KEY=VALUE"),
        ("epoch=3", "unknown setting 'epoch'; did you mean 'epochs'?"),
        ("modl.hidden=[3]", "unknown setting 'modl'; did you mean 'model'?"),
    ],
)
def test_bad_assignments(assignment: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("?", r"\?").replace("[", r"\[")):
        Experiment().with_assignments([assignment])
