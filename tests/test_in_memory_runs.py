"""Run folders of data held in memory: the experiment records the data (shapes, names, SHA-256)
and never holds them; predict needs only the folder; resume takes the same arrays again and
refuses others; the command line says what to do with such a folder."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch

import mlbasics
from mlbasics import Checkpoint, ValidationError
from tests.conftest import run_main

SETTINGS: dict[str, Any] = {"model": "linear", "optimizer": {"name": "sgd", "lr": 0.05}}


def house_frame(n: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    area, rooms = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    return pd.DataFrame({"area": area, "rooms": rooms, "price": 3 * area - rooms + 2})


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, pd.DataFrame, mlbasics.TrainResult]:
    frame = house_frame()
    run = tmp_path / "run"
    result = mlbasics.train(dataset=frame, target="price", epochs=40, save=run, **SETTINGS)
    return run, frame, result


def test_the_experiment_records_the_data_and_the_folder_holds_none(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult],
) -> None:
    run, frame, _ = saved
    recorded = tomllib.loads((run / "checkpoint" / "experiment.toml").read_text())["dataset"]
    features = torch.tensor(frame[["area", "rooms"]].to_numpy(), dtype=torch.float32).contiguous()
    targets = torch.tensor(frame[["price"]].to_numpy(), dtype=torch.float32).contiguous()
    # The hash is the SHA-256 of the two float32 tensors saved as one safetensors file.
    expected = hashlib.sha256(safetensors.torch.save({"features": features, "targets": targets})).hexdigest()
    assert recorded == {
        "name": "in-memory",
        "features": [30, 2],
        "targets": [30, 1],
        "feature_names": ["area", "rooms"],
        "target_names": ["price"],
        "sha256": expected,
    }
    files = sorted(path.name for path in (run / "checkpoint").iterdir())
    assert files == [
        "experiment.toml",
        "history.csv",
        "manifest.json",
        "model.safetensors",
        "state.json",
        "state.safetensors",
    ]
    sizes = sum(path.stat().st_size for path in (run / "checkpoint").iterdir())
    assert sizes < features.numel() * 4 + 20_000  # weights and state: no copy of the data


def test_predict_works_from_the_folder_alone(saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult]) -> None:
    run, frame, result = saved
    checkpoint = Checkpoint.load(run)
    assert checkpoint.feature_names == ("area", "rooms")
    rows = frame[["area", "rooms"]].head(3)
    assert torch.equal(checkpoint.predict(rows), result.predict(rows))
    done = run_main("predict", str(run), "--x", "0.5,0.25")
    assert done.returncode == 0, done.stderr
    header, line = done.stdout.splitlines()
    assert header == "area,rooms,price"
    assert line.startswith("0.5,0.25,")


def test_resume_takes_the_same_arrays_and_ends_as_one_run(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult], tmp_path: Path
) -> None:
    run, frame, _ = saved
    resumed = mlbasics.resume(run, dataset=frame, target="price", epochs=80)
    whole = mlbasics.train(dataset=frame, target="price", epochs=80, **SETTINGS)
    assert resumed.history == whole.history  # bitwise, on the CPU
    assert Checkpoint.load(run).epoch == 80
    # Another form of the same values is the same data: arrays in place of the DataFrame.
    x, y = frame[["area", "rooms"]].to_numpy(), frame["price"].to_numpy()
    with pytest.raises(
        ValidationError, match=r"the feature names are \['x1', 'x2'\] now but were \['area', 'rooms'\]"
    ):
        mlbasics.resume(run, dataset=(x, y), epochs=90)
    named = mlbasics.Dataset.from_arrays(x, y, feature_names=["area", "rooms"], target_names=["price"])
    assert mlbasics.resume(run, dataset=named, epochs=90).epochs == 90


def test_resume_refuses_other_values_by_their_hash(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult],
) -> None:
    run, frame, _ = saved
    changed = frame.copy()
    changed.loc[3, "area"] += 0.5
    with pytest.raises(
        ValidationError,
        match=r"the arrays hold other values than those the run was trained on \(SHA-256 [0-9a-f]{12}\.\.\. now",
    ):
        mlbasics.resume(run, dataset=changed, target="price", epochs=80)
    with pytest.raises(ValidationError, match=r"the features are shaped \(29, 2\) now but were \(30, 2\)"):
        mlbasics.resume(run, dataset=frame.head(29), target="price", epochs=80)
    assert Checkpoint.load(run).epoch == 40  # nothing was trained or written


def test_resume_without_the_data_says_what_to_pass(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult],
) -> None:
    run, _, _ = saved
    with pytest.raises(ValidationError) as raised:
        mlbasics.resume(run, epochs=80)
    assert str(raised.value) == (
        f"cannot resume {run}: dataset 'in-memory' is data that was held in memory (30 rows x 2 features "
        f"-> price), which files do not keep: give the same arrays again in Python, "
        f"mlbasics.resume({str(run)!r}, dataset=(X, y))"
    )


def test_the_command_line_says_how_to_resume_such_a_folder(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult],
) -> None:
    run, _, _ = saved
    done = run_main("train", "--resume", str(run), "--epochs", "80")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"mlbasics: error: cannot resume {run}: dataset 'in-memory' is data")
    assert lines[0].endswith(f"mlbasics.resume({str(run)!r}, dataset=(X, y))")
    assert Checkpoint.load(run).epoch == 40
    config = run.parent / "experiment.toml"
    config.write_bytes((run / "checkpoint" / "experiment.toml").read_bytes())
    done = run_main("train", str(config))
    assert done.returncode == 2
    assert (
        "dataset 'in-memory' is data that was held in memory (30 rows x 2 features -> price)" in done.stderr
    )
    assert "mlbasics.train(dataset=(X, y))" in done.stderr


def test_held_out_data_are_recorded_and_asked_for_again(tmp_path: Path) -> None:
    frame, held = house_frame(), house_frame(10, seed=1)
    run = tmp_path / "run"
    mlbasics.train(dataset=frame, target="price", validation=held, epochs=20, save=run, **SETTINGS)
    recorded = tomllib.loads((run / "checkpoint" / "experiment.toml").read_text())["dataset"]
    assert recorded["validation_rows"] == 10
    assert len(recorded["validation_sha256"]) == 64
    with pytest.raises(
        ValidationError, match=r"dataset=\(X, y\), validation=\(X_validation, y_validation\)\)$"
    ):
        mlbasics.resume(run, epochs=40)
    with pytest.raises(
        ValidationError, match="the run had 10 validation rows given as data: pass them again"
    ):
        mlbasics.resume(run, dataset=frame, target="price", epochs=40)
    resumed = mlbasics.resume(run, dataset=frame, target="price", validation=held, epochs=40)
    assert resumed.split_sizes["validation"] == 10
    assert len(resumed.validation_history) > 1


@pytest.mark.parametrize("given", [[[1.0]], np.zeros((2, 3)), 2.5, pd.DataFrame({"area": [1.0]})])
def test_checkpoint_and_result_refuse_the_same_inputs_in_the_same_words(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult], given: Any
) -> None:
    run, _, result = saved
    with pytest.raises(ValidationError) as from_result:
        result.predict(given)
    with pytest.raises(ValidationError) as from_folder:
        Checkpoint.load(run).predict(given)
    assert str(from_folder.value) == str(from_result.value)
    assert str(from_result.value).startswith("predict needs rows of 2 feature value(s) (area, rooms)")


def test_checkpoint_and_result_take_the_same_inputs(
    saved: tuple[Path, pd.DataFrame, mlbasics.TrainResult],
) -> None:
    run, frame, result = saved
    checkpoint = Checkpoint.load(run)
    for given in (
        [0.5, 0.25],
        [[0.5, 0.25]],
        np.array([[0.5, 0.25]]),
        torch.tensor([0.5, 0.25]),
        frame.head(1),
    ):
        assert torch.equal(checkpoint.predict(given), result.predict(given))
