"""Data held in memory: NumPy arrays, tensors, nested lists and DataFrames into train() and sweep(),
shared rather than copied where they can be, and every kind of bad input refused in one line with
nothing written. Run folders of such data: tests/test_in_memory_runs.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mlbasics
from mlbasics import DataError, Dataset, MlbasicsError, ValidationError
from mlbasics.cli._summary import _linear_parameters_table

LINEAR = {"model": "linear", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 300}
WEIGHTS = np.array([1.0, 2.0, 3.0], dtype=np.float32)


def linear_data(n: int = 40, seed: int = 0) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """y = x·(1, 2, 3) + 5, no noise: any form of it trains to the same weights."""
    x = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    return x, x @ WEIGHTS + 5


@pytest.fixture
def frame() -> pd.DataFrame:
    x, y = linear_data()
    return pd.DataFrame({"area": x[:, 0], "rooms": x[:, 1], "age": x[:, 2], "price": y})


def _learned(result: mlbasics.TrainResult) -> list[float]:
    return [*result.parameters["weight"].flatten().tolist(), *result.parameters["bias"].tolist()]


# -- every form trains ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    ["numpy float32", "numpy float64", "torch", "nested lists", "pandas", "Dataset.from_arrays"],
)
def test_every_form_of_the_same_data_trains_the_same_model(form: str) -> None:
    x, y = linear_data()
    data: Any = {
        "numpy float32": (x, y),
        "numpy float64": (x.astype(np.float64), y.astype(np.float64)),
        "torch": (torch.from_numpy(x), torch.from_numpy(y)),
        "nested lists": (x.tolist(), y.tolist()),
        "pandas": (pd.DataFrame(x), pd.Series(y)),
        "Dataset.from_arrays": Dataset.from_arrays(x, y),
    }[form]
    result = mlbasics.train(dataset=data, **LINEAR)
    reference = mlbasics.train(dataset=(x, y), **LINEAR)
    assert _learned(result) == _learned(reference)  # the same float32 values: the same training
    assert result.parameters["weight"].flatten().tolist() == pytest.approx([1.0, 2.0, 3.0], abs=1e-4)
    assert result.experiment.dataset.name == "in-memory"


def test_a_dataframe_with_its_target_named(frame: pd.DataFrame) -> None:
    result = mlbasics.train(dataset=frame, target="price", **LINEAR)
    assert result.dataset.feature_names == ("area", "rooms", "age")
    assert result.dataset.target_names == ("price",)
    same = mlbasics.train(dataset=Dataset.from_frame(frame, target="price"), **LINEAR)
    assert _learned(same) == _learned(result)
    # The names reach the summary's table of learned weights, and predict's inputs by name.
    table = _linear_parameters_table(result)
    assert table is not None
    assert list(table.columns[0].cells) == ["w[0] (area)", "w[1] (rooms)", "w[2] (age)", "b"]
    reordered = frame[["age", "price", "area", "rooms"]].head(2)
    assert torch.equal(result.predict(reordered), result.predict(frame[["area", "rooms", "age"]].head(2)))


def test_a_dataframe_chooses_its_features_and_several_targets(frame: pd.DataFrame) -> None:
    frame = frame.assign(twice=2 * frame["price"])
    data = Dataset.from_frame(frame, target=["price", "twice"], features=["rooms", "area"])
    assert (data.feature_names, data.target_names) == (("rooms", "area"), ("price", "twice"))
    assert data.features.shape == (40, 2)
    assert data.targets.shape == (40, 2)


def test_a_one_dimensional_feature_array_is_one_feature() -> None:
    x = np.linspace(-1, 1, 21, dtype=np.float32)
    result = mlbasics.train(dataset=(x, 3 * x - 1), **LINEAR)
    assert result.dataset.features.shape == (21, 1)
    assert result.dataset.feature_names == ("x",)
    assert result.predict(0.5).shape == (1, 1)
    assert float(result.predict(0.5)[0, 0]) == pytest.approx(0.5, abs=1e-4)
    named = mlbasics.train(dataset=(pd.Series(x, name="hours"), pd.Series(3 * x - 1, name="grade")), **LINEAR)
    assert (named.dataset.feature_names, named.dataset.target_names) == (("hours",), ("grade",))


def test_names_can_be_given(frame: pd.DataFrame) -> None:
    x, y = linear_data()
    data = Dataset.from_arrays(x, y, feature_names=["a", "b", "c"], target_names="z")
    assert (data.feature_names, data.target_names) == (("a", "b", "c"), ("z",))
    with pytest.raises(ValidationError, match="feature_names: 2 names for 3 columns"):
        Dataset.from_arrays(x, y, feature_names=["a", "b"])


# -- no needless copies -------------------------------------------------------------------------


def test_float32_arrays_are_shared_and_others_converted_once() -> None:
    x, y = linear_data()
    data = Dataset.from_arrays(x, y)
    assert np.shares_memory(data.features.numpy(), x)
    assert np.shares_memory(data.targets.numpy(), y)  # a 1-D target is a view as one column
    tensor = torch.from_numpy(x)
    assert Dataset.from_arrays(tensor, y).features.data_ptr() == tensor.data_ptr()
    converted = Dataset.from_arrays(x.astype(np.float64), y)
    assert converted.features.dtype == torch.float32
    assert not np.shares_memory(converted.features.numpy(), x)
    trained = mlbasics.train(dataset=(x, y), model="linear", epochs=2)
    assert trained.dataset.features.data_ptr() == x.ctypes.data  # training used the caller's array


def test_a_read_only_array_is_shared_without_a_warning() -> None:
    # The suite turns warnings into errors: torch's "not writable" warning would fail this test.
    x, y = linear_data()
    x.flags.writeable = False
    data = Dataset.from_arrays(x, y)
    assert np.shares_memory(data.features.numpy(), x)
    mlbasics.train(dataset=(x, y), model="linear", epochs=2)
    assert (x == linear_data()[0]).all()  # and it was not written to


# -- held-out data --------------------------------------------------------------------------------


def test_validation_and_test_data_are_held_out() -> None:
    x, y = linear_data(40)
    xv, yv = linear_data(10, seed=1)
    xt, yt = linear_data(5, seed=2)
    result = mlbasics.train(dataset=(x, y), validation=(xv, yv), test=(xt, yt), metrics=["r2"], **LINEAR)
    assert result.split_sizes == {"train": 40, "validation": 10, "test": 5}
    assert result.validation_loss is not None
    assert result.validation_loss < 1e-6
    assert result.test_loss is not None
    assert result.test_loss < 1e-6
    assert result.experiment.validation == 0.0  # data, not a fraction
    assert result.experiment.dataset.params["validation_rows"] == 10


def test_validation_from_a_dataframe_takes_the_training_columns(frame: pd.DataFrame) -> None:
    held = frame.tail(8)[["price", "age", "rooms", "area"]]  # other order: taken by name
    result = mlbasics.train(dataset=frame.head(32), target="price", validation=held, **LINEAR)
    assert result.split_sizes["validation"] == 8
    assert result.validation_loss is not None
    assert result.validation_loss < 1e-6


def test_a_sweep_takes_data_held_in_memory() -> None:
    x, y = linear_data()
    xv, yv = linear_data(10, seed=1)
    swept = mlbasics.sweep(dataset=(x, y), validation=(xv, yv), seeds=[0, 1], lrs=[0.05, 0.1], **LINEAR)
    assert len(swept.members) == 4
    assert all(member.history[-1] < 1e-3 for member in swept.members)


def test_fractions_still_split_data_held_in_memory() -> None:
    x, y = linear_data(40)
    result = mlbasics.train(dataset=(x, y), validation=0.25, **LINEAR)
    assert result.split_sizes == {"train": 30, "validation": 10, "test": 0}


# -- bad input: one line each, nothing written ------------------------------------------------


def _bad(case: str) -> dict[str, Any]:
    x, y = linear_data()
    frame = pd.DataFrame({"area": x[:, 0], "city": ["a"] * 40, "street": ["b"] * 40, "price": y})
    nan, inf = x.copy(), x.copy()
    nan[7, 2] = np.nan
    inf[3, 0] = np.inf
    return {
        "lengths": {"dataset": (x, y[:-1])},
        "nan": {"dataset": (nan, y)},
        "inf": {"dataset": (inf, y)},
        "nan in a frame": {
            "dataset": frame.assign(city=1.0, street=[np.nan] + [2.0] * 39),
            "target": "price",
        },
        "text columns": {"dataset": frame, "target": "price"},
        "empty": {"dataset": (np.zeros((0, 3)), np.zeros(0))},
        "no columns": {"dataset": (np.zeros((4, 0)), np.zeros(4))},
        "3-D": {"dataset": (x.reshape(40, 3, 1), y)},
        "object array": {"dataset": (x.astype(object), y)},
        "text array": {"dataset": (x.astype(str), y)},
        "ragged rows": {"dataset": ([[1.0, 2.0], [3.0]], [1.0, 2.0])},
        "no such target": {"dataset": frame, "target": "prize"},
        "no target named": {"dataset": frame},
        "a lone array": {"dataset": x},
        "validation columns": {"dataset": (x, y), "validation": (x[:, :2], y)},
        "validation data for a named dataset": {"dataset": "tiny", "validation": (x, y)},
        "target for a named dataset": {"dataset": "tiny", "target": "y"},
        "target for arrays": {"dataset": (x, y), "target": "y"},
        "mixed held-out": {"dataset": (x, y), "validation": (x, y), "test": 0.2},
        "nan in validation": {"dataset": (x, y), "validation": (nan, y)},
    }[case]


BAD = {
    "lengths": "features have 40 rows but targets have 39",
    "nan": "features: row 7, column 'x3' is NaN",
    "inf": "features: row 3, column 'x1' is inf",
    "nan in a frame": "features: row 0, column 'street' is NaN",
    "text columns": "are not numbers; encode them as numbers",
    "empty": "features: empty (shape (0, 3))",
    "no columns": "features: no columns (shape (4, 0))",
    "3-D": "features: 3-D, shape (40, 3, 1); mlbasics' models take vectors",
    "object array": "features: an object array (dtype object), not numbers",
    "text array": "features: text (dtype <U",
    "ragged rows": "features: cannot be read as a table of numbers",
    "no such target": "DataFrame has no column 'prize'; its columns: area, city, street, price",
    "no target named": "dataset: a DataFrame needs its target column named, as in target='price' (its columns: area, city, street, price)",
    "a lone array": "dataset: expected a (features, targets) pair",
    "validation columns": "validation: 2 feature and 1 target column(s), but the training data have 3 and 1",
    "validation data for a named dataset": "train(): validation=(X, y) go with data held in memory",
    "target for a named dataset": "train(): target='y' go with data held in memory",
    "target for arrays": "target='y' names the target column of a DataFrame",
    "mixed held-out": "train(): test = 0.2 is a fraction of the rows, but the validation rows are given as data",
    "nan in validation": "validation features: row 7, column 'x3' is NaN",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_data_is_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(MlbasicsError) as raised:
        mlbasics.train(**_bad(case), epochs=2, save=run)
    message = str(raised.value)
    assert BAD[case] in message
    if case == "text columns":  # pandas 2 says (object), pandas 3 (str)
        assert message.startswith("features: columns 'city' (")
        assert "'street' (" in message
    assert "\n" not in message
    assert isinstance(raised.value, DataError | ValidationError)
    assert not run.exists()


def test_dataset_from_frame_needs_a_dataframe() -> None:
    with pytest.raises(
        ValidationError,
        match=r"DataFrame: expected a pandas DataFrame, got a numpy.ndarray of shape \(40, 3\)",
    ):
        Dataset.from_frame(linear_data()[0], target="y")


def test_a_fraction_that_is_data_says_where_data_go() -> None:
    x, y = linear_data()
    with pytest.raises(
        ValidationError, match=r"validation must be a fraction .* got a tuple; held-out data go to train"
    ):
        mlbasics.prepare(mlbasics.Experiment(dataset=(x, y), validation=(x, y)))


# -- predict takes what train takes -----------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> mlbasics.TrainResult:
    x, y = linear_data()
    return mlbasics.train(dataset=(x, y), **LINEAR)


@pytest.mark.parametrize(
    "form", ["tensor", "numpy", "float64", "list", "one row", "one row of numpy", "DataFrame", "tensor row"]
)
def test_predict_takes_every_form(fitted: mlbasics.TrainResult, form: str) -> None:
    rows = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    given: Any = {
        "tensor": torch.from_numpy(rows),
        "numpy": rows,
        "float64": rows.astype(np.float64),
        "list": rows.tolist(),
        "one row": [1.0, 1.0, 1.0],
        "one row of numpy": rows[0],
        "DataFrame": pd.DataFrame(rows, columns=["x1", "x2", "x3"]),
        "tensor row": torch.ones(3),
    }[form]
    predicted = fitted.predict(given)
    expected = fitted.predict(torch.from_numpy(rows))
    assert predicted.shape == ((1, 1) if "row" in form else (2, 1))
    assert torch.equal(predicted, expected[: len(predicted)])
    assert float(expected[0, 0]) == pytest.approx(11.0, abs=1e-3)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([[1.0, 2.0]], r"predict needs rows of 3 feature value\(s\) \(x1, x2, x3\), got shape \(1, 2\)"),
        (2.0, r"predict needs rows of 3 feature value\(s\) \(x1, x2, x3\), got shape \(1,\)"),
        (np.zeros((2, 3, 1)), r"got shape \(2, 3, 1\)"),
        ([["a", "b", "c"]], r"predict needs rows of 3 .*: text \(dtype <U1\), not numbers"),
        (pd.DataFrame({"x1": [1.0], "x2": [2.0]}), r"the DataFrame lacks column\(s\) x3"),
        (True, r"got a bool"),
    ],
)
def test_predict_names_the_shape_it_needs(fitted: mlbasics.TrainResult, given: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        fitted.predict(given)


# -- properties -------------------------------------------------------------------------------

finite_tables = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
    elements=st.floats(-1e6, 1e6, width=32),
)


@given(finite_tables)
def test_any_finite_table_is_taken_as_it_is(table: np.ndarray[Any, Any]) -> None:
    data = Dataset.from_arrays(table, table[:, 0])
    assert torch.equal(data.features, torch.from_numpy(table))
    assert data.feature_names == (
        ("x",) if table.shape[1] == 1 else tuple(f"x{i + 1}" for i in range(table.shape[1]))
    )


@given(finite_tables, st.data(), st.sampled_from([np.nan, np.inf, -np.inf]))
def test_a_bad_value_is_named_by_its_row_and_column(
    table: np.ndarray[Any, Any], data: st.DataObject, bad: float
) -> None:
    row = data.draw(st.integers(0, table.shape[0] - 1))
    column = data.draw(st.integers(0, table.shape[1] - 1))
    table = table.copy()
    table[row:, :] = 0.0  # only the one bad value, and no earlier one
    table[row, column] = bad
    names = [f"c{i}" for i in range(table.shape[1])]
    with pytest.raises(DataError, match=rf"features: row {row}, column 'c{column}' is "):
        Dataset.from_arrays(pd.DataFrame(table, columns=names), np.zeros(len(table)))


def test_the_data_show_their_shape_not_their_hash() -> None:
    x, y = linear_data()
    experiment = mlbasics.Experiment(dataset=(x, y))
    assert "dataset=<in-memory(40 rows x 3 features -> y)>" in repr(experiment)
    assert str(experiment.dataset) == "in-memory(40 rows x 3 features -> y)"
