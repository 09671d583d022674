"""The experiment's callbacks across a save and resume: their state is saved with each checkpoint
(JSON in state.json, tensors in state.safetensors, both under the manifest's checksums) and taken
back by ``resume``, so a run interrupted mid-way stops, decays and logs at the same epochs as one
never interrupted -- bitwise, on the CPU."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from _checkpoints import rewrite

import mlbasics
from mlbasics import Callback, Checkpoint, DataError, Experiment, Registry, Setup
from mlbasics.core.callbacks import CallbackError
from mlbasics.runs.checkpoints import CHECKPOINT
from tests.conftest import run_main

REGISTRY = Registry.isolated()

#: Converges within ~150 epochs (see tests/test_callbacks.py), so early stopping stops it.
EXPERIMENT = Experiment(
    dataset={"name": "synthetic-linear", "n": 40, "weights": [1.0, -2.0], "noise": 0.5},
    model="linear",
    optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.5},
    epochs=1000,
    validation=0.25,
    metrics=["r2"],
    device="cpu",
)
STOPPING = {"name": "early-stopping", "patience": 20, "check_every": 5, "min_delta": 1e-4}


class CrashAt(Callback):
    """Fails like a crash (not a clean stop) once training reaches ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch >= self.epoch:
            raise RuntimeError("simulated crash")


def _crash_and_resume(
    run: Path, callbacks: list[Any], *, crash_at: int, every: int, **settings: Any
) -> mlbasics.TrainResult:
    with pytest.raises(CallbackError, match="simulated crash"):
        mlbasics.train(
            EXPERIMENT,
            registry=REGISTRY,
            save=run,
            checkpoint_every=every,
            callbacks=[*callbacks, CrashAt(crash_at)],
            **settings,
        )
    torch.rand(7)  # a resumed process starts with other generator states
    return mlbasics.resume(run, registry=REGISTRY)


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_early_stopping_resumed_mid_run_stops_at_the_same_epoch_with_the_same_weights(tmp_path: Path) -> None:
    straight = mlbasics.train(EXPERIMENT, registry=REGISTRY, callbacks=[STOPPING])
    assert straight.epochs < 1000  # it does stop early
    crash = straight.epochs - 7  # after the best epoch's check, before the stop
    every = 10
    resumed = _crash_and_resume(tmp_path / "run", [STOPPING], crash_at=crash, every=every)
    assert resumed.resumed_from == (crash - 1) // every * every
    assert resumed.epochs == straight.epochs
    assert resumed.stopped == straight.stopped
    assert resumed.history == straight.history
    _assert_bitwise_equal(resumed.parameters, straight.parameters)


def test_the_best_weights_travel_in_the_checkpoint_as_safetensors(tmp_path: Path) -> None:
    run = tmp_path / "run"
    mlbasics.train(
        EXPERIMENT, registry=REGISTRY, epochs=40, save=run, callbacks=[STOPPING | {"patience": 1000}]
    )
    folder = run / CHECKPOINT
    state = json.loads((folder / "state.json").read_text())
    [entry] = state["callbacks"]
    assert entry["name"] == "early-stopping"
    tensors = safetensors.torch.load_file(folder / "state.safetensors")
    weights = {
        key.rsplit(".", 1)[-1]: t for key, t in tensors.items() if key.startswith("callbacks.0.best_weights.")
    }
    assert set(weights) == {"weight", "bias"}


@pytest.mark.parametrize(
    "schedule",
    [
        {"name": "lr-step", "step_size": 15, "gamma": 0.5},
        {"name": "lr-cosine", "every": 5},
        {"name": "lr-plateau", "factor": 0.5, "patience": 20, "min_delta": 1e-3, "check_every": 5},
    ],
)
def test_a_schedule_resumed_mid_run_decays_at_the_same_epochs(
    tmp_path: Path, schedule: dict[str, Any]
) -> None:
    settings = {"epochs": 120}
    straight = mlbasics.train(EXPERIMENT, registry=REGISTRY, callbacks=[schedule], **settings)
    resumed = _crash_and_resume(tmp_path / "run", [schedule], crash_at=77, every=20, **settings)
    assert resumed.resumed_from == 60
    assert resumed.history == straight.history
    _assert_bitwise_equal(resumed.parameters, straight.parameters)


@pytest.mark.parametrize(("name", "suffix"), [("csv-logger", "csv"), ("jsonl-logger", "jsonl")])
def test_a_log_resumed_mid_run_has_the_rows_of_one_never_interrupted(
    tmp_path: Path, name: str, suffix: str
) -> None:
    def rows(path: Path) -> list[str]:  # each row without its seconds, the one column that differs
        return [
            line.rsplit(",", 1)[0] if suffix == "csv" else json.dumps(json.loads(line) | {"seconds": 0})
            for line in path.read_text().splitlines()
        ]

    straight_log, resumed_log = tmp_path / f"straight.{suffix}", tmp_path / f"resumed.{suffix}"
    settings = {"epochs": 60}
    mlbasics.train(
        EXPERIMENT,
        registry=REGISTRY,
        callbacks=[{"name": name, "path": str(straight_log), "every": 5}],
        **settings,
    )
    log = {"name": name, "path": str(resumed_log), "every": 5}
    _crash_and_resume(
        tmp_path / "run", [log], crash_at=37, every=20, **settings
    )  # rows 25..35 came after the checkpoint
    assert rows(resumed_log) == rows(straight_log)
    assert len(rows(straight_log)) == (1 if suffix == "csv" else 0) + 12


