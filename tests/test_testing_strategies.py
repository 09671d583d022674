"""mlbasics.testing.strategies: what each strategy promises, values or strategies for every
argument, and clear errors for bad arguments and bad drawn values."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from torch import nn

from mlbasics import Dataset, Registry
from mlbasics.testing import strategies as mst

REGISTRY = Registry.isolated()
FLOAT_DTYPES = [torch.float16, torch.float32, torch.float64]


@given(data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES))
def test_tensors_are_bounded_finite_and_of_their_dtype(data: st.DataObject, dtype: torch.dtype) -> None:
    tensor = data.draw(mst.tensors(dtype=dtype, shape=mst.shapes(max_dims=3, max_side=4)))
    assert tensor.dtype == dtype
    assert 1 <= tensor.ndim <= 3
    assert all(1 <= side <= 4 for side in tensor.shape)
    assert bool(torch.isfinite(tensor).all())
    assert bool((tensor.abs() <= mst.DEFAULT_BOUND).all())
    tiny = torch.finfo(dtype).tiny
    assert bool(((tensor == 0) | (tensor.abs() >= tiny)).all())  # no subnormals by default


@given(value=mst.floats(torch.float32, min_value=0.1, max_value=0.3))
def test_floats_are_exact_in_their_dtype_even_with_inexact_bounds(value: float) -> None:
    assert float(torch.tensor(value, dtype=torch.float32)) == value
    assert 0.1 <= value <= 0.3


@given(
    tensor=mst.tensors(
        dtype=st.sampled_from([torch.float32, torch.float64]),
        shape=st.tuples(st.integers(1, 3), st.just(2)),
        min_value=st.floats(-1, 0),
        max_value=1.0,
        device=st.just("cpu"),
    )
)
def test_every_tensor_argument_takes_a_strategy(tensor: torch.Tensor) -> None:
    assert tensor.shape[1] == 2
    assert bool((tensor.abs() <= 1).all())


@given(tensor=mst.tensors(shape=(3,), elements=st.sampled_from([0.5, 1.5])))
def test_elements_replace_the_default_values(tensor: torch.Tensor) -> None:
    assert set(tensor.tolist()) <= {0.5, 1.5}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: mst.tensors(dtype=torch.int64),
            r"tensors\(dtype=torch.int64\): the dtype must be torch.float16",
        ),
        (
            lambda: mst.tensors(shape=(2, -1)),
            r"tensors\(shape=\(2, -1\)\): a shape must be a tuple of ints >= 0",
        ),
        (
            lambda: mst.tensors(min_value=float("nan")),
            r"tensors\(min_value=nan\): it must be a finite number",
        ),
        (lambda: mst.tensors(device="gpu"), r"tensors\(device='gpu'\): unknown device 'gpu'"),
        (lambda: mst.linear_stacks(depth=0), r"linear_stacks\(depth=0\): it must be an int >= 1"),
        (lambda: mst.floats(torch.bfloat16), r"floats\(dtype=torch.bfloat16\)"),
        (lambda: mst.datasets(n_features=True), r"datasets\(n_features=True\): it must be an int >= 1"),
        (
            lambda: mst.linear_datasets(weights=[]),
            r"linear_datasets\(weights=\[\]\): it must be a non-empty list",
        ),
    ],
)
def test_a_bad_argument_is_named_at_once(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make()


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (
            mst.tensors(shape=st.just("ab")),
            r"tensors\(shape=\.\.\.\): the strategy drew 'ab', but a shape must be",
        ),
        (mst.tensors(dtype=st.just(torch.int32)), r"tensors\(dtype=\.\.\.\): the strategy drew torch.int32"),
        (
            mst.linear_stacks(sizes=st.just(0)),
            r"linear_stacks\(sizes=\.\.\.\): the strategy drew 0, but it must be an int >= 1",
        ),
        (
            mst.linear_datasets(n_samples=st.just(2), n_features=3),
            r"the strategy drew 2, but it must be an int >= 4",
        ),
    ],
)
def test_a_bad_drawn_value_is_named_when_drawn(strategy: st.SearchStrategy[Any], message: str) -> None:
    @settings(max_examples=1, database=None)
    @given(strategy)
    def draw(_: object) -> None:
        pass

    with pytest.raises(InvalidArgument, match=message):
        draw()


@settings(max_examples=50)
@given(data=st.data())
def test_linear_stacks_are_drawn_without_torchs_rng(data: st.DataObject) -> None:
    before = torch.get_rng_state()
    stack = data.draw(
        mst.linear_stacks(depth=st.integers(1, 4), in_features=3, out_features=2, bias=st.booleans())
    )
    assert torch.equal(before, torch.get_rng_state())
    assert isinstance(stack, nn.Sequential)
    assert 1 <= len(stack) <= 4
    assert all(isinstance(layer, nn.Linear) and layer.weight.dtype == torch.float64 for layer in stack)
    assert (stack[0].in_features, stack[-1].out_features) == (3, 2)
    assert all(a.out_features == b.in_features for a, b in itertools.pairwise(stack))
    assert all(bool((p.abs() <= 2).all()) for p in stack.parameters())


@given(data=mst.datasets(n_samples=st.integers(1, 5), n_features=2))
def test_datasets_have_consistent_shapes(data: Dataset) -> None:
    assert isinstance(data, Dataset)
    assert data.n_features == 2
    assert 1 <= data.n_samples <= 5
    assert data.targets.shape == (data.n_samples, 1)


@given(data=mst.datasets(n_targets=st.integers(1, 3)))
def test_datasets_may_have_several_targets(data: Dataset) -> None:
    assert data.targets.shape == (data.n_samples, data.n_targets)
    assert 1 <= data.n_targets <= 3
    assert len(data.target_names) == data.n_targets


@settings(max_examples=50)
@given(data=mst.linear_datasets(feature_scales=st.floats(1.0, 3.0)))
def test_linear_datasets_are_well_conditioned_by_construction(data: Dataset) -> None:
    x = data.features.double()
    n, d = x.shape
    assert n >= d + 1
    # Centred, orthogonal columns with root-mean-square in [1, 3]: XᵀX / n is diagonal.
    gram = x.T @ x / n
    scales = gram.diagonal().sqrt()
    assert bool(((scales >= 1 - 1e-5) & (scales <= 3 + 1e-5)).all())
    off_diagonal = gram - torch.diag(gram.diagonal())
    assert float(off_diagonal.abs().max()) <= 1e-5 * float(gram.diagonal().max())
    assert float(x.mean(0).abs().max()) <= 1e-5 * float(scales.max())
    assert data.ground_truth is not None
    truth = torch.tensor(data.ground_truth.weights, dtype=torch.float64)
    predicted = x @ truth + data.ground_truth.bias
    assert torch.allclose(predicted, data.targets.double()[:, 0], rtol=1e-5, atol=1e-4)


@given(data=mst.linear_datasets(weights=[1.0, -2.0], bias=0.5, n_samples=st.integers(3, 6)))
def test_linear_dataset_arguments_fix_what_they_name(data: Dataset) -> None:
    assert data.ground_truth is not None
    assert data.ground_truth.weights == (1.0, -2.0)
    assert data.ground_truth.bias == 0.5
    assert data.n_features == 2


@pytest.mark.parametrize(
    "spec", [s for s in REGISTRY.specs() if s.params], ids=lambda s: f"{s.kind}:{s.name}"
)
@settings(max_examples=30)
@given(data=st.data())
def test_params_drawn_for_a_spec_are_accepted_by_the_registry(spec: Any, data: st.DataObject) -> None:
    values = data.draw(mst.params(spec, registry=REGISTRY))
    assert set(values) == {p.name for p in spec.params}
    sizes = {"in_features": 2} if spec.kind == "model" else {}
    assert REGISTRY.check(spec.kind, spec.name, {**values, **sizes}) == []


@given(values=mst.params(REGISTRY.get("optimizer", "sgd"), lr=0.5, momentum=st.just(0.25)))
def test_params_take_values_or_strategies_per_param(values: dict[str, Any]) -> None:
    assert (values["lr"], values["momentum"]) == (0.5, 0.25)
    assert 0 <= values["weight_decay"] <= 100


def test_params_name_an_unknown_override() -> None:
    with pytest.raises(
        InvalidArgument, match=r"params\(optimizer 'sgd'\): no param 'momentun'; did you mean 'momentum'\?"
    ):
        mst.params(REGISTRY.get("optimizer", "sgd"), momentun=0.1)


def test_params_check_what_an_override_draws() -> None:
    @settings(max_examples=1, database=None)
    @given(mst.params(REGISTRY.get("optimizer", "sgd"), lr=st.just(-1.0)))
    def draw(_: object) -> None:
        pass

    with pytest.raises(InvalidArgument, match=r"drew lr=-1.0, which the spec rejects: must be > 0"):
        draw()


@given(seed=mst.seeds())
def test_seeds_fit_torch(seed: int) -> None:
    torch.Generator().manual_seed(seed)
