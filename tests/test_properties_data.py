"""Properties of held-out rows, mini-batches and standardization (issue 12's "done when").

- a split is a partition of the rows: disjoint, covering, and the same for the same seed;
- a shuffled epoch visits every training row exactly once (and twice never);
- ``batch_size = n`` trains bitwise as full-batch training does;
- standardize -> lstsq -> predict gives lstsq's predictions on the raw data (tolerance below);
- a mini-batch run with shuffling resumed in the middle is bitwise the run never stopped (CPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mlbasics
from mlbasics import ComponentSpec, Dataset, Experiment, Registry, hookimpl
from mlbasics.data.batches import minibatch_epoch
from mlbasics.data.splits import split_rows
from mlbasics.engine.setup import prepare
from mlbasics.testing.strategies import linear_datasets, seeds, tensors


class DrawnDataset:
    """A one-dataset plugin serving data drawn by Hypothesis, named ``drawn``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    @hookimpl
    def mlbasics_datasets(self) -> list[ComponentSpec]:
        return [ComponentSpec(kind="dataset", name="drawn", factory=lambda: self.dataset, summary="drawn")]


def _registry(dataset: Dataset) -> Registry:
    return Registry.isolated(DrawnDataset(dataset))


fractions = st.floats(0.0, 0.45, allow_nan=False)


@given(n=st.integers(1, 300), validation=fractions, test=fractions, seed=seeds())
def test_a_split_is_a_partition_and_deterministic_per_seed(
    n: int, validation: float, test: float, seed: int
) -> None:
    sizes = {name: int(f * n + 0.5) for name, f in (("validation", validation), ("test", test))}
    empty = (validation > 0 and sizes["validation"] == 0) or (test > 0 and sizes["test"] == 0)
    if empty or n - sum(sizes.values()) < 1:  # a part asked for would be empty: one line naming the sizes
        with pytest.raises(ValueError, match=f"of {n} rows"):
            split_rows(n, validation=validation, test=test, seed=seed)
        return
    split = split_rows(n, validation=validation, test=test, seed=seed)
    parts = [split.train, split.validation, split.test]
    every = torch.cat(parts)
    assert sorted(every.tolist()) == list(range(n))  # covering and disjoint
    assert all(bool((part[1:] > part[:-1]).all()) for part in parts)  # each in the table's order
    again = split_rows(n, validation=validation, test=test, seed=seed)
    assert all(
        torch.equal(a, b) for a, b in zip(parts, [again.train, again.validation, again.test], strict=True)
    )
    assert split.fingerprint() == again.fingerprint()
    assert len(split.validation) == (0 if validation == 0 else int(validation * n + 0.5))


