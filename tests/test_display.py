"""Summaries: a result, sweep, checkpoint, experiment or dataset prints as a few lines, whatever its
size, and shows as an HTML table (with its pictures) in Jupyter; the data stay on the attributes."""

from __future__ import annotations

import base64
import html.parser
import importlib.util
import re
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import Checkpoint, Component, Dataset, Experiment, Registry
from mlbasics.show import display as display_module

TINY = Experiment(
    dataset="tiny", model="linear", optimizer={"name": "sgd", "lr": 0.01}, epochs=2000, device="cpu"
)
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def long_run() -> mlbasics.TrainResult:
    return mlbasics.train(TINY)


def _lines(value: object) -> list[str]:
    return repr(value).splitlines()


class _Html(html.parser.HTMLParser):
    """Collects the text, the table rows and the images of a summary, and checks it is well nested."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.text: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attributes)["src"] or "")
        else:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parsed(markup: str) -> _Html:
    parser = _Html()
    parser.feed(markup)
    parser.close()
    assert parser.open == []
    return parser


def _png(data_url: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    data = base64.b64decode(data_url[len(prefix) :])
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return data


def test_a_run_prints_in_a_few_lines(long_run: mlbasics.TrainResult) -> None:
    lines = _lines(long_run)
    assert len(lines) == 5
    assert all(len(line) <= 110 for line in lines)
    assert lines[0] == "TrainResult: linear on tiny"
    assert lines[1] == "  optimizer   sgd(lr=0.01), loss mse, seed 1"
    assert lines[2].startswith("  trained     2000 epochs on cpu in ")
    first, last = (display_module.number(long_run.history[i]) for i in (0, -1))
    assert lines[3] == f"  loss        {first} at epoch 1 → {last} at epoch 2000"
    weight, bias = long_run.parameters["weight"].item(), long_run.parameters["bias"].item()
    number = display_module.number
    assert lines[4] == f"  parameters  weight [[{number(weight)}]], bias [{number(bias)}]"
    assert len(long_run.history) == 2000  # everything is still there


@pytest.mark.slow
def test_a_10000_epoch_run_prints_in_as_few_lines(registry: Registry) -> None:
    result = mlbasics.train(TINY, epochs=10_000, registry=registry)
    lines = _lines(result)
    assert len(lines) == 5
    assert lines[3].endswith("at epoch 10000")
    assert len(result._repr_html_().splitlines()) == 1


def test_a_result_with_many_parameters_gives_their_count_and_shapes(registry: Registry) -> None:
    result = mlbasics.train(epochs=3, device="cpu", registry=registry)  # the lecture's 1-6-10-6-1 MLP
    lines = _lines(result)
    assert len(lines) <= 8
    total = sum(p.numel() for p in result.parameters.values())
    assert f"{total:,} values in 8 tensors: 0.weight (6, 1), 0.bias (6,)" in lines[-1]
    assert lines[0] == "TrainResult: mlp on quadratic"


def test_a_stopped_or_resumed_run_says_so(registry: Registry, tmp_path: Path) -> None:
    class StopAtOnce(mlbasics.Callback):
        def on_sync(self, setup: mlbasics.Setup, epoch: int, losses: torch.Tensor) -> None:
            raise mlbasics.StopTraining("enough")

    stopped = mlbasics.train(TINY, epochs=20, log_every=5, callbacks=[StopAtOnce()], registry=registry)
    assert "  stopped     enough" in _lines(stopped)
    mlbasics.train(TINY, epochs=5, registry=registry, save=tmp_path / "run")
    resumed = mlbasics.resume(tmp_path / "run", epochs=8, registry=registry)
    assert "  resumed     from epoch 5" in _lines(resumed)
    assert "at epoch 1 → " in repr(resumed)
    assert "at epoch 8" in repr(resumed)


def test_a_sweep_of_200_members_prints_in_a_few_lines(registry: Registry) -> None:
    result = mlbasics.sweep(TINY, seeds=range(100), lrs=[0.01, 0.1], epochs=20, registry=registry)
    lines = _lines(result)
    assert len(lines) <= 12
    assert lines[0] == "SweepResult: 200 members of linear on tiny, over seed × optimizer.lr"
    assert lines[1] == "  swept       seed 0-99; optimizer.lr 0.01, 0.1"  # what varies, with its values ...
    assert lines[2] == "  optimizer   sgd, loss mse"  # ... and what the members share (no lr, no seed)
    best = result.best
    assert lines[6] == f"    1. {best.label}: {display_module.number(best.final_loss)}"
    assert lines[-1] == "  ... 195 more (.ranked(), .members)"
    assert repr(best).startswith(f"SweepMember({best.index}: {best.label}, final loss ")
    markup = result._repr_html_()
    parsed = _parsed(markup)
    assert markup.count("<tr>") <= 10 + 1 + 4  # ten members and a header, four summary rows
    assert len(parsed.images) == (1 if HAS_MATPLOTLIB else 0)


def test_a_sweep_shows_the_spread_of_what_it_is_ranked_by(registry: Registry) -> None:
    """Ranked by the validation loss, its summary's spread and best-first lines are validation losses
    (the training losses of those members are in no order, so their 'median' meant nothing)."""
    result = mlbasics.sweep(
        Experiment(dataset={"name": "synthetic-linear", "noise": 2.0}, model="linear", device="cpu"),
        seeds=range(5), lrs=[0.003, 0.03], epochs=30, validation=0.25, registry=registry,
    )  # fmt: skip
    ranked = result.ranked()
    validation = [member.validation_loss for member in ranked]
    assert all(value is not None for value in validation)
    final = [member.final_loss for member in ranked]
    assert final != sorted(final)  # the case in point: the training losses are not in the ranking's order
    number = display_module.number
    median = sorted(validation)[4:6]  # of 10 members: the mean of the middle two
    lines = _lines(result)
    spread = lines.index("  best first, by validation loss:") - 1  # the summary's last row
    assert lines[spread] == (
        f"  validation loss  best {number(validation[0])}, median {number(sum(median) / 2)}, "
        f"worst {number(validation[-1])}"
    )
    assert lines[spread + 2] == f"   1. {ranked[0].label}: {number(validation[0])}"
    text = _parsed(result._repr_html_()).text
    assert "best first, by validation loss" in text
    header = text.index("rank")
    assert text[header : header + 5] == ["rank", "seed", "optimizer.lr", "final loss", "validation loss"]
    assert text[header + 5 : header + 10] == [
        "1", *(repr(value) for value in ranked[0].values.values()), number(final[0]), number(validation[0]),
    ]  # fmt: skip


def test_a_checkpoint_prints_in_a_few_lines(registry: Registry, tmp_path: Path) -> None:
    mlbasics.train(TINY, epochs=50, registry=registry, save=tmp_path / "run")
    point = Checkpoint.load(tmp_path / "run")
    lines = _lines(point)
    assert len(lines) <= 8
    assert lines[0] == "Checkpoint: linear on tiny, epoch 50 of 50"
    assert f"run         {tmp_path / 'run'} (checkpoint)" in "\n".join(lines)
    assert "weight [[" in lines[-1]
    assert len(_parsed(point._repr_html_()).images) == (1 if HAS_MATPLOTLIB else 0)


def test_an_experiment_prints_as_the_python_that_builds_it() -> None:
    experiment = Experiment(
        dataset={"name": "csv", "path": "d.csv", "target": None},
        optimizer=Component("adam", {"lr": 0.5}),
        log_every=3,
        cuda_graph=False,
    )
    text = repr(experiment)
    assert text == (
        "Experiment(dataset={'name': 'csv', 'path': 'd.csv', 'target': None}, model='mlp', loss='mse', "
        "optimizer={'name': 'adam', 'lr': 0.5}, epochs=10000, device='auto', seed=1, log_every=3, cuda_graph=False)"
    )
    assert eval(text, {"Experiment": Experiment}) == experiment
    assert eval(repr(TINY), {"Experiment": Experiment}) == TINY
    rows = _parsed(experiment._repr_html_()).text
    assert "optimizer" in rows
    assert "adam(lr=0.5)" in rows


def test_a_dataset_prints_its_shape_and_first_rows(registry: Registry) -> None:
    data = registry.build("dataset", "synthetic-linear")
    lines = _lines(data)
    assert lines[0] == "Dataset: 100 rows, 3 features (x1, x2, x3) → y"
    assert lines[1] == "ground truth: weights (1, 2, 3), bias 5"
    assert lines[2].split() == ["x1", "x2", "x3", "y"]
    assert len(lines) == 3 + 5 + 1
    assert lines[-1] == "... 95 more rows (100 in all)"
    parsed = _parsed(data._repr_html_())
    assert "first 10 rows (90 more in .features, .targets)" in parsed.text
    small = Dataset.from_rows([[1.0, 2.0]])
    assert _lines(small) == ["Dataset: 1 row, 1 feature (x) → y", "x  y", "1  2"]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="the pictures need matplotlib (the plot extra)")
def test_a_result_shows_as_a_table_with_its_pictures(long_run: mlbasics.TrainResult) -> None:
    parsed = _parsed(long_run._repr_html_())
    assert parsed.text[0] == "TrainResult: linear on tiny"
    labels = parsed.text[1::2]
    assert labels == ["optimizer", "trained", "loss", "parameters"]
    (picture,) = parsed.images
    data = _png(picture)
    assert len(data) < 200_000  # inline in the notebook: small, not 10,000 points as text


def test_without_matplotlib_the_summary_is_the_table(
    long_run: mlbasics.TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    parsed = _parsed(long_run._repr_html_())
    assert parsed.images == []
    assert parsed.text[0] == "TrainResult: linear on tiny"


def test_the_html_escapes_what_it_shows() -> None:
    markup = display_module.html("<b>", [("a&b", "<script>")])
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    assert re.search(r"&lt;b&gt;", markup)
