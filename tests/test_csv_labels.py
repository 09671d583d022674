"""The ``csv`` dataset with class labels: a target of words is read as labels (the classes are
their sorted names), numbers are when ``classes = true``; every bad label is one line naming the
file, and the line and column where there is one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import DataError, Registry
from mlbasics.data import _csv
from tests.conftest import builtins_only_env, run_main

REGISTRY = Registry.isolated()
PETS = "weight,height,pet\n4,25,cat\n30,60,dog\n\n5,23,cat\n25,55,dog\n0.1,5,mouse\n0.2,6,mouse\n"


def _table(tmp_path: Path, text: str, name: str = "pets.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture(params=[1 << 20, 7], ids=["4MiB-blocks", "7-byte-blocks"])
def blocks(request: pytest.FixtureRequest) -> object:
    """Every test reads in large blocks and in blocks of 7 bytes (lines split across reads)."""
    with _csv.chunk_bytes(request.param):
        yield


def test_a_column_of_words_holds_class_labels(tmp_path: Path, blocks: object) -> None:
    data = REGISTRY.build("dataset", "csv", path=_table(tmp_path, PETS))
    assert data.classes == ("cat", "dog", "mouse")  # sorted
    assert data.targets.tolist() == [0, 1, 0, 1, 2, 2]
    assert data.features.tolist()[1] == [30.0, 60.0]
    assert (data.feature_names, data.target_name) == (("weight", "height"), "pet")
    assert data.row_source is not None
    assert data.row_source.lines.tolist() == [2, 3, 5, 6, 7, 8]  # the blank line 4 is no row


def test_numbers_are_class_labels_when_the_dataset_says_so(tmp_path: Path, blocks: object) -> None:
    path = _table(tmp_path, "x,grade\n1,2\n2,10\n3,1.0\n4,2e0\n5,10\n")
    data = REGISTRY.build("dataset", "csv", path=path, classes=True)
    assert data.classes == ("1", "2", "10")  # by value, named without a trailing .0
    assert data.targets.tolist() == [1, 2, 0, 1, 2]
    regression = REGISTRY.build("dataset", "csv", path=path)
    assert regression.classes is None
    assert regression.targets[:, 0].tolist() == [2.0, 10.0, 1.0, 2.0, 10.0]


def test_a_csv_of_word_labels_trains_and_predicts_names(tmp_path: Path) -> None:
    result = mlbasics.train(
        registry=REGISTRY,
        dataset={"name": "csv", "path": _table(tmp_path, PETS)},
        model="logistic",
        standardize="features",
        optimizer={"name": "sgd", "lr": 0.5},
        epochs=200,
        metrics=["accuracy"],
    )
    assert result.metrics["accuracy"] == 1.0
    assert result.predict(torch.tensor([[28.0, 58.0], [0.15, 5.5]])) == ["dog", "mouse"]


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        (
            "weight,pet\n4,cat\n30,\n5,cat\n",
            {},
            "{path}, line 3: column 'pet' is empty; every row needs a class label",
        ),
        (
            "weight,pet\n4,cat\n30,dog,extra\n",
            {},
            "{path}, line 3: 3 cells, but the header has 2",
        ),
        (
            "weight,pet\n4,cat\n30,cat\n",
            {},
            "{path}: column 'pet' holds one class label only, 'cat'; a classifier needs rows of at least two classes",
        ),
        (
            "weight,pet\n" + "".join(f"{i},id{i}\n" for i in range(10_001)),
            {},
            "{path}, line 10002: column 'pet' holds a 10,001th different label, 'id10000'; a classification "
            "has at most 10,000 classes (is it an id or a measurement? then it is no class label)",
        ),
        (
            "weight,pet\n4,cat\n30,dog\n",
            {"memory_map": True},
            "{path}: memory_map reads numbers only, and column 'pet' holds class labels; drop memory_map",
        ),
        (
            "a,b,c\n1,2,3\n4,5,6\n",
            {"targets": ["b", "c"], "classes": True},
            "{path}: class labels come from one target column, not 2; give target",
        ),
        (
            "weight,pet\n4,cat\nheavy,dog\n",
            {},
            "{path}, line 3: column 'weight' holds 'heavy', not a number",
        ),
    ],
)
def test_a_bad_label_is_one_line_naming_file_line_and_column(
    tmp_path: Path, text: str, params: dict[str, object], message: str
) -> None:
    path = _table(tmp_path, text)
    with pytest.raises(DataError) as caught:
        REGISTRY.build("dataset", "csv", path=path, **params)
    assert str(caught.value) == message.format(path=path)
    assert "\n" not in str(caught.value)


def test_a_label_only_in_held_out_rows_is_one_line_naming_its_row(tmp_path: Path) -> None:
    # "bird" has one row of seven. Stratified, a test part of two rows takes a cat and a dog (the
    # largest shares round up); split at random with this seed, it takes the bird.
    path = _table(tmp_path, "a,b,species\n1,2,cat\n2,3,dog\n3,1,cat\n4,4,bird\n5,5,dog\n6,1,cat\n7,2,dog\n")
    folder = tmp_path / "run"
    result = run_main(
        "train", "--dataset", "csv", "--set", f"dataset.path={path!r}", "--model", "linear", "--test", "0.3",
        "--no-stratify", "--split-seed", "3", "--epochs", "2", "--save", str(folder), env=builtins_only_env(),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"mlbasics: error: {path}, line 5, column 'species': label 'bird' is only in the test rows (1 row in all), "
        "so training never sees it; give it more rows, or hold out fewer\n"
    )
    assert not folder.exists()
    stratified = mlbasics.train(
        registry=REGISTRY,
        dataset={"name": "csv", "path": path},
        model="linear",
        test=0.3,
        split_seed=3,
        epochs=1,
    )
    assert stratified.confusion["test"].sum(dim=1).tolist() == [0, 1, 1]  # bird, cat, dog


def test_a_label_the_training_rows_lack_is_named_for_any_dataset() -> None:
    with pytest.raises(
        DataError, match=r"^dataset 'blobs': label '\d' is only in the test rows \(1 row in all\)"
    ):
        mlbasics.train(
            registry=REGISTRY, dataset={"name": "blobs", "n": 3}, test=0.34, stratify=False, epochs=1
        )


def test_an_empty_label_stops_the_command_with_one_line(tmp_path: Path) -> None:
    path = _table(tmp_path, "weight,pet\n4,cat\n30,\n5,dog\n")
    result = run_main("train", "--dataset", "csv", "--set", f"dataset.path={path!r}", env=builtins_only_env())
    assert result.returncode == 2
    assert (
        result.stderr
        == f"mlbasics: error: {path}, line 3: column 'pet' is empty; every row needs a class label\n"
    )