@given(n=st.integers(2, 200), batch=st.integers(1, 200), drop_last=st.booleans(), seed=seeds())
def test_a_shuffled_epoch_visits_every_training_row_once(
    n: int, batch: int, drop_last: bool, seed: int
) -> None:
    batch = min(batch, n - 1)  # more than one batch: otherwise it is the full batch
    data = Dataset(features=torch.zeros(n, 1), targets=torch.zeros(n, 1))
    experiment = Experiment(
        dataset="drawn",
        model="linear",
        optimizer="sgd",
        batch_size=batch,
        drop_last=drop_last,
        seed=seed,
        device="cpu",
    )
    setup = prepare(experiment, _registry(data))
    setup.features = torch.arange(n, dtype=torch.float32).unsqueeze(1)  # each row names itself
    seen: list[list[int]] = []

    def body(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append([int(v) for v in x[:, 0]])
        return torch.zeros(())

    epoch = minibatch_epoch(setup, body)
    orders = []
    for _ in range(2):
        seen.clear()
        epoch()
        rows = [row for batch_rows in seen for row in batch_rows]
        kept = n - n % batch if drop_last else n
        assert len(rows) == kept  # every row but the dropped ones ...
        assert len(set(rows)) == kept  # ... each once
        assert all(len(b) == batch for b in seen[:-1])
        assert 0 < len(seen[-1]) <= batch
        orders.append(rows)
    if n >= 12:  # a new order each epoch: the same one twice has odds of 1 in n! (< 1 in 4e8)
        assert orders[0] != orders[1]


@st.composite
def noisy(draw: st.DrawFn) -> Dataset:
    data = draw(linear_datasets(), label="data")
    noise = draw(
        tensors(dtype=torch.float32, shape=(data.n_samples, 1), min_value=-1, max_value=1), label="noise"
    )
    return Dataset(features=data.features, targets=data.targets + noise)


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(data=noisy(), epochs=st.integers(1, 6), seed=seeds())
def test_batch_size_n_is_full_batch_training_bitwise(data: Dataset, epochs: int, seed: int) -> None:
    common = {"dataset": "drawn", "model": "linear", "optimizer": {"name": "sgd", "lr": 0.05}}
    common |= {"epochs": epochs, "seed": seed, "device": "cpu", "log_every": 2}
    full = mlbasics.train(registry=_registry(data), **common)
    batched = mlbasics.train(registry=_registry(data), batch_size=data.n_samples, shuffle=True, **common)
    assert full.history == batched.history
    assert all(torch.equal(full.parameters[k], batched.parameters[k]) for k in full.parameters)


# Why RTOL: both fits solve least squares in float64 from float32 data (mlbasics.builtin.optimizers).
# The drawn features are centred orthogonal columns with rms s_i in [1, 2] (linear_datasets), so the
# scaled design is orthonormal up to float32 rounding and both problems have condition number <= 2.
# What differs is float32 rounding: scaling x (2 roundings per value), storing the solution's
# weights as float32 (1 rounding), the forward pass (d + 1 roundings in the sum), and unscaling the
# output (2). Each rounding moves a prediction by at most eps32 = 6e-8 times S, the size of its
# largest partial sum (S = |b| + sum_i |w_i x_i| of the raw solution), amplified by the condition
# number at most 2: |difference| <= 2 (d + 6) eps32 S <= 2 * 11 * 6e-8 S < 1.4e-6 S for d <= 5.
# RTOL = 1e-5 leaves a factor of 7 for the solver's own float64 rounding (negligible: 1e-15).
RTOL = 1e-5


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(data=noisy(), target=st.booleans())
def test_standardize_then_lstsq_predicts_as_lstsq_on_the_raw_data(data: Dataset, target: bool) -> None:
    assume(not target or float(data.targets.std()) > 0)  # a constant target cannot be scaled (an error)
    common = {"dataset": "drawn", "model": "linear", "optimizer": "lstsq", "device": "cpu"}
    raw = mlbasics.train(registry=_registry(data), **common)
    scaled = mlbasics.train(
        registry=_registry(data), standardize="features+target" if target else "features", **common
    )
    x = data.features
    expected, got = raw.predict(x).double(), scaled.predict(x).double()
    w, b = raw.parameters["weight"].double(), raw.parameters["bias"].double()
    size = float(b.abs().max() + (x.double().abs() @ w.abs().T).max())
    assert float((expected - got).abs().max()) <= RTOL * size
    data_units = scaled.parameters_in_data_units()
    assert float((data_units["weight"].double() - w).abs().max()) <= RTOL * (1 + float(w.abs().max()))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(12, 40),  # at least 9 training rows with a quarter held out: every drawn batch fits
    batch=st.integers(2, 7),
    stop=st.integers(1, 9),
    validation=st.sampled_from([0.0, 0.25]),
    seed=seeds(),
)
def test_a_shuffled_mini_batch_run_resumed_midway_is_bitwise_the_same(
    tmp_path_factory: object, n: int, batch: int, stop: int, validation: float, seed: int
) -> None:
    folder = Path(tmp_path_factory.mktemp("run"))  # type: ignore[attr-defined]
    experiment = Experiment(
        dataset={"name": "quadratic", "n": n, "noise": 0.1},
        model={"name": "mlp", "hidden": [4]},
        # What is compared is bitwise sameness, not convergence: the targets are standardized too
        # and the steps small, so no drawn start diverges (y = x² + 3 unscaled reached NaN at lr 0.02).
        optimizer={"name": "sgd", "lr": 0.005, "momentum": 0.9},
        epochs=10,
        seed=seed,
        device="cpu",
        log_every=1,
        batch_size=batch,
        validation=validation,
        standardize="features+target",
    )
    whole = mlbasics.train(experiment)
    mlbasics.train(experiment, epochs=stop, save=folder)
    resumed = mlbasics.resume(folder, epochs=10)
    assert resumed.history == whole.history
    assert resumed.validation_history == whole.validation_history
    assert all(torch.equal(whole.parameters[k], resumed.parameters[k]) for k in whole.parameters)
