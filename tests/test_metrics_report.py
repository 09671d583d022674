"""Where a run's metrics are shown: the summary `mlbasics train` prints and its --json, the run
folder's history.csv (read back and carried on by a resume), the progress bar, the --plot picture
and the result's repr and HTML. The values shown are the result's own (tests/test_metrics.py
checks those against references)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import mlbasics
from mlbasics import Checkpoint, Registry
from mlbasics.errors import DataError
from mlbasics.show.progress import ProgressBar
from tests.conftest import run_main

ARGS = (
    "train", "--dataset", "synthetic-linear", "--model", "linear", "--epochs", "20", "--set", "log_every=5",
    "--validation", "0.2", "--test", "0.1", "--metric", "r2", "--metric", "mae", "--device", "cpu",
)  # fmt: skip
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shown(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run shown as a summary (saved, plotted) and the same run as JSON."""
    folder = tmp_path_factory.mktemp("shown")
    human = run_main(*ARGS, "--quiet", "--save", str(folder / "run"), "--plot", str(folder / "fit.png"))
    assert human.returncode == 0, human.stderr
    machine = run_main(*ARGS, "--json")
    assert machine.returncode == 0, machine.stderr
    return {"out": human.stdout, "json": json.loads(machine.stdout), "folder": folder}


def test_the_json_has_every_metric_its_history_direction_and_provenance(shown: dict[str, Any]) -> None:
    data = shown["json"]
    assert set(data["metrics"]) == {
        *("r2", "mae", "validation_r2", "validation_mae", "test_r2", "test_mae"),
    }
    history = data["metric_history"]
    assert list(history) == ["r2", "mae", "validation_r2", "validation_mae"]
    for name, pairs in history.items():
        assert [epoch for epoch, _ in pairs] == [5, 10, 15, 20], name
        assert data["metrics"][name] == pairs[-1][1]
    assert data["metric_modes"] == {"r2": "max", "mae": "min"}
    assert [(c["name"], c["plugin"]) for c in data["metrics_components"]] == [
        ("r2", "builtins"),
        ("mae", "builtins"),
    ]
    assert [epoch for epoch, _ in data["validation_history"]] == [5, 10, 15, 20]


def test_the_summary_has_a_row_per_metric_and_a_column_per_part(shown: dict[str, Any]) -> None:
    out, values = shown["out"], shown["json"]["metrics"]
    lines = out.splitlines()
    table = out[out.index("\nMetrics") :].splitlines()
    header = next(line for line in table if "metric" in line and "training" in line)
    assert [cell.strip() for cell in header.strip("┃ ").split("┃")] == [
        "metric",
        "training",
        "validation",
        "test",
    ]
    for name, better in (("r2", "higher is better"), ("mae", "lower is better")):
        row = next(line for line in table if f" {name} ({better})" in line)
        cells = [cell.strip() for cell in row.strip("│ ").split("│")]
        expected = [f"{values[key]:.6g}" for key in (name, f"validation_{name}", f"test_{name}")]
        assert cells[1:] == expected
    assert "training and validation after epoch 20, test once at the end" in out
    # the experiment's metrics are listed with the other components, with their plugin
    assert any(line.startswith("│ metric") and "│ r2 " in line and "builtins" in line for line in lines)
    assert f"plot written to {shown['folder'] / 'fit.png'}" in out


def test_a_run_without_metrics_shows_no_metrics_table(registry: Registry) -> None:
    result = run_main(
        "train", "--dataset", "tiny", "--model", "linear", "--epochs", "3", "--quiet", "--device", "cpu"
    )
    assert result.returncode == 0, result.stderr
    assert "Metrics" not in result.stdout
    assert "│ metric" not in result.stdout


def test_a_part_without_rows_has_no_column(registry: Registry) -> None:
    result = run_main(
        "train", "--dataset", "synthetic-linear", "--model", "linear", "--epochs", "3", "--quiet",
        "--device", "cpu", "--metric", "rmse",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "metric" in line and "training" in line)
    assert "validation" not in header
    assert "test" not in header
    assert "training after epoch 3" in result.stdout


