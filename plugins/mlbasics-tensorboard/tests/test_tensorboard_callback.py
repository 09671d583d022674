"""The callback in real runs: train, read the event files back with TensorBoard's own
EventAccumulator, and compare what TensorBoard would show with the run's own history.

Values are compared exactly: TensorBoard keeps a scalar as a float32 (``simple_value``), and the
losses and metrics mlbasics computes are float32 values already, which go float32 -> Python float
-> float32 unchanged. Only the learning rate, a Python float (0.01), is rounded on the way; it is
compared with its float32 rounding.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import attrs
import numpy as np
import pytest
from mlbasics_tensorboard.callback import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

import mlbasics
from mlbasics import Checkpoint, Experiment, Registry, TrainResult
from mlbasics.cli import main

Reader = Callable[[str | Path], EventAccumulator]


def f32(value: float) -> float:
    """``value`` as TensorBoard stores a scalar: rounded to float32."""
    return float(np.float32(value))


def scalars(events: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in events.Scalars(tag)]


def session_hparams(events: EventAccumulator) -> dict[str, object]:
    """The settings the HParams tab shows for this run, as TensorBoard's plugin parses them."""
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    shown = {}
    for name, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        assert kind is not None
        shown[name] = getattr(value, kind)
    return shown


def _train(registry: Registry, logdir: Path, **settings: object) -> TrainResult:
    experiment = Experiment(callbacks=[{"name": "tensorboard", "logdir": str(logdir)}])
    return mlbasics.train(experiment, registry=registry, **settings)


def test_every_value_at_every_sync_point_is_the_history(
    registry: Registry, tmp_path: Path, read: Reader
) -> None:
    result = _train(
        registry, tmp_path / "run", epochs=300, validation=0.2, test=0.2, metrics=["r2", "mae"], seed=3
    )
    events = read(tmp_path / "run")

    train_losses = scalars(events, "loss/train")
    syncs = [epoch for epoch, _ in train_losses]
    assert syncs[0] == 1
    assert syncs[-1] == result.epochs == 300
    assert syncs == sorted(set(syncs))
    assert len(syncs) < 300  # sync points, not every epoch
    assert train_losses == [(epoch, result.history[epoch - 1]) for epoch in syncs]

    assert scalars(events, "loss/validation") == result.validation_history
    for metric in ("r2", "mae"):
        assert scalars(events, f"{metric}/train") == result.metric_history[metric]
        assert scalars(events, f"{metric}/validation") == result.metric_history[f"validation_{metric}"]
        assert scalars(events, f"{metric}/test") == [(300, result.test_metrics[metric])]
    assert [epoch for epoch, _ in result.validation_history] == syncs
    assert result.test_loss is not None
    assert scalars(events, "loss/test") == [(300, result.test_loss)]
    assert scalars(events, "lr") == [(epoch, f32(0.01)) for epoch in syncs]
    assert set(events.Tags()["scalars"]) == {
        "loss/train", "loss/validation", "loss/test", "lr",
        "r2/train", "r2/validation", "r2/test", "mae/train", "mae/validation", "mae/test",
    }  # fmt: skip


def test_the_fit_is_an_image_for_data_with_one_feature(
    registry: Registry, tmp_path: Path, read: Reader
) -> None:
    result = _train(registry, tmp_path / "run", epochs=50)
    # Logging changes nothing about the training itself.
    plain = mlbasics.train(registry=registry, epochs=50)
    assert result.history == plain.history
    assert all(value.equal(plain.parameters[name]) for name, value in result.parameters.items())
    [image] = read(tmp_path / "run").Images("fit")
    assert image.step == result.epochs
    assert image.encoded_image_string.startswith(b"\x89PNG\r\n\x1a\n")
    # mlbasics.show.plotting's training figure: 11 x 4 inches (loss and fit side by side) at 100 dpi.
    assert (image.width, image.height) == (1100, 400)


def test_no_image_for_several_features_or_when_turned_off(
    registry: Registry, tmp_path: Path, read: Reader
) -> None:
    _train(registry, tmp_path / "linear", epochs=20, dataset="synthetic-linear", model="linear")
    assert read(tmp_path / "linear").Tags()["images"] == []
    experiment = Experiment(
        callbacks=[{"name": "tensorboard", "logdir": str(tmp_path / "off"), "figure": False}]
    )
    mlbasics.train(experiment, registry=registry, epochs=20)
    assert read(tmp_path / "off").Tags()["images"] == []


def test_the_settings_and_final_values_are_hparams(registry: Registry, tmp_path: Path, read: Reader) -> None:
    result = _train(registry, tmp_path / "run", epochs=40, validation=0.25, metrics=["r2"], seed=7)
    events = read(tmp_path / "run")
    settings = session_hparams(events)
    assert settings["model"] == "mlp"
    assert settings["model.hidden"] == "[6, 10, 6]"
    assert settings["model.activation"] == "relu"
    assert settings["optimizer"] == "sgd"
    assert settings["optimizer.lr"] == 0.01  # a double: exact
    assert settings["epochs"] == 40
    assert settings["seed"] == 7
    assert settings["validation"] == 0.25
    assert settings["metrics"] == "r2"
    assert settings["callbacks"] == "tensorboard"
    content = events.PluginTagToContent("hparams")["_hparams_/session_end_info"]
    end = plugin_data_pb2.HParamsPluginData.FromString(content).session_end_info
    assert end.status == api_pb2.STATUS_SUCCESS
    # The final values the HParams tab shows beside the settings are each tag's last scalar.
    assert scalars(events, "loss/validation")[-1] == (40, result.validation_history[-1][1])
    assert scalars(events, "r2/train")[-1] == (40, result.metrics["r2"])
    experiment_off = Experiment(
        callbacks=[{"name": "tensorboard", "logdir": str(tmp_path / "off"), "hparams": False}]
    )
    mlbasics.train(experiment_off, registry=registry, epochs=10)
    with pytest.raises(KeyError):
        read(tmp_path / "off").PluginTagToContent("hparams")