def test_a_callback_state_edited_in_the_checkpoint_is_caught(tmp_path: Path) -> None:
    run = tmp_path / "run"
    mlbasics.train(EXPERIMENT, registry=REGISTRY, epochs=20, save=run, callbacks=[STOPPING])
    state = json.loads((run / CHECKPOINT / "state.json").read_text())
    state["callbacks"][0]["state"] = {"$dict": [["best", "not a number"]]}
    edited = json.dumps(state).encode()
    rewrite(run, "state.json", edited, fix_checksum=False)
    with pytest.raises(DataError, match=r"state.json: does not match its SHA-256"):
        Checkpoint.load(run)
    rewrite(run, "state.json", edited, fix_checksum=True)  # a careful forger: the content is checked
    with pytest.raises(
        DataError,
        match=r"state.json: the state of callback 'early-stopping' from plugin builtins does not fit it",
    ):
        mlbasics.resume(run, registry=REGISTRY, epochs=40)


class InterruptAt(Callback):
    """Asks the loop to stop as SIGINT would, at the sync point of ``epoch``."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch == self.epoch:
            setup.interrupt.request(signal.SIGINT)


def test_early_stopping_interrupted_between_its_checks_resumes_exactly(tmp_path: Path) -> None:
    straight = mlbasics.train(EXPERIMENT, registry=REGISTRY, callbacks=[STOPPING])
    run = tmp_path / "run"
    stopped_at = straight.epochs - 13  # not a multiple of check_every: between two checks
    interrupted = mlbasics.train(
        EXPERIMENT, registry=REGISTRY, log_every=1, save=run, callbacks=[STOPPING, InterruptAt(stopped_at)]
    )
    assert interrupted.epochs == stopped_at
    resumed = mlbasics.resume(run, registry=REGISTRY, log_every=1)
    assert (resumed.epochs, resumed.stopped) == (straight.epochs, straight.stopped)
    assert resumed.history == straight.history
    _assert_bitwise_equal(resumed.parameters, straight.parameters)


def test_a_stopped_run_resumed_goes_on_from_the_best_weights_with_its_patience_anew(tmp_path: Path) -> None:
    run = tmp_path / "run"
    stopped = mlbasics.train(EXPERIMENT, registry=REGISTRY, save=run, callbacks=[STOPPING])
    saved = Checkpoint.load(run)
    assert saved.epoch == stopped.epochs
    _assert_bitwise_equal(saved.weights, stopped.parameters)  # the restored weights were saved
    resumed = mlbasics.resume(run, registry=REGISTRY)
    assert resumed.resumed_from == stopped.epochs
    assert resumed.epochs >= stopped.epochs + STOPPING["patience"]


SCHEDULED = """
epochs = 40
device = "cpu"
log_every = 10

[dataset]
name = "synthetic-linear"
n = 20

[model]
name = "linear"

[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.5

[[callbacks]]
name = "lr-step"
step_size = 15
gamma = 0.5

[[callbacks]]
name = "csv-logger"
path = "LOG"
every = 5
"""


def test_callbacks_from_toml_go_on_from_a_run_folder_on_the_command_line(tmp_path: Path) -> None:
    """Trained to 40 epochs, saved, then resumed to 80: the same history, weights and log rows as
    80 epochs straight (the schedule's rates and the log's rows taken up where they were)."""

    def train(name: str, *args: str) -> dict[str, Any]:
        config = tmp_path / f"{name}.toml"
        config.write_text(SCHEDULED.replace("LOG", str(tmp_path / f"{name}.csv")))
        done = run_main("train", str(config), "--json", *args)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    straight = train("straight", "--epochs", "80")
    train("resumed", "--save", str(tmp_path / "run"))
    done = run_main("train", "--resume", str(tmp_path / "run"), "--epochs", "80", "--json")
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert resumed["resumed_from"] == 40
    assert resumed["history"] == straight["history"]
    assert resumed["parameters"] == straight["parameters"]

    def rows(name: str) -> list[str]:
        return [line.rsplit(",", 1)[0] for line in (tmp_path / f"{name}.csv").read_text().splitlines()]

    assert rows("resumed") == rows("straight")
    assert len(rows("straight")) == 1 + 16


class Unsaveable(Callback):
    def state_dict(self) -> dict[str, Any]:
        return {"handle": object()}


class UnsaveablePlugin:
    @mlbasics.hookimpl
    def mlbasics_callbacks(self) -> list[mlbasics.ComponentSpec]:
        return [mlbasics.ComponentSpec(kind="callback", name="unsaveable", factory=Unsaveable, summary="x")]


def test_a_callback_whose_state_cannot_be_saved_is_named_and_nothing_half_written(tmp_path: Path) -> None:
    registry = Registry.isolated(UnsaveablePlugin(), strict=False)
    run = tmp_path / "run"
    with pytest.raises(CallbackError) as caught:
        mlbasics.train(
            EXPERIMENT, registry=registry, epochs=20, save=run, checkpoint_every=10, callbacks=["unsaveable"]
        )
    assert str(caught.value).startswith(
        "callback 'unsaveable' from plugin UnsaveablePlugin failed saving its state: TypeError: callbacks.0.handle is of type object"
    )
    assert not (run / CHECKPOINT).exists()
