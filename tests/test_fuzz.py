"""Fuzzing the readers of user files: whatever the text or bytes, the result is a valid object or a
:class:`mlbasics.MlbasicsError`, never another exception (which the CLI would show as a traceback).

The readers are fuzzed directly for speed; a few cases go through the CLI (``mlbasics.cli.main``).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from _checkpoints import rewrite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlbasics
from mlbasics import Checkpoint, Component, Dataset, Experiment, MlbasicsError, Registry
from mlbasics.builtin.datasets import csv_table
from mlbasics.data import _csv
from mlbasics.engine.experiment import LIST_KINDS
from mlbasics.runs.checkpoints import CHECKPOINT, FILES, MANIFEST
from mlbasics.runs.prediction import parse_samples
from mlbasics.training.resuming import restore
from tests.conftest import run_main

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
REGISTRY = Registry.isolated()


def _validate(experiment: Experiment) -> None:
    """Everything `prepare` checks before it builds anything; none of it may raise."""
    assert all(isinstance(problem, str) for problem in experiment.problems())
    for kind, component in experiment.components().items():
        params = dict(component.params)
        if kind == "model":
            params = {"in_features": 1, **params}
        assert all(isinstance(line, str) for line in REGISTRY.check(kind, component.name, params))
    for field, kind in LIST_KINDS.items():
        for listed in getattr(experiment, field):
            assert isinstance(listed, Component)
            assert all(isinstance(line, str) for line in REGISTRY.check(kind, listed.name, listed.params))


def _load_or_refuse(text: str) -> None:
    try:
        experiment = Experiment.from_toml(text)
    except MlbasicsError:
        return
    _validate(experiment)


@FUZZ
@given(st.text())
def test_any_text_is_an_experiment_or_a_clear_error(text: str) -> None:
    _load_or_refuse(text)


TOML_KEYS = st.sampled_from(
    ["epochs", "seed", "device", "log_every", "name", "lr", "hidden", "activation", "n", "x"]
)
TOML_VALUES = st.recursive(
    st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.datetimes()
    | st.sampled_from(["mlp", "linear", "sgd", "relu", "sigmod", "cpu", "cuda:7", "auto"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(TOML_KEYS | st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
RANDOM_DOCUMENTS = st.dictionaries(
    st.sampled_from(
        [
            *("dataset", "model", "loss", "optimizer", "metrics", "callbacks"),
            *("epochs", "seed", "device", "log_every", "epoch"),
        ]
    ),
    TOML_VALUES,
    max_size=6,
)
# Components by name with params mostly in range, so that many documents are valid experiments.
PARAMS: dict[str, dict[str, dict[str, st.SearchStrategy[Any]]]] = {
    "dataset": {
        "tiny": {},
        "quadratic": {"n": st.integers(0, 50), "noise": st.floats(0, 1), "seed": st.integers(0, 5)},
        "synthetic-linear": {"n": st.integers(1, 50), "weights": st.lists(st.floats(-3, 3), max_size=3)},
    },
    "model": {
        "linear": {"bias": st.booleans()},
        "mlp": {
            "hidden": st.lists(st.integers(0, 8), max_size=3),
            "activation": st.sampled_from(["relu", "tanh", "sigmod"]),
        },
    },
    "loss": {"mse": {}, "sse-half": {}},
    "optimizer": {"sgd": {"lr": st.floats(-0.1, 1), "momentum": st.floats(0, 0.99)}, "lstsq": {}},
}


def _component(kind: str) -> st.SearchStrategy[Any]:
    return st.one_of(
        [
            st.just(name) | st.fixed_dictionaries({"name": st.just(name)}, optional=params)
            for name, params in PARAMS[kind].items()
        ]
    )


PLAUSIBLE_DOCUMENTS = st.fixed_dictionaries(
    {},
    optional={
        **{kind: _component(kind) for kind in PARAMS},
        "epochs": st.integers(0, 100),
        "seed": st.integers(0, 5),
        "device": st.sampled_from(["cpu", "auto", "cuda:0", "gpu"]),
        "log_every": st.integers(0, 10),
        "metrics": st.lists(
            st.sampled_from(["r2", "mae", "rmse", "r3"])
            | st.fixed_dictionaries({"name": st.sampled_from(["r2", "mse"])}, optional={"x": st.integers()}),
            max_size=3,
        ),
        "callbacks": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["early-stopping", "csv-logger", "nope"])},
                optional={"patience": st.integers(-1, 5), "mode": st.sampled_from(["min", "max", "up"])},
            ),
            max_size=2,
        ),
    },
)
TOML_DOCUMENTS = PLAUSIBLE_DOCUMENTS | RANDOM_DOCUMENTS


@FUZZ
@given(TOML_DOCUMENTS)
def test_any_toml_document_is_an_experiment_or_a_clear_error(document: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(document)
    except (TypeError, ValueError):  # not expressible in TOML (e.g. a list mixing tables and values)
        return
    _load_or_refuse(text)


@FUZZ
@given(st.binary())
def test_any_bytes_in_a_config_file_are_an_experiment_or_a_clear_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(data)
    try:
        experiment = Experiment.load(path)
    except MlbasicsError:
        return
    _validate(experiment)


# --set keys of the lists of components, well- and ill-formed, with any value.
LIST_ASSIGNMENTS = st.builds(
    "{}={}".format,
    st.sampled_from(
        [
            "metrics",
            "callbacks",
            "callbacks.early-stopping.patience",
            "callbacks.x",
            "metrics.r2",
            "callbacks..p",
        ]
    ),
    st.text(max_size=10) | st.sampled_from(['["r2", "mae"]', "[1, 2]", '[{name = "r2"}]', "{}"]),
)


@FUZZ
@given(st.lists(st.text(max_size=30) | LIST_ASSIGNMENTS, max_size=3))
def test_any_set_assignment_is_applied_or_refused(assignments: list[str]) -> None:
    try:
        experiment = Experiment().with_assignments(assignments)
    except MlbasicsError:
        return
    _validate(experiment)


def _outcome(path: Path, target: str | None) -> tuple[bytes, bytes] | str:
    try:
        dataset = csv_table(str(path), target, None)
    except MlbasicsError as exc:
        return str(exc)
    return dataset.features.numpy().tobytes(), dataset.targets.numpy().tobytes()


def _read_csv(path: Path, target: str | None = None) -> None:
    outcome = _outcome(path, target)
    with _csv.chunk_bytes(5):  # read in 5-byte blocks: the same data or the same error
        assert _outcome(path, target) == outcome
    try:
        dataset = csv_table(str(path), target, None)
    except MlbasicsError:
        return
    assert isinstance(dataset, Dataset)
    assert dataset.n_samples >= 1
    assert bool(dataset.features.isfinite().all())
    assert bool(dataset.targets.isfinite().all())


@FUZZ
@given(data=st.binary())
def test_any_bytes_are_a_dataset_or_a_clear_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    _read_csv(path)


CELLS = st.sampled_from(
    ["1", "-2.5", "1e39", "nan", "inf", "", " 3 ", "x", "y", '"', '"4"', "1_0", "\x00", "0x10"]
)


@FUZZ
@given(
    rows=st.lists(st.lists(CELLS | st.text(max_size=4), max_size=4), max_size=6),
    separators=st.sampled_from(["\n", "\r\n", "\r"]),
    target=st.none() | CELLS,
)
def test_any_table_is_a_dataset_or_a_clear_error(
    tmp_path: Path, rows: list[list[str]], separators: str, target: str | None
) -> None:
    path = tmp_path / "table.csv"
    path.write_text(separators.join(",".join(row) for row in rows), newline="")
    _read_csv(path, target)


NUMBERS = st.sampled_from(["0", "1", "-2.5", " 3 ", "4e2", "1e-3", "+7"]) | st.floats(-1e30, 1e30).map(repr)


@FUZZ
@given(
    width=st.integers(1, 4),
    height=st.integers(0, 5),
    cells=st.lists(NUMBERS, min_size=20, max_size=20),
    damage=st.lists(st.tuples(st.integers(0, 19), CELLS | st.text(max_size=3)), max_size=2),
    header=st.permutations(["x", "y", "z", "w"])
    | st.lists(st.sampled_from(["x", "y", ""]), min_size=4, max_size=4),
)
def test_any_mostly_numeric_table_is_a_dataset_or_a_clear_error(
    tmp_path: Path,
    width: int,
    height: int,
    cells: list[str],
    damage: list[tuple[int, str]],
    header: list[str],
) -> None:
    """Rectangular, mostly numeric tables: most are valid datasets, a few have one bad cell."""
    values = list(cells)
    for index, cell in damage:
        values[index] = cell
    lines = [",".join(header[:width])] + [
        ",".join(values[row * width : (row + 1) * width]) for row in range(min(height, 20 // width))
    ]
    path = tmp_path / "numeric.csv"
    path.write_text("\n".join(lines) + "\n")
    _read_csv(path)


@FUZZ
@given(st.lists(st.text(max_size=12), min_size=1, max_size=3), st.integers(1, 3))
def test_any_predict_values_are_samples_or_a_clear_error(texts: list[str], width: int) -> None:
    names = [f"x{i}" for i in range(width)]
    try:
        samples = parse_samples(texts, names)
    except MlbasicsError:
        return
    assert tuple(samples.shape) == (len(texts), width)


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "run"
    experiment = Experiment(model={"name": "mlp", "hidden": [2]}, optimizer={"name": "sgd", "momentum": 0.5})
    mlbasics.train(experiment, registry=REGISTRY, epochs=3, device="cpu", save=folder)
    return folder


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from([*FILES, MANIFEST]),
    content=st.binary(max_size=200),
    key=st.sampled_from(
        ["epoch", "components", "data", "optimizer", "rng", "format", "files", "format_version"]
    ),
    value=JSON,
    replace_key=st.booleans(),
)
def test_any_damage_to_a_checkpoint_is_loaded_or_refused(
    saved_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    content: bytes,
    key: str,
    value: Any,
    replace_key: bool,
) -> None:
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(saved_run, run)
    folder = run / CHECKPOINT
    if replace_key and name in ("state.json", MANIFEST):  # keep the file valid JSON, change one entry
        document = json.loads((folder / name).read_text())
        document[key] = value
        content = json.dumps(document).encode()
    rewrite(run, name, content, fix_checksum=name != MANIFEST)  # a forger fixes the checksum too
    try:
        checkpoint = Checkpoint.load(run)
        checkpoint.model(REGISTRY)
        restore(checkpoint, checkpoint.experiment, REGISTRY)
    except MlbasicsError:
        return


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_through_the_command_line(tmp_path: Path, seed: int) -> None:
    generator = random.Random(seed)
    blob = bytes(generator.randrange(256) for _ in range(200))
    (tmp_path / "config.toml").write_bytes(blob)
    (tmp_path / "data.csv").write_bytes(blob)
    for args in (["train", "config.toml"], ["train", "--dataset", "csv", "--set", "dataset.path=data.csv"]):
        result = run_main(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("mlbasics: error: ")
        assert result.stderr.count("\n") == 1
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        '[model]\nname = "mlp"\nhidden = [1979-05-27]\n',
        "epochs = 1e400\n",
        "[dataset]\nname = 3\n",
        "device = [1]\n",
    ],
)
def test_odd_but_valid_toml_through_the_command_line(tmp_path: Path, text: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    result = run_main("train", "config.toml", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("mlbasics: error: ")
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
