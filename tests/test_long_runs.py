"""Very long runs: the first sync point (progress, the divergence check, callbacks) comes after the
first epoch, not after a hundredth of the run, and the losses waiting on the device between two
sync points never exceed a fixed buffer, however many epochs the run has.

Nothing here is timed: where the schedule reacts to time, the test hands it the seconds."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import mlbasics
import mlbasics.engine.loop
import mlbasics.engine.steppers
from mlbasics import Callback, Experiment, Setup, StopTraining
from mlbasics.engine.loop import MAX_SYNC_INTERVAL, SYNC_SECONDS, SyncSchedule, sync_interval
from mlbasics.engine.steppers import EagerStepper, GraphStepper
from tests.test_steppers import ReplayEagerly

BILLION = 1_000_000_000
LINEAR = {"dataset": "tiny", "model": "linear", "device": "cpu"}


class SyncPoints(Callback):
    """Records the epoch of every sync point; stops training after ``stop_after`` of them."""

    def __init__(self, stop_after: int, sync_every: int | None = None) -> None:
        self.epochs: list[int] = []
        self.stop_after = stop_after
        self.sync_every = sync_every

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        self.epochs.append(epoch)
        if len(self.epochs) == self.stop_after:
            raise StopTraining("seen enough")


class CountingStepper:
    """Wraps the loop's stepper to record how many steps it is asked for at a time."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.mode, self.requests = inner, inner.mode, []

    def run(self, n: int) -> torch.Tensor:
        self.requests.append(n)
        return self.inner.run(n)


def test_a_billion_epoch_run_syncs_after_its_first_epoch() -> None:
    seen = SyncPoints(stop_after=3)
    result = mlbasics.train(**LINEAR, epochs=BILLION, callbacks=[seen])
    assert seen.epochs[0] == 1  # progress, the divergence check and callbacks: after one epoch
    assert result.epochs == seen.epochs[-1]
    assert all(b - a <= MAX_SYNC_INTERVAL for a, b in zip([0, *seen.epochs], seen.epochs, strict=False))


def test_a_diverging_billion_epoch_run_is_stopped_within_the_first_intervals() -> None:
    with pytest.raises(mlbasics.DivergenceError) as error:
        mlbasics.train(**LINEAR, epochs=BILLION, optimizer={"name": "sgd", "lr": 50.0})
    assert len(error.value.history) <= 2 * error.value.epoch  # the interval grew from 1 by doubling


def test_the_losses_in_flight_never_exceed_the_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request to the stepper, and a CUDA graph's history buffer, is at most
    MAX_SYNC_INTERVAL steps, even when every interval is fast (so the schedule grows to its limit)."""
    monkeypatch.setattr(mlbasics.engine.loop, "MAX_SYNC_INTERVAL", 16)
    monkeypatch.setattr(mlbasics.engine.loop, "SYNC_SECONDS", float("inf"))  # always fast enough to grow
    steppers: list[CountingStepper] = []
    capacities: list[int] = []

    def graph_stepper(setup: Setup, step: Any, *, epochs: int, interval: int) -> CountingStepper:
        capacities.append(interval)
        steppers.append(
            CountingStepper(GraphStepper(setup, step, capacity=interval, backend=ReplayEagerly(setup)))
        )
        return steppers[-1]

    monkeypatch.setattr(mlbasics.engine.steppers, "make_stepper", graph_stepper)
    seen = SyncPoints(stop_after=12)
    result = mlbasics.train(**LINEAR, epochs=BILLION, callbacks=[seen])
    assert capacities == [16]
    assert max(steppers[0].requests) == 16
    assert seen.epochs == [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128]
    assert result.step_mode == "cuda-graph"
    straight = mlbasics.train(**LINEAR, epochs=128, log_every=1)
    assert result.history == straight.history


def test_a_long_log_every_is_exact_and_copied_out_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mlbasics.engine.loop, "MAX_SYNC_INTERVAL", 4)
    steppers: list[CountingStepper] = []

    def eager_stepper(setup: Setup, step: Any, *, epochs: int, interval: int) -> CountingStepper:
        steppers.append(CountingStepper(EagerStepper(step, setup.interrupt)))
        return steppers[-1]

    monkeypatch.setattr(mlbasics.engine.steppers, "make_stepper", eager_stepper)
    seen = SyncPoints(stop_after=0)
    result = mlbasics.train(**LINEAR, epochs=25, log_every=10, callbacks=[seen])
    assert seen.epochs == [10, 20, 25]
    assert steppers[0].requests == [4, 4, 2, 4, 4, 2, 4, 1]
    assert result.history == mlbasics.train(**LINEAR, epochs=25, log_every=1).history


def test_sync_points_fall_on_the_multiples_a_callback_asks_for() -> None:
    seen = SyncPoints(stop_after=0, sync_every=7)
    mlbasics.train(**LINEAR, epochs=1000, callbacks=[seen])  # a hundredth of the run: 10 epochs
    assert seen.epochs[0] == 1
    assert {7, 14, 21, 28, 1000} <= set(seen.epochs)
    assert all(b - a <= 7 for a, b in zip([0, *seen.epochs], seen.epochs, strict=False))


# -- the schedule itself, with the seconds handed to it ---------------------------------------------


def _schedule(epochs: int, **settings: Any) -> SyncSchedule:
    return SyncSchedule(Experiment(epochs=epochs, **settings))


def _walk(schedule: SyncSchedule, end: int, seconds_per_epoch: float, syncs: int) -> list[int]:
    done, points = 0, []
    for _ in range(syncs):
        steps = schedule.next(done, end)
        schedule.record(steps, steps * seconds_per_epoch)
        done += steps
        points.append(done)
    return points


def test_fast_epochs_double_the_interval_up_to_about_a_hundredth_of_the_run() -> None:
    schedule = _schedule(10_000)
    assert schedule.limit == sync_interval(Experiment(epochs=10_000)) == 100
    assert _walk(schedule, 10_000, 1e-6, 10) == [1, 2, 4, 8, 16, 32, 64, 100, 200, 300]


def test_the_interval_of_a_huge_run_is_bounded() -> None:
    schedule = _schedule(BILLION)
    assert schedule.limit == MAX_SYNC_INTERVAL
    points = _walk(schedule, BILLION, 1e-9, 40)
    assert points[0] == 1
    assert max(b - a for a, b in zip([0, *points], points, strict=False)) == MAX_SYNC_INTERVAL


def test_slow_epochs_keep_the_interval_near_the_target_time() -> None:
    schedule = _schedule(BILLION)
    per_epoch = SYNC_SECONDS / 3  # two epochs fit in the target time, four do not
    points = _walk(schedule, BILLION, per_epoch, 6)
    assert points == [1, 2, 4, 6, 8, 10]
    schedule.record(2, 2 * 3 * SYNC_SECONDS)  # slower still: more than twice the target
    assert schedule.interval == 1


def test_an_explicit_log_every_is_kept_exactly() -> None:
    schedule = _schedule(BILLION, log_every=250_000)
    assert _walk(schedule, BILLION, 10.0, 3) == [250_000, 500_000, 750_000]
    assert _walk(_schedule(7, log_every=5), 7, 1e-6, 2) == [5, 7]
