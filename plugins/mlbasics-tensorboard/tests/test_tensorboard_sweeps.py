"""log_sweep: one run per member, read back with TensorBoard's EventAccumulator and compared with
the members' histories (exactly: float32 values, stored as float32; see test_tensorboard_callback)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from mlbasics_tensorboard import log_sweep
from mlbasics_tensorboard.sweeps import logged_epochs
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import mlbasics
from mlbasics import Registry

Reader = Callable[[str | Path], EventAccumulator]


def test_one_run_per_member_with_its_curve_final_losses_and_values(
    registry: Registry, tmp_path: Path, read: Reader
) -> None:
    result = mlbasics.sweep(
        seeds=[0, 1], lrs=[0.01, 0.05], epochs=60, validation=0.2, metrics=["r2"], registry=registry
    )
    folders = log_sweep(result, tmp_path / "sweep")
    assert [folder.name for folder in folders] == [
        "0_seed=0_optimizer.lr=0.01",
        "1_seed=0_optimizer.lr=0.05",
        "2_seed=1_optimizer.lr=0.01",
        "3_seed=1_optimizer.lr=0.05",
    ]
    assert sorted((tmp_path / "sweep").iterdir()) == folders
    for member, folder in zip(result.members, folders, strict=True):
        events = read(folder)
        history = member.history.tolist()
        assert [(e.step, e.value) for e in events.Scalars("loss/train")] == list(enumerate(history, start=1))
        assert member.validation_loss is not None
        assert [(e.step, e.value) for e in events.Scalars("loss/validation")] == [
            (60, member.validation_loss)
        ]
        # Each metric where the member has them ("r2", "validation_r2"), at the last epoch.
        tags = {"r2": "r2/train", "validation_r2": "r2/validation", "test_r2": "r2/test"}
        for name, value in getattr(member, "metrics", {}).items():
            assert [(e.step, e.value) for e in events.Scalars(tags[name])] == [(60, value)]
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert {name: value.number_value for name, value in hparams.items()} == member.values


def test_the_callback_in_a_sweep_gives_each_member_its_own_run_under_its_logdir(
    registry: Registry, tmp_path: Path, read: Reader
) -> None:
    """Trained one after another (the callback runs in each member's own loop), every member
    writes under the logdir given, in a folder named as log_sweep names it; without that the
    members' event files shared one folder and each purged the one before."""
    result = mlbasics.sweep(
        seeds=[0, 1], lrs=[0.01, 0.05], epochs=20, log_every=10, registry=registry,
        callbacks=[{"name": "tensorboard", "logdir": str(tmp_path / "tb"), "figure": False}],
    )  # fmt: skip
    assert result.mode == "sequential"
    names = ["0_seed=0_optimizer.lr=0.01", "1_seed=0_optimizer.lr=0.05", "2_seed=1_optimizer.lr=0.01",
             "3_seed=1_optimizer.lr=0.05"]  # fmt: skip
    assert sorted(folder.name for folder in (tmp_path / "tb").iterdir()) == names
    for member, name in zip(result.members, names, strict=True):
        losses = [(e.step, e.value) for e in read(tmp_path / "tb" / name).Scalars("loss/train")]
        assert losses == [(10, float(member.history[9])), (20, float(member.history[19]))]


def test_a_long_curve_is_thinned_evenly_keeping_the_first_and_last_epoch() -> None:
    assert logged_epochs(5, 10) == [1, 2, 3, 4, 5]
    epochs = logged_epochs(100_000, 1000)
    assert len(epochs) == 1000
    assert (epochs[0], epochs[-1]) == (1, 100_000)
    gaps = {b - a for a, b in itertools.pairwise(epochs)}
    assert gaps <= {100, 101}  # 99,999 / 999 = 100.1 epochs apart, rounded


def test_too_few_points_are_refused(registry: Registry, tmp_path: Path) -> None:
    result = mlbasics.sweep(seeds=[0], epochs=3, registry=registry)
    with pytest.raises(ValueError, match="max_points must be at least 2, got 1"):
        log_sweep(result, tmp_path, max_points=1)
