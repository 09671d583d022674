"""scikit-learn's classification tables, and the digits number: an MLP with one hidden layer of 64
classifies 20% held-out digits (stratified) at least 95% right, from Python, TOML and the command
line alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import Registry
from mlbasics.cli import main

ROOT = Path(__file__).parents[3]
TABLES = {
    # name: (rows, features, classes, target name)
    "iris": (150, 4, ("setosa", "versicolor", "virginica"), "species"),
    "digits": (1797, 64, tuple(str(d) for d in range(10)), "digit"),
    "wine": (178, 13, ("class_0", "class_1", "class_2"), "cultivar"),
    "breast-cancer": (569, 30, ("malignant", "benign"), "diagnosis"),
}


def _sklearn_installed() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


needs_sklearn = pytest.mark.skipif(
    not _sklearn_installed(), reason="needs scikit-learn (mlbasics' test extra)"
)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_tables_are_class_labels_with_scikit_learns_names(registry: Registry, name: str) -> None:
    spec = next(s for s in registry.specs("dataset") if s.name == name)
    assert spec.requires == ("sklearn",)
    assert spec.tasks == {"classification"}
    if not _sklearn_installed():
        assert registry.status(spec) == "unavailable: needs sklearn (pip install 'mlbasics-extras[sklearn]')"
        return
    rows, features, classes, target = TABLES[name]
    data = registry.build("dataset", name)
    assert (data.n_samples, data.n_features, data.classes, data.target_name) == (
        rows,
        features,
        classes,
        target,
    )
    assert data.targets.dtype == torch.int64
    assert torch.bincount(data.targets).min() > 0  # every class has rows


@needs_sklearn
def test_iris_learns_with_logistic_regression(registry: Registry) -> None:
    result = mlbasics.train(
        registry=registry,
        dataset="iris",
        model="logistic",
        standardize="features",
        optimizer={"name": "sgd", "lr": 0.5},
        epochs=500,
        test=0.2,
        metrics=["accuracy"],
        device="cpu",
    )
    assert result.metrics["test_accuracy"] >= 0.9
    assert result.confusion["test"].sum(dim=1).tolist() == [10, 10, 10]  # stratified: 10 of each 50
    assert result.predict(torch.tensor([[5.0, 3.4, 1.5, 0.2]])) == ["setosa"]


# The digits number (issue 22): 20% stratified test split, standardized, mlp hidden [64],
# cross-entropy, SGD momentum 0.9 (lr 0.05), batch 32, 50 epochs; scikit-learn's MLPClassifier
# with the same settings reaches 0.97.
DIGITS_FLAGS = [
    "--dataset", "digits", "--model", "mlp", "--set", "model.hidden=[64]", "--loss", "cross-entropy",
    "--optimizer", "sgd", "--lr", "0.05", "--set", "optimizer.momentum=0.9", "--batch-size", "32",
    "--epochs", "50", "--test", "0.2", "--standardize", "features", "--metric", "accuracy", "--seed", "1",
]  # fmt: skip


@needs_sklearn
@pytest.mark.slow
def test_digits_from_python() -> None:
    result = mlbasics.train(
        dataset="digits",
        model={"name": "mlp", "hidden": [64]},
        loss="cross-entropy",
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
        batch_size=32,
        epochs=50,
        test=0.2,
        standardize="features",
        metrics=["accuracy"],
        seed=1,
        device="cpu",
    )
    assert result.split_sizes == {"train": 1438, "validation": 0, "test": 359}
    assert result.metrics["test_accuracy"] >= 0.95


@needs_sklearn
@pytest.mark.slow
@pytest.mark.parametrize("route", ["toml", "flags"])
def test_digits_from_the_command_line(
    route: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # examples/digits.toml, as the README runs it
    args = ["examples/digits.toml"] if route == "toml" else DIGITS_FLAGS
    status = main(["train", *args, "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    summary = json.loads(out)
    assert summary["experiment"]["loss"]["name"] == "cross-entropy"
    assert summary["classes"] == [str(d) for d in range(10)]
    assert summary["metrics"]["test_accuracy"] >= 0.95
    counts = summary["confusion"]["test"]["counts"]
    assert sum(map(sum, counts)) == 359