def _history(folder: Path) -> list[dict[str, str]]:
    with open(folder / "checkpoint" / "history.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_history_csv_has_a_column_per_metric_filled_at_the_sync_epochs(shown: dict[str, Any]) -> None:
    run = shown["folder"] / "run"
    header = (run / "checkpoint" / "history.csv").read_text().splitlines()[0]
    assert header == "epoch,loss,validation_loss,r2,mae,validation_r2,validation_mae"
    rows = _history(run)
    assert len(rows) == 20
    history = shown["json"]["metric_history"]
    for name, pairs in history.items():
        at = dict(pairs)
        for row in rows:
            epoch = int(row["epoch"])
            assert row[name] == (repr(at[epoch]) if epoch in at else ""), (name, epoch)
    checkpoint = Checkpoint.load(run)
    assert checkpoint.metric_history == {
        name: [tuple(pair) for pair in pairs] for name, pairs in history.items()
    }
    assert checkpoint.validation_history == [tuple(pair) for pair in shown["json"]["validation_history"]]


def test_a_resumed_run_keeps_the_metrics_before_it(registry: Registry, tmp_path: Path) -> None:
    run = tmp_path / "run"
    settings: dict[str, Any] = {
        "dataset": "synthetic-linear",
        "model": "linear",
        "log_every": 5,
        "device": "cpu",
        "validation": 0.2,
        "metrics": ["r2"],
    }
    whole = mlbasics.train(epochs=20, **settings)
    mlbasics.train(epochs=10, save=run, **settings)
    resumed = mlbasics.resume(run, epochs=20)
    assert resumed.metric_history == whole.metric_history
    assert Checkpoint.load(run).metric_history == whole.metric_history
    assert [int(row["epoch"]) for row in _history(run) if row["validation_r2"]] == [5, 10, 15, 20]


def _rewrite(checkpoint: Path, name: str, data: bytes) -> None:
    """Replace one file of a checkpoint and its checksum, as a tool (or an older mlbasics) would."""
    (checkpoint / name).write_bytes(data)
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


def test_history_csv_without_metric_columns_still_reads(registry: Registry, tmp_path: Path) -> None:
    run = tmp_path / "run"
    mlbasics.train(dataset="tiny", model="linear", epochs=4, log_every=2, device="cpu", save=run)
    _rewrite(run / "checkpoint", "history.csv", b"epoch,loss\n1,4.0\n2,3.0\n3,2.0\n4,1.5\n")
    checkpoint = Checkpoint.load(run)
    assert (checkpoint.history, checkpoint.validation_history, checkpoint.metric_history) == (
        [4.0, 3.0, 2.0, 1.5],
        [],
        {},
    )


@pytest.mark.parametrize(
    "header",
    ["epoch,loss,r2,r2", "epoch,loss,,r2", "epoch,loss,loss", "loss,epoch,r2"],
)
def test_a_history_csv_with_a_bad_header_is_named(registry: Registry, tmp_path: Path, header: str) -> None:
    run = tmp_path / "run"
    mlbasics.train(dataset="tiny", model="linear", epochs=1, device="cpu", save=run)
    _rewrite(run / "checkpoint", "history.csv", f"{header}\n1,4.0,,\n".encode())
    with pytest.raises(DataError, match=r"history\.csv, line 1: expected the header 'epoch,loss'"):
        Checkpoint.load(run)


def test_a_history_csv_with_a_bad_metric_value_is_named(registry: Registry, tmp_path: Path) -> None:
    run = tmp_path / "run"
    mlbasics.train(dataset="tiny", model="linear", epochs=1, device="cpu", save=run)
    _rewrite(run / "checkpoint", "history.csv", b"epoch,loss,r2\n1,4.0,high\n")
    with pytest.raises(DataError, match=r"history\.csv, line 2: expected 'epoch,loss,r2', got '1,4.0,high'"):
        Checkpoint.load(run)


def _progress_line(**settings: Any) -> tuple[str, mlbasics.TrainResult]:
    terminal = io.StringIO()
    bar = ProgressBar(Console(file=terminal, width=200))
    result = mlbasics.train(
        dataset="synthetic-linear",
        model="linear",
        epochs=10,
        log_every=5,
        device="cpu",
        progress=bar,
        **settings,
    )
    return terminal.getvalue().strip().splitlines()[-1], result


def test_the_progress_bar_shows_the_first_metric_on_training_and_validation_rows(registry: Registry) -> None:
    line, result = _progress_line(validation=0.2, metrics=["mae", "r2"])
    values = result.metrics
    loss = f"loss {result.final_loss:.6g} validation {result.validation_loss:.6g}"
    first = f"mae {values['mae']:.6g} validation {values['validation_mae']:.6g}"
    assert f"{loss} · {first} " in line
    assert "r2" not in line  # only the first metric


def test_the_progress_bar_without_validation_or_metrics(registry: Registry) -> None:
    line, result = _progress_line(metrics=["r2"])
    assert (
        line.split("━")[-1]
        .strip()
        .startswith(f"loss {result.final_loss:.6g} · r2 {result.metrics['r2']:.6g} ")
    )
    line, result = _progress_line()
    assert "·" not in line


@pytest.mark.parametrize(
    ("settings", "unit"),
    [
        ({}, "steps/s"),  # the lecture's full batch: an epoch is one step
        ({"batch_size": 100}, "steps/s"),  # a batch of all 100 rows: one step too
        ({"batch_size": 8}, "epochs/s"),  # an epoch of mini-batches: the bar counts epochs
    ],
    ids=["full batch", "one batch of all rows", "mini-batches"],
)
def test_the_progress_bar_s_speed_says_what_it_counts(
    registry: Registry, settings: dict[str, Any], unit: str
) -> None:
    line, result = _progress_line(**settings)
    assert "10/10" in line  # what it counts: epochs
    speed = re.search(r"(\S+) (\S+/s)", line)
    assert speed is not None, line
    assert speed.group(2) == unit
    from mlbasics.cli._summary import render_summary

    terminal = io.StringIO()
    Console(file=terminal, width=200).print(render_summary(result))
    assert f" {unit})" in terminal.getvalue()  # the summary after training says the same


def test_the_plot_has_a_panel_per_metric_with_its_values(shown: dict[str, Any], registry: Registry) -> None:
    assert (shown["folder"] / "fit.png").read_bytes().startswith(PNG_SIGNATURE)
    from mlbasics.show.plotting import training_figure

    result = mlbasics.train(
        dataset="quadratic", model="mlp", epochs=30, log_every=10, device="cpu", validation=0.2,
        metrics=["r2", "mae"],
    )  # fmt: skip
    axes = [a for a in training_figure(result).axes if a.get_visible()]
    titles = [a.get_title() for a in axes]
    assert titles == [
        "Training and validation loss",
        "Fit: mlp on quadratic",
        "r2 (higher is better)",
        "mae (lower is better)",
    ]
    for a, name in zip(axes[2:], ["r2", "mae"], strict=True):
        drawn = {
            line.get_label(): list(zip(line.get_xdata(), line.get_ydata(), strict=True)) for line in a.lines
        }
        assert drawn == {
            "training": result.metric_history[name],
            "validation": result.metric_history[f"validation_{name}"],
        }
    assert axes[3].get_yscale() == "log"  # an error that stays positive, like the loss


def test_the_repr_and_html_have_a_line_per_metric(registry: Registry) -> None:
    from mlbasics.show import display

    result = mlbasics.train(
        dataset="synthetic-linear", model="linear", epochs=10, log_every=5, device="cpu", validation=0.2,
        test=0.1, metrics=["r2", "mae", "rmse", "mse", "max-error", "explained-variance"],
    )  # fmt: skip
    lines = repr(result).splitlines()
    assert all(len(line) <= 110 for line in lines)
    n = display.number
    v = result.metrics
    expected = (
        f"  r2          {n(v['r2'])} training, {n(v['validation_r2'])} validation, {n(v['test_r2'])} test"
    )
    assert expected in lines
    assert "  metrics     and max-error, explained-variance (in .metrics)" in lines
    assert (
        len(lines) == 12
    )  # title, optimizer, trained, loss, validation, test, 4 metrics, the rest, parameters
    html = result._repr_html_()
    assert f"{n(v['mae'])} training, {n(v['validation_mae'])} validation" in html
    only = mlbasics.train(dataset="tiny", model="linear", epochs=3, device="cpu", metrics=["r2"])
    assert f"  r2          {n(only.metrics['r2'])} training" in repr(only).splitlines()


def test_the_live_plot_draws_the_first_metric_beside_the_loss(registry: Registry) -> None:
    """What a notebook would show, without a kernel: the live plot made active, its output kept."""
    from mlbasics.show.notebook import LivePlot
    from mlbasics.show.plotting import live_figure

    shown: list[dict[str, str]] = []

    class Kept:
        def due(self) -> bool:
            return True

        def show(self, data: dict[str, str], *, force: bool = False) -> None:
            shown.append(data)

    live = LivePlot()
    live.active = True
    live._output = Kept()  # type: ignore[assignment]
    drawn: list[list[str]] = []
    result = mlbasics.train(
        dataset="synthetic-linear", model="linear", epochs=10, log_every=5, device="cpu", validation=0.2,
        metrics=["rmse", "r2"], callbacks=[live, _Titles(drawn, live_figure)],
    )  # fmt: skip
    assert len(shown) == 3  # two sync points and the end
    rmse = result.metrics["rmse"]
    assert shown[-1]["text/plain"] == f"loss {result.final_loss:.4g}, rmse {rmse:.4g} after epoch 10 of 10"
    assert _png_bytes(shown[-1]["image/png"]).startswith(PNG_SIGNATURE)
    assert drawn[-1] == ["Training and validation loss", "rmse (lower is better)"]


class _Titles(mlbasics.Callback):
    """Draws the live figure at each sync point as the live plot does and keeps its panels' titles."""

    def __init__(self, drawn: list[list[str]], draw: Any) -> None:
        self.drawn, self.draw = drawn, draw

    def on_sync(self, setup: mlbasics.Setup, epoch: int, losses: object) -> None:
        self.drawn.append([axes.get_title() for axes in self.draw(setup, 10).axes])


def _png_bytes(encoded: str) -> bytes:
    import base64

    return base64.b64decode(encoded)