def test_the_command_line_names_it(tmp_path: Path, read: Reader, capsys: pytest.CaptureFixture[str]) -> None:
    logdir = tmp_path / "cli"
    status = main(
        ["train", "--epochs", "120", "--metric", "r2", "--callback", "tensorboard",
         "--set", f"callbacks.tensorboard.logdir={logdir}", "--json"]
    )  # fmt: skip
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    events = read(logdir)
    losses = scalars(events, "loss/train")
    assert losses[-1][0] == 120
    assert losses == [(epoch, data["history"][epoch - 1]) for epoch, _ in losses]
    assert scalars(events, "r2/train") == [tuple(pair) for pair in data["metric_history"]["r2"]]
    assert data["callbacks_components"][0]["plugin"] == "tensorboard"


def test_a_logdir_that_cannot_be_a_folder_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    status = main(
        ["train", "--callback", "tensorboard", "--set", f"callbacks.tensorboard.logdir={taken / 'run'}"]
    )
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mlbasics: error: callback 'tensorboard' from plugin tensorboard")
    assert captured.err.endswith(
        f"ValueError: logdir '{taken / 'run'}' cannot be made: '{taken}' is a file\n"
    )
    assert captured.err.count("\n") == 1


def test_a_logdir_with_a_name_too_long_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operating system answers any use of it, even asking whether it exists, with
    ENAMETOOLONG: the user's input, not the plugin's bug."""
    logdir = tmp_path / ("a" * 300)
    status = main(["train", "--callback", "tensorboard", "--set", f"callbacks.tensorboard.logdir={logdir}"])
    captured = capsys.readouterr()
    assert (status, captured.out) == (2, "")
    assert captured.err == (
        "mlbasics: error: callback 'tensorboard' from plugin tensorboard "
        f"(mlbasics-tensorboard {version('mlbasics-tensorboard')}) refused its params: "
        f"ValueError: logdir '{logdir}': File name too long\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_default_folder_is_new_for_each_run_and_kept_for_its_resume(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: Reader
) -> None:
    monkeypatch.chdir(tmp_path)
    experiment = Experiment(epochs=10, callbacks=["tensorboard"])
    mlbasics.train(experiment, registry=registry)
    mlbasics.train(experiment, registry=registry)  # the same second, most likely: still its own folder
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_mlp_quadratic(-2)?", folder.name), folder.name
        assert scalars(read(folder), "loss/train")[-1][0] == 10

    logger = TensorBoardLogger()
    setup = mlbasics.prepare(experiment, registry)
    logger.on_train_start(setup, 10)
    state = logger.state_dict()
    logger.on_train_end(setup, None)
    assert state == {"logdir": str(logger.folder)}
    resumed = TensorBoardLogger()
    resumed.load_state_dict(json.loads(json.dumps(state)))  # as a run folder keeps it: JSON
    assert resumed.folder == logger.folder
    explicit = TensorBoardLogger(str(tmp_path / "mine"))
    explicit.load_state_dict(state)  # a logdir given explicitly wins
    assert explicit.folder is None


def _next_second() -> None:
    """Event files are read in name order, and a name begins with the second the file was opened:
    a resumed run's file must sort after the first run's, as it does when resumed later on."""
    now = time.time()
    time.sleep(1.001 - (now - int(now)))


@pytest.mark.slow
def test_a_resumed_run_continues_its_folder_and_replaces_a_stale_tail(
    registry: Registry, tmp_path: Path, read: Reader
) -> None:
    logdir, saved = tmp_path / "tb", tmp_path / "run"
    experiment = Experiment(epochs=100, callbacks=[{"name": "tensorboard", "logdir": str(logdir)}])
    mlbasics.train(experiment, registry=registry, save=saved)
    # What a run that went on past this checkpoint and was killed would have left behind.
    _next_second()
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir)) as stale:
        for epoch in range(101, 151):
            stale.add_scalar("loss/train", 1e6, epoch)
    _next_second()
    result = mlbasics.resume(saved, registry=registry, epochs=200)
    assert result.resumed_from == 100

    losses = scalars(read(logdir), "loss/train")
    epochs = [epoch for epoch, _ in losses]
    assert epochs == sorted(set(epochs))  # every sync point once
    assert epochs[-1] == 200
    assert any(epoch <= 100 for epoch in epochs)
    assert any(epoch > 100 for epoch in epochs)
    assert losses == [(epoch, result.history[epoch - 1]) for epoch in epochs]  # no 1e6 left


@pytest.mark.slow
@pytest.mark.skipif(
    "callback_states" not in attrs.fields_dict(Checkpoint),
    reason="this mlbasics does not keep the callbacks' state in its run folders",
)
def test_a_resumed_run_finds_its_default_folder_through_the_callback_state(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: Reader
) -> None:
    monkeypatch.chdir(tmp_path)
    experiment = Experiment(epochs=60, callbacks=["tensorboard"])
    mlbasics.train(experiment, registry=registry, save="saved")
    [folder] = (tmp_path / "runs").iterdir()
    _next_second()
    result = mlbasics.resume("saved", registry=registry, epochs=120)
    assert list((tmp_path / "runs").iterdir()) == [folder]
    losses = scalars(read(folder), "loss/train")
    assert losses[-1][0] == 120
    assert losses == [(epoch, result.history[epoch - 1]) for epoch, _ in losses]
