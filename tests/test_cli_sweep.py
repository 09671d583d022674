"""``mlbasics sweep`` end to end, the grid flags it reads, and the switch for CUDA graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlbasics import Experiment, MlbasicsError
from mlbasics.cli import build_parser
from mlbasics.cli.sweep import parse_grid, parse_numbers, parse_seeds
from mlbasics.cli.train import experiment_from_args
from tests.conftest import run_main

LINEAR = ["--dataset", "tiny", "--model", "linear", "--epochs", "40"]


def test_sweep_prints_the_members_best_first() -> None:
    result = run_main(
        "sweep", *LINEAR, "--seeds", "0-2", "--lrs", "0.01,0.1", "--quiet", env={"COLUMNS": "150"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Sweep, best first" in result.stdout
    assert "6 members, trained as one vmapped ensemble on cpu" in result.stdout
    assert "µs per model-step" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["1", "2", "3", "4", "5", "6"]
    losses = [float(row.split("│")[4]) for row in rows]
    assert losses == sorted(losses)
    assert "best: seed=" in result.stdout


def test_sweep_json_is_machine_readable_and_ranked() -> None:
    result = run_main("sweep", *LINEAR, "--lrs", "0.1,0.01", "--grid", "optimizer.momentum=0,0.5", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["mode"] == "vmap"
    assert data["axes"] == ["optimizer.lr", "optimizer.momentum"]
    losses = [member["final_loss"] for member in data["members"]]
    assert losses == sorted(losses)
    assert len(losses) == 4
    assert "history" not in data["members"][0]
    with_history = json.loads(run_main("sweep", *LINEAR, "--lrs", "0.1", "--json", "--history").stdout)
    assert len(with_history["members"][0]["history"]) == 40


def test_sweep_shows_every_members_metrics() -> None:
    """The table shows each metric on the rows the members are ranked on (validation here); --json
    has them all, and --history each metric's values at the sync points."""
    experiment = ["--dataset", "synthetic-linear", "--model", "linear", "--epochs", "40", "--lr", "0.1"]
    metrics = ["--metric", "r2", "--metric", "mae", "--validation", "0.2", "--set", "log_every=20"]
    shown = run_main(
        "sweep",
        *experiment,
        *metrics,
        "--seeds",
        "0,1",
        "--rank-by",
        "mae",
        "--quiet",
        env={"COLUMNS": "150"},
    )
    assert shown.returncode == 0, shown.stderr
    assert "Sweep, best first (ranked by validation mae)" in shown.stdout
    header = next(line for line in shown.stdout.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "rank", "seed", "final loss", "validation loss", "validation r2", "validation mae",
    ]  # fmt: skip
    rows = [line for line in shown.stdout.splitlines() if line.startswith("│")]
    assert all(0.9 < float(row.split("│")[5]) <= 1 for row in rows)  # lr 0.1 fits a line in 40 epochs
    errors = [float(row.split("│")[6]) for row in rows]
    assert errors == sorted(errors)
    assert ", validation r2 " in shown.stdout.splitlines()[-1]
    assert len(errors) == 2
    spread = f"best {min(errors):.4g}, worst {max(errors):.4g}"  # of two members, no median
    assert f"validation mae: {spread}" in shown.stdout.splitlines()  # the spread of what it ranks by
    data = json.loads(
        run_main("sweep", *experiment, *metrics, "--seeds", "0,1", "--json", "--history").stdout
    )
    assert data["metric_modes"] == {"r2": "max", "mae": "min"}
    member = data["members"][0]
    assert member["metrics"].keys() == {"r2", "mae", "validation_r2", "validation_mae"}
    assert [pair[0] for pair in member["metric_history"]["validation_mae"]] == [20, 40]
    assert member["metric_history"]["validation_mae"][-1][1] == member["metrics"]["validation_mae"]


