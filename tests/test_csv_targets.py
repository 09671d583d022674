"""Several target columns: ``targets = ["y1", "y2"]`` in the csv dataset gives (n, k) targets, a
model with k outputs, the MSE averaged over every column, and ``predict`` writing k columns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import DataError, Dataset, Registry
from mlbasics.analysis import collapse
from mlbasics.cli import main
from mlbasics.runs.prediction import predictions_csv

# y1 = 2a - b + 1 and y2 = a + 3b - 2, exactly, on six points in general position.
ROWS = [(0, 0), (1, 0), (0, 1), (2, 1), (1, 3), (3, 2)]
TABLE = "a,b,y1,y2\n" + "".join(f"{a},{b},{2 * a - b + 1},{a + 3 * b - 2}\n" for a, b in ROWS)


def _csv(tmp_path: Path) -> str:
    path = tmp_path / "two.csv"
    path.write_text(TABLE)
    return str(path)


def test_targets_are_n_by_k_with_their_names(registry: Registry, tmp_path: Path) -> None:
    dataset = registry.build("dataset", "csv", path=_csv(tmp_path), targets=["y2", "y1"])
    assert dataset.feature_names == ("a", "b")
    assert dataset.target_names == ("y2", "y1")
    assert dataset.target_name == "y2, y1"  # a label for plots and tables
    assert dataset.n_targets == 2
    assert dataset.targets[:, 0].tolist() == [a + 3 * b - 2 for a, b in ROWS]
    assert dataset.format_table(max_rows=1).splitlines() == [
        "a  b  y2  y1",
        "0  0  -2   1",
        "... 5 more rows (6 in all)",
    ]
    single = registry.build("dataset", "csv", path=_csv(tmp_path), targets=["y1"], features=["a", "b"])
    assert (single.target_name, single.target_names, tuple(single.targets.shape)) == ("y1", ("y1",), (6, 1))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"targets": ["y1"], "target": "y2"}, r"two\.csv: give target or targets, not both"),
        ({"targets": ["y1", "y1"]}, r"two\.csv: target column 'y1' is named twice"),
        ({"targets": ["y1", "y3"]}, r"two\.csv, line 1: no column 'y3' in the header; columns: a, b, y1, y2"),
        ({"targets": ["y1", "a"], "features": ["a"]}, r"column 'a' is both the target and a feature"),
        ({"targets": ["a", "b", "y1", "y2"]}, r"no feature columns besides the targets 'a', 'b', 'y1', 'y2'"),
    ],
)
def test_bad_target_lists_are_one_clear_error(
    registry: Registry, tmp_path: Path, params: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        registry.build("dataset", "csv", path=_csv(tmp_path), **params)


def test_names_must_fit_the_target_columns() -> None:
    x = torch.zeros(3, 1)
    assert Dataset(features=x, targets=torch.zeros(3, 3)).target_names == ("y1", "y2", "y3")
    assert Dataset(features=x, targets=torch.zeros(3, 2), target_name="t").target_names == ("t1", "t2")
    with pytest.raises(ValueError, match="1 target names for 2 target columns"):
        Dataset(features=x, targets=torch.zeros(3, 2), target_names=("y",))
    with pytest.raises(ValueError, match="target_name 'a' and target_names \\('b',\\) disagree"):
        Dataset(features=x, targets=torch.zeros(3, 1), target_name="a", target_names=("b",))


def test_a_linear_model_fits_both_targets_and_predict_writes_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = {"name": "csv", "path": _csv(tmp_path), "targets": ["y1", "y2"]}
    result = mlbasics.train(mlbasics.Experiment(dataset=dataset, model="linear", optimizer="lstsq", epochs=1))
    layer = collapse(result.model)
    assert (layer.in_features, layer.out_features) == (2, 2)
    # lstsq in float32 on exact integer data: within a few float32 roundings of the truth
    torch.testing.assert_close(layer.weight, torch.tensor([[2.0, -1.0], [1.0, 3.0]]), atol=1e-4, rtol=0)
    torch.testing.assert_close(layer.bias, torch.tensor([1.0, -2.0]), atol=1e-4, rtol=0)
    # MSE per column, averaged, is the MSE over all elements (every column has n rows)
    prediction = result.model(result.dataset.features).detach()
    per_column = ((prediction - result.dataset.targets) ** 2).mean(dim=0)
    torch.testing.assert_close(
        per_column.mean(), torch.nn.functional.mse_loss(prediction, result.dataset.targets)
    )

    toml = tmp_path / "two.toml"
    toml.write_text(
        f'epochs = 1\n[dataset]\nname = "csv"\npath = "{_csv(tmp_path)}"\ntargets = ["y1", "y2"]\n'
        '[model]\nname = "linear"\n[optimizer]\nname = "lstsq"\n'
    )
    assert main(["train", str(toml), "--quiet", "--save", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--x", "1,1", "2,0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "a,b,y1,y2"
    assert [[round(float(v), 3) for v in line.split(",")] for line in lines[1:]] == [
        [1, 1, 2, 2],
        [2, 0, 5, 0],
    ]
    assert mlbasics.Checkpoint.load(tmp_path / "run").target_names == ("y1", "y2")


def test_prediction_columns_are_renamed_only_where_they_clash() -> None:
    text = predictions_csv(torch.tensor([[1.0]]), torch.tensor([[2.0, 3.0]]), ["x"], ["x", "z"])
    assert text == "x,predicted_x,z\n1,2,3\n"
