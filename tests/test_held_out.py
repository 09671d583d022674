"""Held-out rows, mini-batches and standardization, end to end: the CLI (in-process), the run
folder, predictions in the data's units, sweeps ranked by validation loss, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import torch

import mlbasics
from mlbasics import Checkpoint, ComponentSpec, Dataset, DivergenceError, Experiment, Registry, hookimpl
from mlbasics.cli import main
from mlbasics.engine.setup import prepare
from mlbasics.errors import DataError
from mlbasics.notes import forget_notes

ROOT = Path(__file__).parent.parent
HOUSES = str(ROOT / "examples" / "houses.csv")
LINEAR = {"dataset": "synthetic-linear", "model": "linear", "device": "cpu"}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- the lecture's runs are untouched ---------------------------------------------------------------


def test_the_defaults_add_nothing_to_the_experiment_file_or_the_json() -> None:
    # No loss: left out, it is the dataset's task's (mse, or cross-entropy on class labels).
    assert set(Experiment().to_dict()) == {"epochs", "device", "seed", "dataset", "model", "optimizer"}
    assert set(Experiment(loss="mse").to_dict()) == {
        "epochs",
        "device",
        "seed",
        "dataset",
        "model",
        "loss",
        "optimizer",
    }
    result = mlbasics.train(epochs=3, device="cpu")
    assert "validation_loss" not in result.to_dict()
    assert result.validation_history == []
    assert result.test_loss is None


def test_data_settings_round_trip_through_toml() -> None:
    experiment = Experiment(
        validation=0.2, test=0.1, split_seed=3, batch_size=8, shuffle=False, drop_last=True
    )
    experiment = experiment.with_value("standardize", "features")
    assert Experiment.from_toml(experiment.to_toml()) == experiment


# -- held-out rows --------------------------------------------------------------------------------


def test_validation_loss_is_recorded_at_every_sync_point_and_test_once() -> None:
    result = mlbasics.train(
        **LINEAR, epochs=40, log_every=10, validation=0.2, test=0.1, optimizer={"name": "sgd", "lr": 0.05}
    )
    assert [epoch for epoch, _ in result.validation_history] == [10, 20, 30, 40]
    assert result.split_sizes == {"train": 70, "validation": 20, "test": 10}
    assert result.test_loss is not None
    # the recorded validation loss is the loss of the final parameters on the validation rows
    experiment = result.experiment
    setup = prepare(experiment)
    setup.model.load_state_dict(result.model.state_dict())
    assert setup.validation is not None
    assert float(setup.evaluate_part(setup.validation)) == result.validation_loss
    data = result.to_dict()
    assert data["validation_loss"] == result.validation_loss
    assert data["split"] == {"train": 70, "validation": 20, "test": 10}


def test_the_run_folder_keeps_validation_history_split_and_scaling(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    experiment = Experiment(
        **LINEAR, epochs=20, log_every=5, validation=0.25, standardize="features+target", optimizer="sgd"
    )
    result = mlbasics.train(experiment, save=folder)
    lines = (folder / "checkpoint" / "history.csv").read_text().splitlines()
    assert lines[0] == "epoch,loss,validation_loss"
    assert lines[1].endswith(",")
    assert lines[5] == f"5,{result.history[4]!r},{result.validation_history[0][1]!r}"
    checkpoint = Checkpoint.load(folder)
    assert checkpoint.validation_history == result.validation_history
    assert checkpoint.split is not None
    assert checkpoint.split["sizes"] == {
        "train": 75,
        "validation": 25,
        "test": 0,
    }
    x = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    assert torch.equal(checkpoint.predict(x), result.predict(x))


def test_a_dataset_can_bring_its_own_validation_rows() -> None:
    train = Dataset.from_rows([(0, 1), (1, 3), (2, 5), (3, 7)])
    held = Dataset.from_rows([(10, 21), (11, 23)])
    own = attrs.evolve(train, validation=held)

    class Plugin:
        @hookimpl
        def mlbasics_datasets(self) -> list[ComponentSpec]:
            return [ComponentSpec(kind="dataset", name="own", factory=lambda: own, summary="own parts")]

    result = mlbasics.train(
        registry=Registry.isolated(Plugin()), dataset="own", model="linear", optimizer="lstsq", device="cpu"
    )
    assert result.split_sizes == {"train": 4, "validation": 2, "test": 0}
    assert result.validation_loss is not None
    assert result.validation_loss < 1e-6


def test_a_sweep_ranks_by_validation_loss_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    common = dict(LINEAR, epochs=30, validation=0.3, seeds=[0], lrs=[0.001, 0.01, 0.1])
    stacked = mlbasics.sweep(**common)
    assert stacked.mode == "vmap"
    assert stacked.ranked_by == "validation loss"
    losses = [m.validation_loss for m in stacked.ranked()]
    assert losses == sorted(losses)  # type: ignore[type-var]
    one_by_one = mlbasics.sweep(**common, vmap=False)
    for a, b in zip(stacked.members, one_by_one.members, strict=True):
        assert a.validation_loss == pytest.approx(b.validation_loss, rel=1e-4)
    status, out, _ = _cli(
        capsys, "sweep", "--dataset", "synthetic-linear", "--model", "linear", "--lr", "0.1", "--seeds", "0,1",
        "--epochs", "5", "--validation", "0.2", "--device", "cpu",
    )  # fmt: skip
    assert status == 0
    assert "ranked by validation loss" in out


# -- mini-batches ---------------------------------------------------------------------------------


def test_mini_batches_converge_where_a_few_full_batch_epochs_do_not() -> None:
    common = dict(LINEAR, epochs=5, optimizer={"name": "sgd", "lr": 0.05})
    full = mlbasics.train(**common)
    batched = mlbasics.train(**common, batch_size=10)
    assert batched.final_loss < full.final_loss / 100


def test_the_cuda_graph_is_not_used_with_mini_batches_and_a_note_says_why() -> None:
    from mlbasics.engine.steppers import capture_problem

    setup = prepare(Experiment(**LINEAR, batch_size=10))
    problem = capture_problem(setup)
    assert problem is not None
    assert "mini-batches" in problem


def test_lbfgs_takes_a_closure_per_mini_batch() -> None:
    result = mlbasics.train(**LINEAR, optimizer="lbfgs", epochs=3, batch_size=25)
    assert result.final_loss < 1e-3


@attrs.frozen(kw_only=True, eq=False)
class _Mapped(Dataset):
    """A stand-in for a memory-mapped dataset: counts the checks of its file."""

    checks: list[int] = attrs.field(factory=list)

    def check_unchanged(self) -> None:
        self.checks.append(1)
        if len(self.checks) > 3:
            raise DataError("houses.bin: changed since it was read (size 10 bytes, was 20)")


def _mapped_registry(data: Dataset) -> Registry:
    class Plugin:
        @hookimpl
        def mlbasics_datasets(self) -> list[ComponentSpec]:
            return [ComponentSpec(kind="dataset", name="mapped", factory=lambda: data, summary="mapped")]

    return Registry.isolated(Plugin())


def test_a_memory_mapped_dataset_trains_on_host_gathered_batches_bitwise_as_in_memory() -> None:
    source = mlbasics.core.registry.default_registry().build("dataset", "synthetic-linear", noise=0.5)
    common = {
        "model": "linear",
        "device": "cpu",
        "epochs": 3,
        "log_every": 1,
        "batch_size": 16,
        "validation": 0.2,
    }
    common |= {"standardize": "features", "optimizer": {"name": "sgd", "lr": 0.05}}
    in_memory = mlbasics.train(registry=_mapped_registry(source), dataset="mapped", **common)
    mapped = _Mapped(features=source.features, targets=source.targets, memory_mapped=True)
    streamed = mlbasics.train(registry=_mapped_registry(mapped), dataset="mapped", **common)
    assert streamed.history == in_memory.history
    assert streamed.validation_history == in_memory.validation_history
    assert len(mapped.checks) == 3  # at every sync point
    with pytest.raises(mlbasics.ValidationError, match=r"memory-mapped.*--batch-size"):
        mlbasics.train(registry=_mapped_registry(mapped), dataset="mapped", model="linear", device="cpu")


def test_a_file_that_changes_during_training_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    source = mlbasics.core.registry.default_registry().build("dataset", "synthetic-linear")
    mapped = _Mapped(features=source.features, targets=source.targets, memory_mapped=True)
    with pytest.raises(DataError, match=r"houses\.bin: changed"):
        mlbasics.train(
            registry=_mapped_registry(mapped), dataset="mapped", model="linear", device="cpu", epochs=10,
            log_every=1, batch_size=10,
        )  # fmt: skip


# -- standardization ------------------------------------------------------------------------------


def test_a_feature_in_the_thousands_diverges_with_sgd_but_converges_standardized() -> None:
    houses = {
        "dataset": {"name": "csv", "path": HOUSES, "target": "price"},
        "model": "linear",
        "device": "cpu",
    }
    closed_form = mlbasics.train(**houses, optimizer="lstsq").final_loss
    with pytest.raises(DivergenceError):
        mlbasics.train(**houses, optimizer={"name": "sgd", "lr": 1e-6}, epochs=200)
    # Standardized columns of 200 rows; the Hessian 2·corr(X) has eigenvalues in about [0.3, 4.4]
    # (sqft and bedrooms are correlated), so lr 0.1 contracts by at least 0.97 per epoch: 500 epochs
    # bring the loss to within 1e-6 of the minimum, far inside the 1% the test asks.
    scaled = mlbasics.train(
        **houses, optimizer={"name": "sgd", "lr": 0.1}, epochs=500, standardize="features"
    )
    assert scaled.final_loss == pytest.approx(closed_form, rel=0.01)
    assert scaled.final_loss >= closed_form * (1 - 1e-5)  # and not below the minimum


def test_the_summary_shows_the_linear_weights_in_the_data_units(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _cli(
        capsys, "train", "--dataset", "synthetic-linear", "--model", "linear", "--lr", "0.1", "--epochs", "300",
        "--standardize", "features+target", "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert status == 0
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("│ w[", "│ b "))]
    learned = [float(row[-4]) for row in rows]
    assert learned == pytest.approx([1.0, 2.0, 3.0, 5.0], abs=1e-4)
    assert "standardized: features+target" in out


def test_json_output_of_a_run_with_everything(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _cli(
        capsys, "train", "--dataset", "csv", "--set", f"dataset.path={HOUSES!r}", "--set", "dataset.target='price'",
        "--model", "linear", "--lr", "0.05", "--epochs", "20", "--validation", "0.2", "--test", "0.1",
        "--batch-size", "32", "--standardize", "features", "--device", "cpu", "--json",
    )  # fmt: skip
    assert status == 0
    data = json.loads(out)
    assert data["split"] == {"train": 140, "validation": 40, "test": 20}
    assert len(data["validation_history"]) == 20
    assert data["test_loss"] > 0
    assert set(data["standardization"]) == {"feature_mean", "feature_std"}
    assert data["experiment"]["batch_size"] == 32


# -- bad input: one line, exit 2, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--validation", "1.0"], "validation must be a fraction of the rows in [0, 1), got 1.0"),
        (["--validation", "-0.1"], "validation must be a fraction of the rows in [0, 1), got -0.1"),
        (["--validation", "0.6", "--test", "0.4"], "validation + test must leave rows to train on"),
        (["--test", "0.05"], "dataset 'attendance': test = 0.05 of 5 rows is 0 rows"),
        (["--validation", "0.5", "--test", "0.45"], "leave 0 rows to train on (3 validation, 2 test)"),
        (["--batch-size", "0"], "batch_size must be >= 1 (rows per step), got 0"),
        (["--batch-size", "6"], "batch_size 6 is larger than the 5 training rows of dataset 'attendance'"),
        (["--batch-size", "5", "--validation", "0.2"], "batch_size 5 is larger than the 4 training rows"),
        (["--set", "standardize='both'"], "standardize must be one of 'none', 'features', 'features+target'"),
    ],
)
def test_bad_data_settings_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flags: list[str], message: str
) -> None:
    folder = tmp_path / "run"
    status, _out, err = _cli(
        capsys, "train", "--dataset", "attendance", "--model", "linear", "--save", str(folder), *flags
    )
    assert status == 2
    assert err.count("\n") == 1, err
    assert message in err
    assert not folder.exists()


def test_a_constant_feature_is_centred_not_scaled(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # As scikit-learn's StandardScaler: std taken as 1, so nothing is divided by 0; a note says so.
    forget_notes()
    table = tmp_path / "flat.csv"
    table.write_text("x,level,y\n1,7,2\n2,7,4\n3,7,6\n4,7,8\n")
    status, _, err = _cli(
        capsys, "train", "--dataset", "csv", "--set", f"dataset.path={str(table)!r}", "--model", "linear",
        "--standardize", "features", "--epochs", "2", "--quiet",
    )  # fmt: skip
    assert status == 0
    assert err.strip() == (
        "mlbasics: note: standardize: feature column 'level' is constant on the 4 training rows: centred, not scaled"
    )
    result = mlbasics.train(
        dataset={"name": "csv", "path": str(table)}, model="linear", standardize="features", epochs=2
    )
    assert result.standardization is not None
    assert result.standardization.feature_std.tolist()[1] == 1.0
    assert result.standardization.feature_mean.tolist()[1] == 7.0


def test_a_constant_target_cannot_be_standardized(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    table = tmp_path / "flat.csv"
    table.write_text("x,y\n1,7\n2,7\n3,7\n4,7\n")
    status, _, err = _cli(
        capsys, "train", "--dataset", "csv", "--set", f"dataset.path={str(table)!r}", "--model", "linear",
        "--standardize", "features+target", "--epochs", "2",
    )  # fmt: skip
    assert status == 2
    assert err.strip() == (
        "mlbasics: error: standardize: target column 'y' is constant on the 4 training rows (every value 7), "
        'so it cannot be scaled; use standardize = "features"'
    )


def test_resuming_with_other_data_settings_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    mlbasics.train(**LINEAR, epochs=4, batch_size=10, save=folder)
    with pytest.raises(mlbasics.ValidationError, match="batch_size is 20 now but was 10"):
        mlbasics.resume(folder, epochs=8, batch_size=20)