def test_sweep_says_why_it_trains_one_after_another(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "curves.png"
    result = run_main(
        "sweep", *LINEAR, "--optimizer", "lstsq", "--seeds", "0,1", "--quiet", "--plot", str(plot)
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "mlbasics: note: training the 2 members one after another: optimizer 'lstsq' solves in closed "
        "form: there are no steps to batch\n"
    )
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_sweep_plot_of_many_members(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "many.png"
    result = run_main(
        "sweep", *LINEAR, "--seeds", "0-11", "--lrs", "0.1,5", "--top", "0", "--quiet", "--plot", str(plot)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(diverged)") == 12  # lr 5 on this data: every such member
    assert plot.stat().st_size > 1000


SWEEP_ERRORS = [
    (["--seeds", "0-x"], "mlbasics: error: --seeds: '0-x' is not a seed or a range like 0-9"),
    (["--seeds", "5-1"], "mlbasics: error: --seeds: '5-1' is not a seed or a range like 0-9"),
    (["--lrs", "0.1,fast"], "mlbasics: error: --lrs: 'fast' is not a number"),
    (["--grid", "momentum"], "mlbasics: error: --grid needs KEY=VALUES, got 'momentum'"),
    ([], "mlbasics: error: sweep: nothing to vary; give seeds, lrs or a grid"),
    (
        ["--lrs", "0.1,-1"],
        "mlbasics: error: member optimizer.lr=-1.0: optimizer 'sgd': param 'lr' must be > 0, got -1.0",
    ),
    (["--seeds", "1", "--top", "-1"], "mlbasics: error: --top must be >= 0, got -1"),
    (
        ["--seeds", "1", "--metric", "r2", "--rank-by", "r3"],
        "mlbasics: error: --rank-by r3: the experiment has 'loss', 'r2'",
    ),
]


@pytest.mark.parametrize(("args", "message"), SWEEP_ERRORS, ids=[" ".join(a) for a, _ in SWEEP_ERRORS])
def test_sweep_user_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_main("sweep", *LINEAR, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert result.stdout == ""


def test_seed_lists_and_ranges() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1, 5,7") == [1, 5, 7]
    assert parse_seeds("0-1,10") == [0, 1, 10]
    with pytest.raises(MlbasicsError, match=r"--seeds: '' is not a seed"):
        parse_seeds("1,,2")


def test_numbers_and_grids() -> None:
    assert parse_numbers("0.001, 0.1", "--lrs") == [0.001, 0.1]
    assert parse_grid(["optimizer.momentum=0,0.9", "model.hidden=[[4], [8, 8]]"]) == {
        "optimizer.momentum": [0, 0.9],
        "model.hidden": [[4], [8, 8]],
    }
    assert parse_grid(["model=linear,linear-stack"]) == {"model": ["linear", "linear-stack"]}
    with pytest.raises(MlbasicsError, match="--grid: 'a' is given twice"):
        parse_grid(["a=1", "a=2"])


# -- the CUDA-graph switch ---------------------------------------------------------------------------


def test_cuda_graph_is_on_by_default_and_switched_off_by_flag_or_setting() -> None:
    parser = build_parser()
    assert experiment_from_args(parser.parse_args(["train"])).cuda_graph is True
    assert experiment_from_args(parser.parse_args(["train", "--no-cuda-graph"])).cuda_graph is False
    assert experiment_from_args(parser.parse_args(["sweep", "--no-cuda-graph"])).cuda_graph is False
    assert experiment_from_args(parser.parse_args(["train", "--set", "cuda_graph=false"])).cuda_graph is False


def test_cuda_graph_in_toml(tmp_path: Path) -> None:
    assert "cuda_graph" not in Experiment().to_toml()  # the default is not written out
    off = Experiment(cuda_graph=False)
    assert "cuda_graph = false" in off.to_toml()
    off.save(tmp_path / "e.toml")
    assert Experiment.load(tmp_path / "e.toml") == off
    assert Experiment.from_toml("cuda_graph = true") == Experiment()


def test_cuda_graph_must_be_a_bool() -> None:
    assert Experiment.from_toml('cuda_graph = "no"').problems() == [
        "cuda_graph must be true or false, got 'no'"
    ]
    result = run_main("train", "--set", "cuda_graph=1")
    assert result.returncode == 2
    assert result.stderr == "mlbasics: error: cuda_graph must be true or false, got 1\n"
