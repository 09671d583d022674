"""The built-in datasets: the lecture's tables, two generated ones, and the user's own CSV file."""

from __future__ import annotations

import torch

from mlbasics.data._csv import read_header, read_table
from mlbasics.data.dataset import Dataset, GroundTruth
from mlbasics.errors import DataError


def attendance() -> Dataset:
    rows = [(10, 90), (9, 70), (1, 20), (4, 50), (8, 60)]
    return Dataset.from_rows(rows, feature_names=("attendance",), target_name="midterm")


def tiny() -> Dataset:
    return Dataset.from_rows([(1, 1), (2, 2), (3, 3)])


def scores() -> Dataset:
    rows = [(10, 8, 5, 90), (9, 7, 7, 70), (1, 4, 3, 20), (4, 6, 6, 50), (8, 3, 7, 60)]
    return Dataset.from_rows(rows, feature_names=("attendance", "quiz", "assignment1"), target_name="midterm")


def synthetic_linear(n: int, weights: list[float], bias: float, noise: float, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, len(weights), generator=generator)
    targets = features @ torch.tensor(weights).unsqueeze(1) + bias
    if noise > 0:
        targets += noise * torch.randn(n, 1, generator=generator)
    return Dataset(
        features=features,
        targets=targets,
        ground_truth=GroundTruth(weights=tuple(weights), bias=bias),
    )


def quadratic(n: int, noise: float, seed: int) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=generator)
    y = x**2 + 3
    if noise > 0:
        y += noise * torch.randn(n, 1, generator=generator)
    return Dataset(features=x, targets=y)


def csv_table(
    path: str,
    target: str | None,
    features: list[str] | None,
    targets: list[str] | None = None,
    memory_map: bool = False,
) -> Dataset:
    """Read a CSV file with a header row; every problem names the file and, where it has one, the
    line and column (the reader: :mod:`mlbasics.data._csv`). ``targets`` names several target columns:
    the targets are then (n, k) and the model gets k outputs. ``memory_map``: read the file once
    into a binary cache beside it and map that, for files larger than memory
    (:mod:`mlbasics.data._csv_cache`)."""
    header = read_header(path)
    names = header.names
    if target is not None and targets is not None:
        raise DataError(f"{path}: give target or targets, not both")
    chosen = targets if targets is not None else [names[-1] if target is None else target]
    if len(set(chosen)) != len(chosen):
        repeated = sorted({name for name in chosen if chosen.count(name) > 1})
        raise DataError(f"{path}: target column {repeated[0]!r} is named twice")
    features = [name for name in names if name not in chosen] if features is None else features
    for column in [*chosen, *features]:
        header.require_column(column)
    both = [name for name in chosen if name in features]
    if both:
        raise DataError(f"{path}: column {both[0]!r} is both the target and a feature")
    if not features:
        label = ", ".join(repr(name) for name in chosen)
        raise DataError(
            f"{path}: no feature columns besides the target{'s' if len(chosen) > 1 else ''} {label}"
        )
    if memory_map:
        from mlbasics.data import _csv_cache

        return _csv_cache.load(header, features, chosen)
    feature_values, target_values = read_table(header, [header.indices(features), header.indices(chosen)])
    return Dataset(
        features=torch.from_numpy(feature_values),
        targets=torch.from_numpy(target_values),
        feature_names=tuple(features),
        target_names=tuple(chosen),
    )
