"""Pictures from Python (issue 25): ``result.plot()``, several runs on one figure with
``mlbasics.plot``, a sweep coloured by what was swept, and pictures and run folders written with the
modes the umask gives (as matplotlib's own ``savefig`` does), not ``tempfile``'s 0600/0700."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlbasics
from mlbasics import Experiment, MlbasicsError

pytest.importorskip("matplotlib", reason="pictures need the plot extra: pip install 'mlbasics[plot]'")

TINY = Experiment(dataset="tiny", model="linear", epochs=30, device="cpu")


def test_a_result_draws_itself_and_returns_the_figure(tmp_path: Path) -> None:
    result = mlbasics.train(TINY, lr=0.1)
    figure = result.plot()
    loss_axes = figure.axes[0]
    assert loss_axes.get_title() == "Training loss"
    assert list(loss_axes.get_lines()[0].get_ydata()) == pytest.approx(result.history)
    assert not list(tmp_path.iterdir())  # nothing written without a path
    again = result.plot(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert again is not figure


def test_several_runs_on_one_figure_labelled_by_what_differs(tmp_path: Path) -> None:
    runs = [mlbasics.train(TINY, lr=lr) for lr in (0.1, 0.01)]
    figure = mlbasics.plot(runs, tmp_path / "compare.png")
    [axes] = figure.axes
    assert axes.get_legend_handles_labels()[1] == ["optimizer.lr=0.1", "optimizer.lr=0.01"]
    assert [list(line.get_ydata()) for line in axes.get_lines()] == [
        pytest.approx(run.history) for run in runs
    ]
    assert (tmp_path / "compare.png").exists()
    named = mlbasics.plot(runs, labels=["fast", "slow"])
    assert named.axes[0].get_legend_handles_labels()[1] == ["fast", "slow"]


def test_runs_with_validation_show_it_dashed_in_their_colour() -> None:
    runs = [
        mlbasics.train(
            dataset="synthetic-linear", model="linear", epochs=20, validation=0.2, device="cpu", seed=seed
        )
        for seed in (1, 2)
    ]
    labels = mlbasics.plot(runs).axes[0].get_legend_handles_labels()[1]
    assert labels == ["seed=1", "seed=1 (validation)", "seed=2", "seed=2 (validation)"]


def test_plot_says_what_it_cannot_draw(tmp_path: Path) -> None:
    with pytest.raises(MlbasicsError, match=r"plot: cannot draw a str; give a TrainResult"):
        mlbasics.plot("loss.png")
    with pytest.raises(MlbasicsError, match=r"plot: a list to compare holds TrainResults"):
        mlbasics.plot([])
    result = mlbasics.train(TINY)
    with pytest.raises(MlbasicsError, match=r"plot file '.*loss.jpg' must end in .png"):
        result.plot(tmp_path / "loss.jpg")
    with pytest.raises(MlbasicsError, match=r"plot: 1 labels for 2 results"):
        mlbasics.plot([result, result], labels=["one"])


def test_plot_is_public() -> None:
    assert "plot" in mlbasics.__all__
    assert mlbasics.plot.__module__ == "mlbasics.show.plotting"


def test_a_sweep_is_coloured_by_the_value_swept_with_a_legend() -> None:
    result = mlbasics.sweep(TINY, seeds=range(5), lrs=[0.001, 0.01, 0.1], epochs=20)
    figure = result.plot()
    [axes] = figure.axes
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels[:3] == ["optimizer.lr=0.001", "optimizer.lr=0.01", "optimizer.lr=0.1"]
    assert labels[3].startswith("best: ")
    lines = axes.get_lines()[:-1]  # the last one is the best, drawn in black over the rest
    by_lr: dict[float, set[str]] = {}
    for member, line in zip(result.members, lines, strict=True):
        by_lr.setdefault(member.values["optimizer.lr"], set()).add(line.get_color())
    assert all(len(colours) == 1 for colours in by_lr.values())  # every seed of an lr in its colour
    assert len({colour for colours in by_lr.values() for colour in colours}) == 3


def test_many_values_swept_are_coloured_along_a_map() -> None:
    lrs = [0.001 * 1.5**k for k in range(12)]
    result = mlbasics.sweep(TINY, grid={"optimizer.lr": lrs}, epochs=10)
    [axes] = result.plot().axes
    colours = [tuple(line.get_color()) for line in axes.get_lines()[:-1]]
    assert len(set(colours)) == 12
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels[:2] == [f"optimizer.lr={min(lrs):g}", f"optimizer.lr={max(lrs):g}"]


# -- file modes follow the umask --------------------------------------------------------------


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_pictures_and_run_folders_follow_the_umask(tmp_path: Path, umask: int) -> None:
    file_mode, folder_mode = 0o666 & ~umask, 0o777 & ~umask
    result = mlbasics.train(TINY, save=tmp_path / "run")
    result.plot(tmp_path / "loss.png")
    matplotlib_own = tmp_path / "matplotlib.png"
    result.plot().savefig(matplotlib_own)
    assert _mode(tmp_path / "loss.png") == _mode(matplotlib_own) == file_mode
    folders = [tmp_path / "run", *(p for p in (tmp_path / "run").rglob("*") if p.is_dir())]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(folders) >= 2  # the run folder and its checkpoint
    assert len(files) >= 5
    assert {path.name: oct(_mode(path)) for path in folders} == {
        path.name: oct(folder_mode) for path in folders
    }
    assert {path.name: oct(_mode(path)) for path in files} == {path.name: oct(file_mode) for path in files}
    TINY.save(tmp_path / "experiment.toml")
    assert _mode(tmp_path / "experiment.toml") == file_mode


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_replaced_file_keeps_its_own_mode(tmp_path: Path) -> None:
    target = tmp_path / "experiment.toml"
    target.write_text("")
    target.chmod(0o640)
    TINY.save(target)
    assert _mode(target) == 0o640
    assert Experiment.load(target) == TINY


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_log_a_callback_rewrites_follows_the_umask(tmp_path: Path, umask: int) -> None:
    log = tmp_path / "log.csv"
    mlbasics.train(
        TINY, callbacks=[{"name": "csv-logger", "path": str(log)}], save=tmp_path / "run", checkpoint_every=10
    )
    mlbasics.resume(tmp_path / "run", epochs=40)  # resuming rewrites the log to the checkpoint's epoch
    assert _mode(log) == 0o666 & ~umask
