"""The run folder: what it holds, how it is replaced atomically, and how damage is caught on reading."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from pathlib import Path

import attrs
import pytest
import safetensors.torch
import torch
from _checkpoints import rewrite

import mlbasics
from mlbasics import Checkpoint, DataError, Experiment, PluginError, Registry
from mlbasics.engine import setup as setup_code
from mlbasics.runs import checkpoints as checkpoints_module
from mlbasics.runs._run_lock import LOCK_FILE
from mlbasics.runs.checkpoints import CHECKPOINT, FILES, MANIFEST, PREVIOUS, write_checkpoint

LINEAR = Experiment(
    dataset="synthetic-linear", model="linear", optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.5}
)


@pytest.fixture
def run(registry: Registry, tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    mlbasics.train(LINEAR, registry=registry, epochs=7, device="cpu", save=folder)
    return folder


def _entries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_run_folder_holds_plain_files_only(run: Path, registry: Registry) -> None:
    # The checkpoint, and the lock a run holds on its folder while it writes there (see _run_lock).
    assert _entries(run) == [
        LOCK_FILE,
        CHECKPOINT,
        *sorted(f"{CHECKPOINT}/{name}" for name in [*FILES, MANIFEST]),
    ]
    folder = run / CHECKPOINT
    assert Experiment.load(folder / "experiment.toml") == LINEAR.with_value("epochs", 7).with_value(
        "device", "cpu"
    )
    lines = (folder / "history.csv").read_text().splitlines()
    assert (lines[0], len(lines)) == ("epoch,loss", 8)
    assert lines[7].startswith("7,")
    weights = safetensors.torch.load_file(folder / "model.safetensors")
    assert set(weights) == {"weight", "bias"}
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 7
    assert state["components"]["optimizer"] == {
        "name": "sgd",
        "params": {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.0},
        "plugin": "builtins",
        "distribution": "mlbasics",  # the built-ins' real provenance, in an isolated registry too
        "version": mlbasics.__version__,
    }
    assert state["data"]["feature_names"] == ["x1", "x2", "x3"]
    tensors = safetensors.torch.load_file(folder / "state.safetensors")
    assert {"optimizer.state.0.momentum_buffer", "optimizer.state.1.momentum_buffer", "rng.torch"} <= set(
        tensors
    )
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["files"] == {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES
    }


def test_reading_never_unpickles(run: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("unpickling was attempted")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    checkpoint = Checkpoint.load(run)
    assert checkpoint.predict([[0.0, 0.0, 0.0]], registry).shape == (1, 1)
    assert mlbasics.resume(run, registry=registry, epochs=9).epochs == 9


def test_a_saved_model_predicts_like_the_trained_one(registry: Registry, tmp_path: Path) -> None:
    result = mlbasics.train(Experiment(epochs=50, device="cpu"), registry=registry, save=tmp_path)
    x = torch.linspace(-2, 2, 9).unsqueeze(1)
    checkpoint = Checkpoint.load(tmp_path)
    assert torch.equal(checkpoint.predict(x, registry), result.predict(x))
    assert checkpoint.model(registry).training is False
    with pytest.raises(mlbasics.ValidationError, match=r"predict needs rows of 1 feature value\(s\) \(x\)"):
        checkpoint.predict([[1.0, 2.0]], registry)


def test_predicting_with_another_plugin_needs_force(run: Path, registry: Registry) -> None:
    checkpoint = Checkpoint.load(run)
    x = [[1.0, 2.0, 3.0]]
    expected = checkpoint.predict(x, registry)
    checkpoint.components["model"] = attrs.evolve(checkpoint.components["model"], plugin="elsewhere")
    with pytest.raises(
        mlbasics.ValidationError,
        match=r"from plugin elsewhere \(mlbasics .*\), .* \(--force uses it anyway\)$",
    ):
        checkpoint.predict(x, registry)
    assert torch.equal(checkpoint.predict(x, registry, force=True), expected)


def test_periodic_checkpoints_replace_each_other(registry: Registry, tmp_path: Path) -> None:
    epochs_seen = []
    real_write = checkpoints_module.write_checkpoint

    def spy(run: Path, setup: mlbasics.Setup) -> Path:
        epochs_seen.append(len(setup.history))
        return real_write(run, setup)

    checkpoints_module.write_checkpoint = spy  # type: ignore[assignment]
    try:
        mlbasics.train(
            LINEAR,
            registry=registry,
            epochs=25,
            log_every=5,
            device="cpu",
            save=tmp_path,
            checkpoint_every=10,
        )
    finally:
        checkpoints_module.write_checkpoint = real_write
    assert epochs_seen == [10, 20, 25]
    assert _entries(tmp_path) == [
        LOCK_FILE,
        CHECKPOINT,
        *sorted(f"{CHECKPOINT}/{name}" for name in [*FILES, MANIFEST]),
    ]


def test_the_data_are_fingerprinted_once_per_run(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_fingerprint = setup_code.data_fingerprint

    def spy(features: torch.Tensor, targets: torch.Tensor, classes: tuple[str, ...] | None = None) -> str:
        calls.append(len(features))
        return real_fingerprint(features, targets, classes)

    monkeypatch.setattr(setup_code, "data_fingerprint", spy)
    mlbasics.train(LINEAR, registry=registry, epochs=6, device="cpu", save=tmp_path, checkpoint_every=2)
    assert len(calls) == 1  # not once per checkpoint written
    mlbasics.resume(tmp_path, registry=registry, epochs=10, checkpoint_every=2)
    assert len(calls) == 2  # the resumed run's: compared with the checkpoint's, then written


def test_a_checkpoint_every_that_log_every_does_not_divide_still_writes_at_its_multiples(
    registry: Registry, tmp_path: Path
) -> None:
    seen = []

    class Spy(mlbasics.Checkpointer):
        def _write(self, setup: mlbasics.Setup) -> None:
            seen.append(len(setup.history))
            super()._write(setup)

    setup = mlbasics.prepare(LINEAR.with_value("epochs", 30).with_value("log_every", 4), registry)
    mlbasics.fit(setup, [Spy(tmp_path, every=10)])
    assert seen == [10, 20, 30]  # sync points fall on the checkpointer's multiples too (and the end)


def test_a_short_checkpoint_interval_makes_the_loop_sync_as_often(registry: Registry, tmp_path: Path) -> None:
    recorder = []

    class Syncs(mlbasics.Callback):
        def on_sync(self, setup: mlbasics.Setup, epoch: int, losses: torch.Tensor) -> None:
            recorder.append(epoch)

    setup = mlbasics.prepare(LINEAR.with_value("epochs", 1000).with_value("device", "cpu"), registry)
    mlbasics.fit(setup, [Syncs(), mlbasics.Checkpointer(tmp_path, every=3)])  # log_every unset
    assert {3, 6, 9, 12} <= set(recorder)  # the sync points fall on the multiples of 3
    assert max(b - a for a, b in zip([0, *recorder], recorder, strict=False)) == 3
    assert Checkpoint.load(tmp_path).epoch == 1000


def test_a_crash_while_writing_leaves_the_previous_checkpoint_whole(
    run: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {name: (run / CHECKPOINT / name).read_bytes() for name in [*FILES, MANIFEST]}
    setup = mlbasics.prepare(LINEAR.with_value("epochs", 3).with_value("device", "cpu"), registry)
    mlbasics.fit(setup)
    real = checkpoints_module._write_synced
    written = []

    def crash_on_third_file(path: Path, data: bytes) -> None:
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(path)
        real(path, data)

    monkeypatch.setattr(checkpoints_module, "_write_synced", crash_on_third_file)
    with pytest.raises(mlbasics.SaveError, match=r"cannot write a checkpoint \(No space left on device\)$"):
        write_checkpoint(run, setup)
    assert {name: (run / CHECKPOINT / name).read_bytes() for name in before} == before
    assert _entries(run) == [
        LOCK_FILE,
        CHECKPOINT,
        *sorted(f"{CHECKPOINT}/{name}" for name in before),
    ]  # no temporary left
    assert Checkpoint.load(run).epoch == 7


def test_a_crash_between_the_renames_falls_back_to_the_previous_checkpoint(
    run: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = mlbasics.prepare(LINEAR.with_value("epochs", 3).with_value("device", "cpu"), registry)
    mlbasics.fit(setup)
    real_replace = os.replace
    calls = []

    def crash_on_second_rename(source: Path, target: Path) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. a second Ctrl-C
        real_replace(source, target)

    monkeypatch.setattr(checkpoints_module.os, "replace", crash_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(run, setup)
    monkeypatch.setattr(checkpoints_module.os, "replace", real_replace)
    assert not (run / CHECKPOINT).exists()
    assert Checkpoint.load(run).epoch == 7  # read from checkpoint.previous
    write_checkpoint(run, setup)  # the next write puts things in order
    assert Checkpoint.load(run).epoch == 3
    assert not (run / PREVIOUS).exists()


def test_a_temporary_folder_left_by_a_killed_process_is_ignored_then_removed(
    run: Path, registry: Registry
) -> None:
    stale = run / ".checkpoint-dead.tmp"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    assert Checkpoint.load(run).epoch == 7
    mlbasics.resume(run, registry=registry, epochs=8)
    assert not stale.exists()


@pytest.mark.parametrize(
    ("name", "damage", "fix_checksum", "message"),
    [
        ("model.safetensors", lambda b: b[:-9], False, r"model\.safetensors: does not match its SHA-256"),
        (
            "history.csv",
            lambda b: b.replace(b"3,", b"3,1", 1),
            False,
            r"history\.csv: does not match its SHA-256",
        ),
        ("model.safetensors", lambda b: b[:-9], True, r"model\.safetensors: not a valid safetensors file"),
        (
            "history.csv",
            lambda b: b"epoch,loss\n1,2.0\n",
            True,
            r"history\.csv: 1 epochs, but the checkpoint is at epoch 7",
        ),
        ("history.csv", lambda b: b"epoch,loss\n1,x\n", True, r"history\.csv, line 2: expected 'epoch,loss'"),
        ("state.json", lambda b: b"{", True, r"state\.json, line 1: not valid JSON"),
        (
            "state.json",
            lambda b: b'{"format": "mlbasics-checkpoint"}',
            True,
            r"state\.json: 'epoch' is missing or malformed",
        ),
        ("experiment.toml", lambda b: b"epochs = [", True, r"experiment\.toml: invalid TOML"),
        (
            "experiment.toml",
            lambda b: b.replace(b'"linear"', b'"mlp"'),
            True,
            r"state\.json: records model 'linear', but experiment\.toml names 'mlp'",
        ),
        (MANIFEST, lambda b: b"[]", False, r"manifest\.json: not an mlbasics checkpoint manifest"),
        (
            MANIFEST,
            lambda b: b.replace(b'"format_version": 1', b'"format_version": 9'),
            False,
            r"written by a newer mlbasics \(checkpoint format 9",
        ),
    ],
)
def test_damaged_checkpoints_name_the_file(
    run: Path, name: str, damage: object, fix_checksum: bool, message: str
) -> None:
    original = (run / CHECKPOINT / name).read_bytes()
    rewrite(run, name, damage(original), fix_checksum=fix_checksum)  # type: ignore[operator]
    with pytest.raises(DataError, match=message):
        Checkpoint.load(run)


def test_tampered_optimizer_state_is_refused(run: Path, registry: Registry) -> None:
    state_path = run / CHECKPOINT / "state.json"
    text = state_path.read_text().replace(
        '"$tensor": "optimizer.state.0.momentum_buffer"', '"$tensor": "nope"'
    )
    rewrite(run, "state.json", text.encode(), fix_checksum=True)
    with pytest.raises(
        DataError, match=r"state\.json: refers to tensor 'nope', which is not in the checkpoint"
    ):
        mlbasics.resume(run, registry=registry, epochs=9)


@pytest.mark.parametrize(("key", "what"), [("optimizer", "optimizer"), ("rng", "random")])
def test_a_state_nested_too_deeply_to_decode_is_refused(
    run: Path, registry: Registry, key: str, what: str
) -> None:
    state = json.loads((run / CHECKPOINT / "state.json").read_text())
    nested: object = "x"
    for _ in range(900):  # JSON reads it; decoding it back would pass Python's recursion limit
        nested = [nested]
    if key == "rng":
        state["rng"]["torch"] = nested
    else:
        state["optimizer"] = nested
    rewrite(run, "state.json", json.dumps(state).encode(), fix_checksum=True)
    with pytest.raises(DataError, match=rf"state\.json: the {what} state is nested too deeply$"):
        mlbasics.resume(run, registry=registry, epochs=9)


@pytest.mark.parametrize("missing", [*FILES, MANIFEST])
def test_a_missing_file_is_named(run: Path, missing: str) -> None:
    (run / CHECKPOINT / missing).unlink()
    with pytest.raises(DataError, match=re.escape(f"{missing}: missing; the checkpoint is incomplete")):
        Checkpoint.load(run)


def test_folders_that_are_not_runs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: no such run folder"):
        Checkpoint.load(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"holds no checkpoint \(no checkpoint/ folder\)"):
        Checkpoint.load(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match=r"file: not a folder"):
        Checkpoint.load(tmp_path / "file")


def test_a_checkpoint_interval_needs_a_folder(registry: Registry) -> None:
    with pytest.raises(mlbasics.ValidationError, match=r"checkpoint_every needs save"):
        mlbasics.train(LINEAR, registry=registry, epochs=2, checkpoint_every=1)


def test_saving_over_another_run_is_refused_before_training(run: Path, registry: Registry) -> None:
    before = (run / CHECKPOINT / MANIFEST).read_bytes()
    with pytest.raises(DataError, match=r"already holds a run \(epoch 7\); continue it with --resume"):
        mlbasics.train(LINEAR, registry=registry, epochs=2, save=run)
    assert (run / CHECKPOINT / MANIFEST).read_bytes() == before
    mlbasics.train(LINEAR, registry=registry, epochs=2, save=run, overwrite=True)
    assert Checkpoint.load(run).epoch == 2


def test_an_optimizer_state_that_needs_pickle_is_refused(tmp_path: Path) -> None:
    class Odd(torch.optim.SGD):
        def state_dict(self) -> dict[str, object]:
            state = super().state_dict()
            state["param_groups"][0]["schedule"] = object()
            return state

    spec = mlbasics.ComponentSpec(
        kind="optimizer", name="odd", factory=lambda p: Odd(p, lr=0.1), summary="odd"
    )
    plugin = type("P", (), {"mlbasics_optimizers": staticmethod(mlbasics.hookimpl(lambda: [spec]))})()
    registry = Registry.isolated(plugin)
    with pytest.raises(
        PluginError, match=r"optimizer 'odd' cannot be checkpointed: .*schedule is of type object"
    ):
        mlbasics.train(LINEAR, registry=registry, optimizer="odd", epochs=2, save=tmp_path / "run")
    assert not (tmp_path / "run" / CHECKPOINT).exists()
