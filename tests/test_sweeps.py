"""Sweeps: every member of a vmapped ensemble trains as it would alone; where the members cannot be
stacked they train one after another, and the user is told why."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import torch
from _stand_ins import FLOAT64, FLOAT64_TOLERANCE, ReadsOnTheHost, hook_plugin
from torch import nn

import mlbasics
from mlbasics import Callback, ComponentSpec, Experiment, Registry, Setup, StopTraining, ValidationError
from mlbasics.builtin.optimizers import stacked_sgd
from mlbasics.errors import PluginBugError
from mlbasics.sweeps.ensemble import stacked_hyper
from mlbasics.sweeps.grid import SweepResult, grid_axes, sweep

LECTURE = Experiment(epochs=150, device="cpu", log_every=40)
LINEAR = Experiment(dataset="synthetic-linear", model="linear", epochs=200, device="cpu")
LECTURE_GRID: dict[str, Any] = {
    "seeds": [1, 2],
    "lrs": [0.01, 0.05],
    "grid": {"optimizer.momentum": [0.0, 0.9]},
}


def _assert_members_match_single_runs(result: SweepResult, registry: Registry) -> None:
    """For convex problems (the linear model on synthetic-linear and on tiny), where rounding does
    not grow. The batched products round differently from one model's in the last bit, but every
    SGD step here contracts the distance between two runs: the MSE's Hessian is 2·E[x xᵀ] with
    eigenvalues about 2 (standard normal features), so with lr <= 0.2 a difference shrinks by
    |1 - lr·λ| <= 0.9 an epoch (momentum 0.5 keeps the heavy-ball iteration contracting). What the
    two runs' roundings add each step (a few ulps of the residuals Xw - y, |Xw|, |y| <= 10, times lr)
    therefore sums to at most 10 times one step's: about 1e-6 on parameters of size 5 and far less
    on a loss that tends to 0, against assert_close's float32 tolerance of 1e-5 + 1.3e-6·|value|.
    Any CPU's float32 rounding is of the same size, so this holds beyond the machine it ran on.
    Metrics (where the experiment has some) move no more than the predictions w·x + b: for standard
    normal x in 3 features (synthetic-linear), mean |Δprediction| <= Σ|Δw|·E|x| + |Δb| is a few
    1e-6, bounding the change of MAE and RMSE; R² = 1 - SS_res/SS_tot moves by far less, its
    residuals being small. The same tolerance holds for them."""
    for member in result.members:
        alone = mlbasics.train(member.experiment, registry=registry)
        torch.testing.assert_close(member.history, torch.tensor(alone.history), msg=member.label)
        for name, value in alone.parameters.items():
            torch.testing.assert_close(member.parameters[name], value, msg=f"{member.label}: {name}")
        assert member.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            torch.testing.assert_close(
                torch.tensor(member.metrics[name]), torch.tensor(value), msg=f"{member.label}: {name}"
            )


# How close two float32 runs of the lecture's MLP stay although their kernels round differently
# (batched and unbatched, one CPU and another: Intel and AMD differ here). Rounding differences are
# about u = 2^-24 relative per operation on any CPU; how much the training then amplifies them is a
# property of the trajectory, not of the CPU, and was measured with the float64 twin below (a float32
# run against the same run in float64, the exact one for this purpose; torch 2.13, lr 0.01 and 0.05,
# momentum 0 and 0.9, seeds 1 and 2): within the first 10 epochs, where the loss still falls
# steadily from about 20, a float32 run stays within 18u of the float64 run, so two float32 runs
# within 2·18u ≈ 2.1e-6 of each other; TIGHT_RTOL is 5 times that. Later the MLP amplifies
# roundings chaotically: by epoch 150 a float32 run is up to 1700u (1e-4) from the float64 one, and
# on an Intel CPU the batched and unbatched float32 runs were 6.4e-5 apart at epoch 74, so no
# float32 tolerance worth the name holds there. The whole run is compared in float64 instead: the
# same amplification of float64 roundings (u = 2^-53) leaves 2·1700·2^-53 ≈ 4e-13 (measured: 6e-14
# at most, parameters included); FLOAT64_TOLERANCE = 1e-9 has three orders of magnitude to spare
# (_stand_ins.py says when it holds in general).
TIGHT_EPOCHS = 10
TIGHT_RTOL = 1e-5


def test_each_member_of_the_lecture_sweep_trains_as_it_would_alone(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    """In float32, as the lecture runs it, for the first TIGHT_EPOCHS epochs (above)."""
    caplog.set_level(logging.WARNING, logger="mlbasics")
    result = mlbasics.sweep(LECTURE, **LECTURE_GRID, registry=registry)
    assert (result.mode, result.reason) == ("vmap", None)
    assert caplog.records == []
    assert result.axes == ("seed", "optimizer.lr", "optimizer.momentum")
    assert [m.values for m in result.members[:3]] == [
        {"seed": 1, "optimizer.lr": 0.01, "optimizer.momentum": 0.0},
        {"seed": 1, "optimizer.lr": 0.01, "optimizer.momentum": 0.9},
        {"seed": 1, "optimizer.lr": 0.05, "optimizer.momentum": 0.0},
    ]
    assert all(len(m.history) == LECTURE.epochs for m in result.members)
    assert all(bool(torch.isfinite(m.history).all()) for m in result.members)
    for member in result.members:
        # The first epochs of a longer run are those of a shorter one: the same steps, in order.
        alone = mlbasics.train(member.experiment, epochs=TIGHT_EPOCHS, registry=registry)
        torch.testing.assert_close(
            member.history[:TIGHT_EPOCHS],
            torch.tensor(alone.history),
            rtol=TIGHT_RTOL,
            atol=0,
            msg=member.label,
        )


def test_each_member_of_the_lecture_sweep_trains_as_it_would_alone_in_float64() -> None:
    """All 150 epochs and the final parameters, in float64 (the argument above TIGHT_EPOCHS)."""
    registry = Registry.isolated(FLOAT64)
    experiment = attrs.evolve(LECTURE, model="mlp-float64", loss="mse-float64")
    result = mlbasics.sweep(experiment, **LECTURE_GRID, registry=registry)
    assert (result.mode, result.reason, len(result.members)) == ("vmap", None, 8)
    for member in result.members:
        alone = mlbasics.train(member.experiment, registry=registry)
        assert member.parameters["model.0.weight"].dtype == torch.float64
        torch.testing.assert_close(
            member.history.double(),
            torch.tensor(alone.history, dtype=torch.float64),
            rtol=FLOAT64_TOLERANCE,
            atol=FLOAT64_TOLERANCE,
            msg=member.label,
        )
        for name, value in alone.parameters.items():
            torch.testing.assert_close(
                member.parameters[name],
                value,
                rtol=FLOAT64_TOLERANCE,
                atol=FLOAT64_TOLERANCE,
                msg=f"{member.label}: {name}",
            )


def test_weight_decay_momentum_and_lr_per_member_on_a_convex_problem(registry: Registry) -> None:
    result = mlbasics.sweep(
        LINEAR,
        seeds=[0, 3],
        lrs=[0.05, 0.2],
        grid={"optimizer.weight_decay": [0.0, 0.01], "optimizer.momentum": [0.0, 0.5]},
        registry=registry,
    )
    assert result.mode == "vmap"
    assert len(result.members) == 16
    _assert_members_match_single_runs(result, registry)


def test_a_seed_only_sweep_uses_sgds_own_update(registry: Registry) -> None:
    """With lr shared by all members the update is torch.optim.SGD's very operation."""
    result = mlbasics.sweep(LINEAR, seeds=range(5), registry=registry)
    assert [m.values["seed"] for m in result.members] == [0, 1, 2, 3, 4]
    _assert_members_match_single_runs(result, registry)


