"""The built-in datasets: the lecture's tables exactly, the generated ones seeded and shaped."""

from __future__ import annotations

import pytest
import torch

from mlbasics import Dataset, Registry


def _table(dataset: Dataset) -> list[list[float]]:
    return torch.cat([dataset.features, dataset.targets], dim=1).tolist()


def test_attendance_is_the_lecture_table(registry: Registry) -> None:
    dataset = registry.build("dataset", "attendance")
    assert _table(dataset) == [[10, 90], [9, 70], [1, 20], [4, 50], [8, 60]]
    assert dataset.feature_names == ("attendance",)
    assert dataset.target_name == "midterm"


def test_tiny(registry: Registry) -> None:
    assert _table(registry.build("dataset", "tiny")) == [[1, 1], [2, 2], [3, 3]]


def test_scores_is_the_lecture_table(registry: Registry) -> None:
    dataset = registry.build("dataset", "scores")
    assert _table(dataset) == [[10, 8, 5, 90], [9, 7, 7, 70], [1, 4, 3, 20], [4, 6, 6, 50], [8, 3, 7, 60]]
    assert dataset.feature_names == ("attendance", "quiz", "assignment1")


@pytest.mark.parametrize("name", ["attendance", "tiny", "scores", "synthetic-linear", "quadratic"])
def test_every_dataset_is_float32_with_targets_n_by_1(registry: Registry, name: str) -> None:
    dataset = registry.build("dataset", name)
    assert dataset.features.dtype == dataset.targets.dtype == torch.float32
    assert dataset.features.ndim == 2
    assert dataset.targets.shape == (dataset.n_samples, 1)
    assert torch.isfinite(dataset.features).all()
    assert torch.isfinite(dataset.targets).all()


def test_synthetic_linear_defaults_and_ground_truth(registry: Registry) -> None:
    dataset = registry.build("dataset", "synthetic-linear")
    assert dataset.features.shape == (100, 3)
    assert dataset.ground_truth is not None
    assert dataset.ground_truth.weights == (1.0, 2.0, 3.0)
    assert dataset.ground_truth.bias == 5.0
    expected = dataset.features @ torch.tensor([[1.0], [2.0], [3.0]]) + 5.0
    torch.testing.assert_close(dataset.targets, expected)


def test_synthetic_linear_overrides_noise_and_seed(registry: Registry) -> None:
    noisy = registry.build(
        "dataset", "synthetic-linear", n=2000, weights=[0.5, -1], bias=2, noise=0.5, seed=3
    )
    assert noisy.features.shape == (2000, 2)
    residual = noisy.targets - (noisy.features @ torch.tensor([[0.5], [-1.0]]) + 2)
    assert 0.45 < float(residual.std()) < 0.55
    same = registry.build("dataset", "synthetic-linear", n=2000, weights=[0.5, -1], bias=2, noise=0.5, seed=3)
    other = registry.build(
        "dataset", "synthetic-linear", n=2000, weights=[0.5, -1], bias=2, noise=0.5, seed=4
    )
    assert torch.equal(noisy.targets, same.targets)
    assert not torch.equal(noisy.targets, other.targets)


def test_quadratic(registry: Registry) -> None:
    dataset = registry.build("dataset", "quadratic")
    assert dataset.features.shape == (1000, 1)
    torch.testing.assert_close(dataset.targets, dataset.features**2 + 3)
    assert not torch.equal(dataset.features, registry.build("dataset", "quadratic", seed=1).features)


def test_building_a_dataset_leaves_the_global_rng_alone(registry: Registry) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    registry.build("dataset", "quadratic")
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("features", "targets", "message"),
    [
        (torch.zeros(3), torch.zeros(3, 1), r"features must be a 2-D tensor"),
        (torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1), "features must be float32"),
        (torch.zeros(3, 1), torch.zeros(3), r"targets must be a tensor shaped \(n, k\), k >= 1"),
        (torch.zeros(3, 1), torch.zeros(3, 0), r"targets must be a tensor shaped \(n, k\), k >= 1"),
        (torch.zeros(3, 1), torch.zeros(4, 1), "3 feature rows but 4 targets"),
    ],
)
def test_dataset_contract_is_checked(features: torch.Tensor, targets: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dataset(features=features, targets=targets)
