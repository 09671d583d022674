"""The hints a student meets in a first hour (issue 25), through the real command in this process
(``mlbasics.cli.main``) or the Python call: each mistake says what to type instead, in one line,
exit status 2, with nothing on stdout and nothing written; a diverged run still shows its loss."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import DataError, DivergenceError, Experiment, ValidationError
from mlbasics.notes import forget_notes
from tests.conftest import run_main

HOUSES = ["--dataset", "csv", "--set", "dataset.path=examples/houses.csv", "--set", "dataset.target=price"]
ROOT = Path(__file__).resolve().parents[1]


def _fails(*args: str, cwd: Path = ROOT) -> str:
    """``mlbasics ARGS``: exit status 2, one line on stderr and no traceback, nothing on stdout."""
    result = run_main(*args, cwd=cwd)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("mlbasics: error: ")
    return result.stderr.strip().removeprefix("mlbasics: error: ")


# -- names and devices --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "MLP"], "unknown model 'MLP'; did you mean 'mlp'?"),
        (["--optimizer", "SGD"], "unknown optimizer 'SGD'; did you mean 'sgd'?"),
        (["--model", "Linear"], "unknown model 'Linear'; did you mean 'linear'?"),
    ],
)
def test_a_name_in_the_wrong_case_suggests_the_lower_case_one(args: list[str], message: str) -> None:
    assert _fails("train", *args, "--epochs", "1", "--quiet") == message


def test_the_python_call_suggests_it_too() -> None:
    with pytest.raises(ValidationError) as error:
        mlbasics.train(dataset="tiny", model="linear", optimizer="SGD", epochs=1, device="cpu")
    assert error.value.problems == ("unknown optimizer 'SGD'; did you mean 'sgd'?",)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_cuda_says_what_to_do_instead() -> None:
    line = _fails("train", "--device", "cuda", "--epochs", "1", "--quiet")
    assert line.startswith("device 'cuda' is not available: no CUDA GPU found (torch ")
    assert line.endswith(
        '; train on the CPU with --device cpu (device="cpu" in Python), or with --device auto, which uses '
        "a GPU only where there is one"
    )


# -- --set: what to type -----------------------------------------------------------------------


def test_a_list_the_shell_split_at_a_space_says_how_to_quote_it() -> None:
    # What `--set model.hidden=[16, 16]` reaches the program as: the shell cut it at the space.
    assert _fails("train", "--set", "model.hidden=[16,", "16]", "--epochs", "1", "--quiet") == (
        "--set model.hidden=[16,: the shell split the value at a space (the rest, '16]', went on as another "
        "word); quote it, --set 'model.hidden=[16, 16]', or leave out the space: --set model.hidden=[16,16]"
    )


def test_the_same_after_a_config_file_and_for_a_grid(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text("epochs = 1\n")
    line = _fails("train", str(config), "--set", "model.hidden=[16,", "16]", "--quiet")
    assert line.startswith("--set model.hidden=[16,: the shell split the value at a space")
    line = _fails("sweep", "--seeds", "0-1", "--grid", "model.hidden=[[4],", "[8]]", "--quiet")
    assert line.startswith("--grid model.hidden=[[4],: the shell split the value at a space")
    assert "--grid 'model.hidden=[[4], [8]]'" in line


def test_a_list_cut_short_in_python_is_refused_too() -> None:
    with pytest.raises(
        ValidationError,
        match=r"--set model\.hidden=\[16,: '\[16,' opens a list, table or string it does not close",
    ):
        Experiment().with_assignments(["model.hidden=[16,"])


def test_a_list_written_without_brackets_shows_how_it_is_written() -> None:
    assert _fails("train", "--set", "model.hidden=16,16", "--epochs", "1", "--quiet") == (
        "model 'mlp': param 'hidden' expected list[int], got '16,16' (str); a list is written in brackets: "
        "[16, 16]"
    )
    with pytest.raises(ValidationError) as error:
        mlbasics.train(model={"name": "mlp", "hidden": 16}, epochs=1, device="cpu")
    assert error.value.problems == (
        "model 'mlp': param 'hidden' expected list[int], got 16 (int); a list is written in brackets: [16]",
    )


def test_a_value_that_is_no_list_at_all_gets_no_made_up_example() -> None:
    line = _fails("train", "--set", "model.hidden=wide", "--epochs", "1", "--quiet")
    assert line == "model 'mlp': param 'hidden' expected list[int], got 'wide' (str)"


def test_a_param_without_its_component_names_the_key_that_reaches_it(tmp_path: Path) -> None:
    assert _fails("train", "--set", "hidden=[16,16]", "--epochs", "1", "--quiet") == (
        "unknown setting 'hidden'; it is a param of model 'mlp': did you mean 'model.hidden'?"
    )
    config = tmp_path / "flat.toml"
    config.write_text("hidden = [16, 16]\n")
    assert _fails("train", str(config), "--quiet") == (
        f"{config}: unknown key 'hidden'; it is a param of model 'mlp': did you mean hidden in the [model] table?"
    )
    with pytest.raises(ValidationError) as error:
        mlbasics.train(momentum=0.9, epochs=1, device="cpu")
    assert error.value.problems == (
        "train() got an unknown setting 'momentum'; it is a param of optimizer 'sgd': did you mean "
        'optimizer={"momentum": ...}?',
    )


# -- CSV files that are not what the csv dataset reads ---------------------------------------------


def test_a_csv_file_without_a_header_row_is_refused(tmp_path: Path) -> None:
    (tmp_path / "grades.csv").write_text("1,52\n2,60\n3,71\n4,80\n")
    line = _fails("train", "--dataset", "csv", "--set", "dataset.path=grades.csv", "--quiet", cwd=tmp_path)
    assert line == (
        "grades.csv, line 1: the first row holds only numbers (1, 52), so it is data, not a header; the csv "
        "dataset needs a header row naming the columns first (such as x,y)"
    )


def test_a_header_of_numbered_columns_among_names_is_still_a_header(tmp_path: Path) -> None:
    (tmp_path / "years.csv").write_text("2023,grade\n1,52\n2,60\n")
    data = mlbasics.build("dataset", "csv", path=str(tmp_path / "years.csv"))
    assert data.feature_names == ("2023",)


@pytest.mark.parametrize(("separator", "named"), [(";", "semicolons (;)"), ("\t", "tabs")])
def test_a_file_with_another_separator_is_named_so(tmp_path: Path, separator: str, named: str) -> None:
    rows = ["hours", "grade"], ["1", "52"], ["2", "60"]
    (tmp_path / "grades.csv").write_text("".join(separator.join(row) + "\n" for row in rows))
    line = _fails("train", "--dataset", "csv", "--set", "dataset.path=grades.csv", "--quiet", cwd=tmp_path)
    assert line == (
        f"grades.csv, line 1: the header is one column, {separator.join(rows[0])!r}: the file separates its "
        f"cells with {named}, and the csv dataset reads commas; save it with commas between the cells (a "
        "spreadsheet's CSV, comma-separated)"
    )
    with pytest.raises(DataError, match="the file separates its cells with"):
        mlbasics.build("dataset", "csv", path=str(tmp_path / "grades.csv"))


def test_a_part_of_a_few_rows_is_said(caplog: pytest.LogCaptureFixture) -> None:
    forget_notes()
    caplog.set_level(logging.WARNING, logger="mlbasics")
    mlbasics.train(dataset="tiny", model="linear", validation=0.5, epochs=2, device="cpu")
    assert [record.getMessage() for record in caplog.records] == [
        "dataset 'tiny': its 3 rows split into 1 training, 2 validation; with so few rows in a part its "
        "loss says little: use more data, or hold out a smaller fraction"
    ]


def test_a_split_with_enough_rows_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    forget_notes()
    caplog.set_level(logging.WARNING, logger="mlbasics")
    mlbasics.train(
        dataset="synthetic-linear", model="linear", validation=0.2, test=0.1, epochs=2, device="cpu"
    )
    mlbasics.train(dataset="tiny", model="linear", epochs=2, device="cpu")  # nothing held out: the lecture's
    assert caplog.records == []


def test_the_command_says_it_as_a_note() -> None:
    result = run_main(
        "train", "--dataset", "tiny", "--model", "linear", "--validation", "0.5", "--epochs", "2", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert "mlbasics: note: dataset 'tiny': its 3 rows split into 1 training, 2 validation" in result.stderr


# -- divergence: the cause, once, and the loss up to it ---------------------------------------------


@pytest.mark.parametrize("batches", [[], ["--batch-size", "32"]], ids=["full batch", "mini-batches"])
@pytest.mark.parametrize("lr", ["0.05", "0.0005"])
def test_columns_on_different_scales_point_at_standardize(batches: list[str], lr: str) -> None:
    """The README's houses table without --standardize: the fix is standardizing its columns,
    whatever the learning rate and whether the first epoch already overflowed."""
    line = _fails("train", *HOUSES, "--model", "linear", "--lr", lr, "--epochs", "50", *batches, "--quiet")
    assert re.fullmatch(
        r"training diverged at epoch \d+ of 50: the loss became (inf|nan) \(.*\); the feature columns' sizes "
        r"are orders of magnitude apart \(sqft about 2\.\d+e\+03, bedrooms about 3\.\d+\), so a learning rate "
        r"small enough for one is too small for the other: standardize them, --standardize features "
        r'\(standardize="features" in Python\)',
        line,
    ), line


def test_the_fix_it_names_is_the_fix() -> None:
    result = run_main(
        *["train", *HOUSES, "--model", "linear", "--lr", "0.05", "--epochs", "50"],
        "--standardize",
        "features",
        "--quiet",
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_the_same_words_in_python() -> None:
    with pytest.raises(DivergenceError, match="standardize them, --standardize features") as error:
        mlbasics.train(
            dataset={"name": "csv", "path": str(ROOT / "examples/houses.csv"), "target": "price"},
            model="linear",
            lr=0.05,
            epochs=50,
            device="cpu",
        )
    assert error.value.suggested_lr is None  # the learning rate is not what to change


def test_mini_batches_that_diverge_in_the_first_epoch_blame_the_rate_not_the_data() -> None:
    with pytest.raises(DivergenceError) as error:
        mlbasics.train(
            dataset="synthetic-linear", model="linear", lr=50.0, batch_size=10, epochs=5, device="cpu"
        )
    message = str(error.value)
    assert (
        "the loss was not finite from the first epoch, whose 10 mini-batch steps already went astray"
        in message
    )
    assert message.endswith("learning rate 50 is too large for this data; try lr ≤ 5")
    assert "check the data" not in message


def test_a_diverged_run_still_draws_its_loss_and_prints_its_json(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic-linear", "--model", "linear", "--lr", "2", "--epochs", "300"]
    drawn = run_main(*args, "--quiet", "--plot", "loss.png", cwd=tmp_path)
    assert drawn.returncode == 2
    assert drawn.stdout == "the loss up to the divergence is drawn in loss.png\n"
    assert drawn.stderr.startswith("mlbasics: error: training diverged at epoch ")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = run_main(*args, "--json", "--plot", "again.png", cwd=tmp_path)
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    stated = data["diverged"]
    assert as_json.stderr == f"mlbasics: error: {stated['message']}\n"
    epoch, history = stated["epoch"], data["history"]
    assert data["epochs"] == len(history) >= epoch  # up to the sync point that found it
    assert history[epoch - 1] is None  # inf: JSON has no such number
    assert all(isinstance(loss, float) and math.isfinite(loss) for loss in history[: epoch - 1])
    assert stated["last_finite_loss"] == history[epoch - 2]
    assert stated["suggested_lr"] is not None
    assert f"try lr ≤ {stated['suggested_lr']:g}" in stated["message"]
    assert data["plot"] == "again.png"
    assert (tmp_path / "again.png").exists()


def test_the_python_error_draws_the_same_picture(tmp_path: Path) -> None:
    with pytest.raises(DivergenceError) as error:
        mlbasics.train(dataset="tiny", model="linear", lr=3.0, epochs=500, device="cpu")
    figure = mlbasics.plot(error.value, tmp_path / "diverged.png")
    [axes] = figure.axes
    assert axes.get_title() == f"Training loss up to the divergence at epoch {error.value.epoch}"
    curve = axes.get_lines()[0].get_ydata()
    assert len(curve) == len(error.value.history)
    assert (tmp_path / "diverged.png").exists()