def test_results_rank_best_first_and_diverged_last(registry: Registry) -> None:
    result = mlbasics.sweep(LINEAR, epochs=60, lrs=[0.01, 10.0, 0.1], registry=registry)
    ranked = result.ranked()
    assert [m.values["optimizer.lr"] for m in ranked] == [0.1, 0.01, 10.0]
    assert not torch.isfinite(torch.tensor(ranked[-1].final_loss))
    assert result.best is ranked[0]
    data = result.to_dict()
    assert json.loads(json.dumps(data, allow_nan=True))["mode"] == "vmap"
    assert [m["values"]["optimizer.lr"] for m in data["members"]] == [0.1, 0.01, 10.0]
    assert "history" not in data["members"][0]
    assert len(result.to_dict(history=True)["members"][0]["history"]) == 60
    assert result.model_steps == 3 * 60
    assert result.seconds > 0


def test_a_diverging_member_does_not_end_a_sequential_sweep(
    registry: Registry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One after another, each member trains through training.run(), whose divergence check stops
    a run whose loss is no longer finite: that member keeps its history up to there, the others
    train on, and the progress bar counts every epoch trained."""
    monkeypatch.setenv("COLUMNS", "200")
    result = mlbasics.sweep(
        LINEAR, epochs=60, lrs=[0.01, 10.0, 0.1], registry=registry, vmap=False, progress=True
    )
    assert result.mode == "sequential"
    ranked = result.ranked()
    assert [m.values["optimizer.lr"] for m in ranked] == [0.1, 0.01, 10.0]
    diverged = ranked[-1]
    assert not torch.isfinite(torch.tensor(diverged.final_loss))
    assert 0 < len(diverged.history) <= 60
    assert [len(m.history) for m in ranked[:2]] == [60, 60]
    assert diverged.stopped is not None
    assert diverged.stopped.startswith("training diverged at epoch ")
    assert f"{120 + len(diverged.history)}/180" in capsys.readouterr().err


# -- every member's metrics, the experiment's callbacks, one progress bar ------------------------------

HELD_OUT = attrs.evolve(LINEAR, validation=0.2, test=0.2, log_every=50, metrics=["r2", "mae", "rmse"])
METRIC_NAMES = ("r2", "mae", "rmse")


def test_every_member_gets_the_metrics_of_its_single_run(registry: Registry) -> None:
    """Vmapped: within float32 tolerance (the argument of _assert_members_match_single_runs, which
    holds at every epoch, so for the histories too); one after another: the very same run."""
    grid: dict[str, Any] = {"seeds": [0, 1], "lrs": [0.05, 0.2]}
    stacked = mlbasics.sweep(HELD_OUT, **grid, registry=registry)
    assert stacked.mode == "vmap"
    assert stacked.metric_modes == {"r2": "max", "mae": "min", "rmse": "min"}
    one_by_one = mlbasics.sweep(HELD_OUT, **grid, registry=registry, vmap=False)
    every = {prefix + name for prefix in ("", "validation_", "test_") for name in METRIC_NAMES}
    for vmapped, member in zip(stacked.members, one_by_one.members, strict=True):
        alone = mlbasics.train(member.experiment, registry=registry)
        assert member.metrics == alone.metrics
        assert vmapped.metrics.keys() == every
        for name, value in alone.metrics.items():
            torch.testing.assert_close(torch.tensor(vmapped.metrics[name]), torch.tensor(value), msg=name)
        assert alone.metric_history.keys() == vmapped.metric_history.keys() == member.metric_history.keys()
        for result in (vmapped, member):
            assert result.sync_epochs.tolist() == [50, 100, 150, 200]
        for name, pairs in alone.metric_history.items():
            assert [epoch for epoch, _ in pairs] == [50, 100, 150, 200]
            values = torch.tensor([value for _, value in pairs], dtype=torch.float64)
            assert torch.equal(member.metric_history[name], values)
            torch.testing.assert_close(vmapped.metric_history[name].float(), values.float(), msg=name)
        assert (member.validation_loss, member.test_loss) == (alone.validation_loss, alone.test_loss)
        assert alone.validation_loss is not None
        assert alone.test_loss is not None
        torch.testing.assert_close(torch.tensor(vmapped.validation_loss), torch.tensor(alone.validation_loss))
        torch.testing.assert_close(torch.tensor(vmapped.test_loss), torch.tensor(alone.test_loss))
    data = stacked.to_dict(history=True)
    assert data["metric_modes"] == {"r2": "max", "mae": "min", "rmse": "min"}
    assert data["members"][0]["metrics"].keys() == every
    assert [pair[0] for pair in data["members"][0]["metric_history"]["validation_r2"]] == [50, 100, 150, 200]
    assert "metric_history" not in stacked.to_dict()["members"][0]


def test_members_rank_by_a_metric_the_way_it_is_better(registry: Registry) -> None:
    experiment = attrs.evolve(LINEAR, epochs=60, metrics=["r2", "mae"])
    result = mlbasics.sweep(experiment, lrs=[0.01, 10.0, 0.1], registry=registry)
    by_loss = [m.values["optimizer.lr"] for m in result.ranked()]
    assert by_loss == [0.1, 0.01, 10.0]  # lr 10 diverges: last, whatever the metric's direction
    assert [m.values["optimizer.lr"] for m in result.ranked("r2")] == by_loss  # higher is better
    assert [m.values["optimizer.lr"] for m in result.ranked("mae")] == by_loss  # lower is better
    r2 = [m.metrics["r2"] for m in result.ranked("r2")[:2]]
    assert r2 == sorted(r2, reverse=True)
    assert result.ranking_value("r2") == "r2"  # no validation rows: the training rows'
    assert result.to_dict(rank_by="r2")["ranked_by"] == "r2"
    with pytest.raises(ValidationError) as error:
        result.ranked("r3")
    assert error.value.problems == ("cannot rank by 'r3': the sweep has 'loss', 'r2', 'mae'",)


def test_an_ensemble_computes_metrics_in_the_datas_units_in_float64() -> None:
    """The lecture MLP on standardized data: the members' predictions go through the non-linear
    model under vmap and back to the data's units before the metrics see them. In float64 they
    equal the single runs' within FLOAT64_TOLERANCE (the argument above TIGHT_EPOCHS). MAE and RMSE
    are computed in float64 from the float64 predictions; R² is left out here, its total sum of
    squares being of the float32 targets alone (summed in float32, where an expanded tensor may
    round differently)."""
    registry = Registry.isolated(FLOAT64)
    experiment = attrs.evolve(
        LECTURE,
        model="mlp-float64",
        loss="mse-float64",
        validation=0.2,
        test=0.2,
        standardize="features+target",
        metrics=["mae", "rmse"],
    )
    result = mlbasics.sweep(experiment, seeds=[1, 2], lrs=[0.05], registry=registry)
    assert result.mode == "vmap"
    for member in result.members:
        alone = mlbasics.train(member.experiment, registry=registry)
        assert alone.standardization is not None
        assert member.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            assert member.metrics[name] == pytest.approx(value, rel=FLOAT64_TOLERANCE, abs=FLOAT64_TOLERANCE)
        for name, pairs in alone.metric_history.items():
            assert member.sync_epochs.tolist() == [epoch for epoch, _ in pairs]
            torch.testing.assert_close(
                member.metric_history[name],
                torch.tensor([value for _, value in pairs], dtype=torch.float64),
                rtol=FLOAT64_TOLERANCE,
                atol=FLOAT64_TOLERANCE,
            )
        for ours, theirs in (
            (member.validation_loss, alone.validation_loss),
            (member.test_loss, alone.test_loss),
        ):
            assert ours == pytest.approx(theirs, rel=FLOAT64_TOLERANCE, abs=FLOAT64_TOLERANCE)


def test_a_metric_that_reduces_over_the_members_too_is_named(registry: Registry) -> None:
    spec = ComponentSpec(
        kind="metric",
        name="mean-error",
        factory=lambda: mlbasics.Metric(lambda p, t: (p - t).abs().mean()),
        summary="reduces every dimension, against the Metric contract",
    )
    plugged = Registry.isolated(hook_plugin("sloppy-metrics", mlbasics_metrics=lambda: [spec]))
    with pytest.raises(PluginBugError) as error:
        sweep(LINEAR, epochs=5, metrics=["mean-error"], seeds=[0, 1], registry=plugged)
    assert str(error.value) == (
        "metric 'mean-error' from plugin sloppy-metrics gave a value shaped () for predictions shaped "
        "(2, rows, outputs); a metric reduces the last two dimensions only"
    )


class StopAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.sync_every = epoch
        self.started = 0

    def on_train_start(self, setup: Setup, epochs: int) -> None:
        self.started += 1

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if epoch >= self.epoch:
            raise StopTraining(f"stopped at epoch {epoch} (started {self.started} time)")


CALLBACKS = hook_plugin(
    "test-sweep-callbacks",
    mlbasics_callbacks=lambda: [
        ComponentSpec(
            kind="callback",
            name="stop-at",
            factory=StopAt,
            summary="stops training at an epoch",
            params=(mlbasics.Param(name="epoch", type=int, default=10, ge=1),),
        )
    ],
)


def test_the_experiments_callbacks_run_for_each_member_one_after_another(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each member's own callback (built for it), as in a single run; an ensemble has no member's
    own training loop to run them in, so the sweep trains one member after another and says why."""
    caplog.set_level(logging.WARNING, logger="mlbasics")
    plugged = Registry.isolated(CALLBACKS)
    experiment = attrs.evolve(LINEAR, epochs=40, callbacks=[{"name": "stop-at", "epoch": 10}])
    result = sweep(experiment, seeds=[0, 1], lrs=[0.05, 0.1], registry=plugged)
    reason = "the experiment's callbacks (stop-at) run on each member's own training, which the ensemble does not have"
    assert (result.mode, result.reason) == ("sequential", reason)
    assert [r.getMessage() for r in caplog.records] == [f"training the 4 members one after another: {reason}"]
    assert [m.stopped for m in result.members] == ["stopped at epoch 10 (started 1 time)"] * 4
    for member in result.members:
        alone = mlbasics.train(member.experiment, registry=plugged)
        assert member.history.tolist() == alone.history
        assert len(alone.history) == 10
    assert result.to_dict()["members"][0]["stopped"] == "stopped at epoch 10 (started 1 time)"


def test_each_member_writes_its_own_log_named_after_it(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log callback in a sweep (trained one after another) writes one file per member beside the
    path given, named after the member's index and values; they used to share the path, each
    member starting it anew, so the last one's rows were all that was left."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    result = sweep(
        LINEAR, epochs=20, log_every=10, seeds=[0, 1], lrs=[0.05, 0.1], registry=registry,
        callbacks=[{"name": "csv-logger", "path": "log.csv"}, {"name": "jsonl-logger", "path": "logs/run.jsonl"}],
    )  # fmt: skip
    assert result.mode == "sequential"
    names = ["0_seed=0_optimizer.lr=0.05", "1_seed=0_optimizer.lr=0.1", "2_seed=1_optimizer.lr=0.05",
             "3_seed=1_optimizer.lr=0.1"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == [f"log-{name}.csv" for name in names]
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [f"run-{name}.jsonl" for name in names]
    for member, name in zip(result.members, names, strict=True):
        with open(tmp_path / f"log-{name}.csv", newline="") as file:
            rows = list(csv.DictReader(file))
        lines = (tmp_path / "logs" / f"run-{name}.jsonl").read_text().splitlines()
        expected = [(10, float(member.history[9])), (20, float(member.history[19]))]
        assert [(int(row["epoch"]), float(row["loss"])) for row in rows] == expected
        assert [(row["epoch"], row["loss"]) for row in map(json.loads, lines)] == expected


def test_a_member_s_log_name_keeps_only_what_a_file_name_may_hold() -> None:
    from mlbasics.sweeps.results import member_name

    assert member_name(3, {"seed": 3, "optimizer.lr": 0.1}, 12) == "03_seed=3_optimizer.lr=0.1"
    assert member_name(0, {"model.hidden": [8, 8]}, 2) == "0_model.hidden=_8_8_"
    assert member_name(7, {}, 8) == "7"


@pytest.mark.parametrize("vmap", [True, False], ids=["vmapped", "one after another"])
def test_one_progress_bar_counts_the_model_epochs_of_every_member(
    registry: Registry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, vmap: bool
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich's width here: the counts must not be cut short
    result = sweep(
        LINEAR, epochs=30, log_every=10, seeds=[0, 1, 2], vmap=vmap, progress=True, registry=registry
    )
    assert result.mode == ("vmap" if vmap else "sequential")
    shown = capsys.readouterr().err
    assert "model-epochs" in shown
    assert "90/90" in shown
    assert " model-epochs/s" in shown  # the speed of what it counts
    assert "steps/s" not in shown


# -- falling back: training one member after another -------------------------------------------------


class WithBuffer(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def frozen_bias(in_features: int, out_features: int) -> nn.Linear:
    model = nn.Linear(in_features, out_features)
    assert model.bias is not None
    model.bias.requires_grad_(False)
    return model


def _model(name: str, factory: Callable[..., Any]) -> ComponentSpec:
    return ComponentSpec(kind="model", name=name, factory=factory, summary=name)


def _broken_update(*_: object) -> None:
    raise RuntimeError("a bug in the stacked form")


PLUGIN = hook_plugin(
    "test-sweep-plugin",
    mlbasics_models=lambda: [
        _model("reads-input", ReadsOnTheHost),
        _model("with-buffer", WithBuffer),
        _model("frozen-bias", frozen_bias),
    ],
    mlbasics_optimizers=lambda: [
        ComponentSpec(
            kind="optimizer",
            name="lbfgs",
            factory=lambda params: torch.optim.LBFGS(params, lr=1),
            summary="L-BFGS",
            tags={"closure"},
        ),
        ComponentSpec(
            kind="optimizer",
            name="adam",
            factory=lambda params, lr: torch.optim.Adam(params, lr=lr),
            summary="Adam",
            params=(mlbasics.Param(name="lr", type=float, default=0.01),),
        ),
        ComponentSpec(
            kind="optimizer",
            name="weights-only",
            factory=lambda params: torch.optim.SGD(params[:1], lr=0.1),
            summary="SGD on the first parameter only",
            stacked=stacked_sgd,
        ),
        ComponentSpec(
            kind="optimizer",
            name="nesterov",
            factory=lambda params, **settings: torch.optim.SGD(params, **settings),
            summary="SGD with Nesterov momentum",
            params=(
                mlbasics.Param(name="lr", type=float, default=0.01),
                mlbasics.Param(name="momentum", type=float, default=0.5),
                mlbasics.Param(name="weight_decay", type=float, default=0.0),
                mlbasics.Param(name="nesterov", type=bool, default=True),
                mlbasics.Param(name="maximize", type=bool, default=False),
            ),
            # A torch.optim.SGD with params named as its arguments: the built-in sgd's stacked form fits.
            stacked=stacked_sgd,
        ),
        ComponentSpec(
            kind="optimizer",
            name="two-groups",
            factory=lambda params: torch.optim.SGD(
                [{"params": params[:1]}, {"params": params[1:]}], lr=0.1, momentum=0, weight_decay=0
            ),
            summary="SGD with the weights and the bias in two parameter groups",
            stacked=stacked_sgd,
        ),
        ComponentSpec(
            kind="optimizer",
            name="broken-stacked",
            factory=lambda params: torch.optim.SGD(params, lr=0.1),
            summary="SGD whose stacked form raises",
            stacked=_broken_update,
        ),
        ComponentSpec(
            kind="optimizer",
            name="misplaced",
            factory=lambda params: torch.optim.SGD(params, lr=0.1),
            summary="SGD whose stacked form cannot be imported",
            stacked="nowhere_to_be_found:update",
        ),
    ],
)


@pytest.fixture
def plugged() -> Registry:
    return Registry.isolated(PLUGIN)


FALLBACKS = [
    (
        {"optimizer": "lstsq"},
        {"seeds": [0, 1]},
        "optimizer 'lstsq' solves in closed form: there are no steps to batch",
    ),
    (
        {"optimizer": "lbfgs", "epochs": 3},
        {"seeds": [0, 1]},
        "optimizer 'lbfgs' needs a closure, which the ensemble cannot batch",
    ),
    (
        {"optimizer": "adam"},
        {"lrs": [0.01, 0.1]},
        "optimizer 'adam' declares no stacked form (ComponentSpec.stacked), so its update cannot be batched",
    ),
    (
        {"optimizer": "two-groups"},
        {"seeds": [0, 1]},
        "optimizer 'two-groups' has 2 parameter groups; a stacked update takes one",
    ),
    (
        {"optimizer": "misplaced"},
        {"seeds": [0, 1]},
        "optimizer 'misplaced' (stacked form) from plugin test-sweep-plugin cannot be loaded: "
        "No module named 'nowhere_to_be_found'",
    ),
    ({}, {"grid": {"optimizer": ["sgd", "nesterov"]}}, "members differ in their optimizer"),
    (
        {"optimizer": "broken-stacked"},
        {"seeds": [0, 1]},
        "optimizer 'broken-stacked': its stacked form fails (RuntimeError: a bug in the stacked form)",
    ),
    ({}, {"grid": {"model": ["linear", "linear-stack"]}}, "members' models differ in their layers or shapes"),
    ({}, {"grid": {"dataset.seed": [0, 1]}}, "members train on different data"),
    ({}, {"grid": {"epochs": [5, 6]}}, "members differ in epochs"),
    ({}, {"grid": {"loss": ["mse", "sse-half"]}}, "members differ in their loss"),
    (
        {"optimizer": "nesterov"},
        {"grid": {"optimizer.maximize": [False, True]}},
        "members differ in the optimizer's maximize, which its stacked update shares between them",
    ),
    (
        {"model": "frozen-bias"},
        {"seeds": [0, 1]},
        "model 'frozen-bias' has frozen parameters (requires_grad=False), which the ensemble would train",
    ),
    (
        {"optimizer": "weights-only"},
        {"seeds": [0, 1]},
        "optimizer 'weights-only' does not train exactly the model's parameters, in order",
    ),
    (
        {"model": "with-buffer"},
        {"seeds": [0, 1]},
        "model 'with-buffer' has buffers (such as running statistics), which the ensemble does not carry",
    ),
]


@pytest.mark.parametrize(("changes", "axes", "reason"), FALLBACKS, ids=[r[2][:40] for r in FALLBACKS])
def test_members_that_cannot_be_stacked_train_one_after_another(
    plugged: Registry,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    axes: dict[str, Any],
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    experiment = Experiment(
        **{"dataset": "synthetic-linear", "model": "linear", "epochs": 20, "device": "cpu", **changes}
    )
    result = sweep(experiment, registry=plugged, **axes)
    assert (result.mode, result.reason) == ("sequential", reason)
    assert [r.getMessage() for r in caplog.records] == [
        f"training the {len(result.members)} members one after another: {reason}"
    ]
    for member in result.members:  # the same path as training alone: bitwise equal
        alone = mlbasics.train(member.experiment, registry=plugged)
        assert member.history.tolist() == alone.history


def test_a_model_that_fails_under_vmap_trains_one_member_after_another(
    plugged: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    result = sweep(LINEAR, model="reads-input", epochs=20, seeds=[0, 1], registry=plugged)
    assert result.mode == "sequential"
    assert result.reason is not None
    # torch's own words follow; they change between versions
    assert result.reason.startswith("model 'reads-input' fails under vmap (RuntimeError: vmap: ")
    assert [r.getMessage() for r in caplog.records] == [
        f"training the 2 members one after another: {result.reason}"
    ]
    for member in result.members:
        assert member.history.tolist() == mlbasics.train(member.experiment, registry=plugged).history


def test_nesterov_and_maximize_shared_by_all_members_stack(plugged: Registry) -> None:
    result = sweep(LINEAR, lrs=[0.01, 0.05], optimizer="nesterov", registry=plugged)
    assert result.mode == "vmap"
    _assert_members_match_single_runs(result, plugged)


def test_asking_for_one_after_another_needs_no_reason(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlbasics")
    result = sweep(LINEAR, epochs=10, seeds=[0, 1], vmap=False, registry=registry)
    assert (result.mode, result.reason) == ("sequential", None)
    assert caplog.records == []


# -- the stacked SGD against torch.optim.SGD, step by step -------------------------------------------

SGD_DEFAULTS = {
    "lr": 0.1,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "dampening": 0.0,
    "nesterov": False,
    "maximize": False,
}


@pytest.mark.parametrize(
    "members",
    [
        [{"lr": 0.1}] * 3,
        [{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.5}],
        [{"lr": 0.1, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.0}, {"lr": 0.05, "momentum": 0.5}],
        [{"lr": 0.1, "weight_decay": 0.1}, {"lr": 0.1}, {"lr": 0.2, "weight_decay": 0.01, "momentum": 0.3}],
        [{"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"lr": 0.3, "momentum": 0.2, "nesterov": True}],
        [{"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "maximize": True}] * 2,
    ],
)
def test_stacked_sgd_follows_torch_optim_sgd(members: list[dict[str, Any]]) -> None:
    settings = [SGD_DEFAULTS | member for member in members]
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(len(members), 4, 3, generator=generator)
    grads = [torch.randn(len(members), 4, 3, generator=generator) for _ in range(5)]
    singles = [start[m].clone() for m in range(len(members))]
    optimizers = [torch.optim.SGD([p], **s) for p, s in zip(singles, settings, strict=True)]
    hyper = stacked_hyper(settings, start.device, start.dtype)
    assert isinstance(hyper, dict)
    params: dict[str, torch.Tensor] = {"w": start.clone()}
    state: dict[str, Any] = {}
    for grad in grads:
        for m, (p, optimizer) in enumerate(zip(singles, optimizers, strict=True)):
            p.grad = grad[m].clone()
            optimizer.step()
        params, state = stacked_sgd(params, {"w": grad}, state, hyper)
        torch.testing.assert_close(params["w"], torch.stack(singles))
    if len({tuple(sorted(s.items())) for s in map(dict, members)}) == 1:
        assert torch.equal(params["w"], torch.stack(singles))  # shared settings: the same operations


def test_stacked_hyper_shares_what_is_shared_and_stacks_differing_numbers() -> None:
    hyper = stacked_hyper(
        [{"lr": 0.1, "momentum": 0.0, "nesterov": True}, {"lr": 0.5, "momentum": 0.0, "nesterov": True}],
        torch.device("cpu"),
        torch.float64,
    )
    assert isinstance(hyper, dict)
    assert (hyper["momentum"], hyper["nesterov"]) == (0.0, True)  # Python values: the optimizer's operation
    assert torch.equal(hyper["lr"], torch.tensor([0.1, 0.5], dtype=torch.float64))
    assert stacked_hyper([{"nesterov": True}, {"nesterov": False}], torch.device("cpu"), torch.float32) == (
        "members differ in the optimizer's nesterov, which its stacked update shares between them"
    )


def test_a_plugin_optimizer_with_a_stacked_form_is_vmapped(registry: Registry) -> None:
    """What a plugin declares is what the sweep calls: its update, with each member's params as hyper."""
    calls: list[dict[str, Any]] = []

    def update(params: Any, grads: Any, state: dict[str, Any], hyper: Any) -> Any:
        calls.append(dict(hyper))
        return stacked_sgd(params, grads, state, hyper)

    spec = ComponentSpec(
        kind="optimizer",
        name="my-sgd",
        factory=lambda params, lr, momentum, weight_decay: torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay
        ),
        summary="SGD again",
        params=[
            mlbasics.Param(name=name, type=float, default=default)
            for name, default in (("lr", 0.01), ("momentum", 0.0), ("weight_decay", 0.0))
        ],
        stacked=update,
    )
    plugged = Registry.isolated(hook_plugin("my-optimizers", mlbasics_optimizers=lambda: [spec]))
    result = sweep(LINEAR, epochs=30, optimizer="my-sgd", seeds=[0, 1], lrs=[0.05, 0.1], registry=plugged)
    assert (result.mode, len(calls)) == ("vmap", 30)
    assert calls[0]["momentum"] == 0.0
    assert calls[0]["lr"].tolist() == pytest.approx([0.05, 0.1, 0.05, 0.1])
    _assert_members_match_single_runs(result, plugged)


def test_only_an_optimizer_has_a_stacked_form() -> None:
    with pytest.raises(ValueError, match="only an optimizer has a stacked form, not a loss"):
        ComponentSpec(kind="loss", name="l", factory=nn.MSELoss, summary="l", stacked=stacked_sgd)


# -- the grid ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({}, "sweep: nothing to vary; give seeds, lrs or a grid"),
        ({"seeds": []}, "sweep: 'seed' has no values"),
        ({"seeds": [1], "grid": {"seed": [2]}}, "sweep: 'seed' is given twice"),
        (
            {"grid": {"optimizer.momentum": 0.9}},
            "sweep: 'optimizer.momentum' needs a list of values, got 0.9",
        ),
        ({"grid": {"model": "mlp"}}, "sweep: 'model' needs a list of values, got 'mlp'"),
    ],
)
def test_grid_shape_problems(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as error:
        grid_axes(**kwargs)
    assert error.value.problems == (problem,)


def test_member_problems_name_the_member_unless_all_share_them(registry: Registry) -> None:
    with pytest.raises(ValidationError) as error:
        sweep(LINEAR, lrs=[0.1, -1.0, 0.0], registry=registry)
    assert error.value.problems == (
        "member optimizer.lr=-1.0: optimizer 'sgd': param 'lr' must be > 0, got -1.0",
        "member optimizer.lr=0.0: optimizer 'sgd': param 'lr' must be > 0, got 0.0",
    )
    with pytest.raises(ValidationError) as error:
        sweep(LINEAR, seeds=[0, 1], model="mpl", registry=registry)
    assert error.value.problems == ("unknown model 'mpl'; did you mean 'mlp'?",)
    with pytest.raises(ValidationError, match=r"unknown setting 'optimiser'"):
        sweep(LINEAR, grid={"optimiser.lr": [0.1]}, registry=registry)
    with pytest.raises(ValidationError, match=r"sweep\(\) got an unknown setting 'epoch'"):
        sweep(LINEAR, seeds=[1], epoch=3, registry=registry)


def test_sweep_is_public_and_lazy() -> None:
    assert mlbasics.sweep is sweep
    assert "sweep" in dir(mlbasics)
