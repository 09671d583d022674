"""The built-in datasets: the lecture's tables, two generated ones, three of class labels (xor, blobs,
spirals), and the user's own CSV file (real-valued targets or class labels)."""

from __future__ import annotations

import math

import torch

from mlbasics.data._csv import Header, first_label, is_number, read_header, read_labels, read_table
from mlbasics.data.dataset import MAX_CLASSES, Dataset, GroundTruth, RowSource
from mlbasics.errors import DataError, ValidationError


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


def xor() -> Dataset:
    """The truth table of exclusive or: class 1 where exactly one of x1, x2 is 1. No line separates
    the two classes, so no linear model classifies more than three of the four rows."""
    features = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return Dataset(
        features=features,
        targets=torch.tensor([0, 1, 1, 0]),
        feature_names=("x1", "x2"),
        target_name="xor",
        classes=("0", "1"),
    )


def _shuffled(
    features: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(len(labels), generator=generator)
    return features[order].contiguous(), labels[order].contiguous()


def _labels(n: int, classes: int) -> torch.Tensor:
    """n rows shared out among the classes as evenly as they go (the first classes one more)."""
    return torch.arange(n) % classes


def blobs(classes: int, n: int, features: int, spread: float, seed: int) -> Dataset:
    """Gaussian clusters, one per class: centres uniform in [-10, 10] in each feature, rows around
    them with standard deviation ``spread`` (scikit-learn's ``make_blobs``), in a shuffled order."""
    _enough_rows("blobs", n, classes)
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(classes, features, generator=generator) * 20 - 10
    labels = _labels(n, classes)
    points = centres[labels] + spread * torch.randn(n, features, generator=generator)
    points, labels = _shuffled(points, labels, generator)
    return Dataset(features=points, targets=labels, classes=tuple(str(c) for c in range(classes)))


def spirals(classes: int, n: int, turns: float, noise: float, seed: int) -> Dataset:
    """Interleaved spiral arms, one per class, from the centre out to radius 1: arm c at radius r
    has angle 2π·(turns·r + c/classes), plus Gaussian noise of ``noise`` on each coordinate. Their
    boundary is no line: a lesson in what a hidden layer buys."""
    _enough_rows("spirals", n, classes)
    generator = torch.Generator().manual_seed(seed)
    labels = _labels(n, classes)
    radius = torch.rand(n, generator=generator) * 0.95 + 0.05
    angle = 2 * torch.pi * (turns * radius + labels / classes)
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    if noise > 0:
        points = points + noise * torch.randn(n, 2, generator=generator)
    points, labels = _shuffled(points, labels, generator)
    return Dataset(features=points, targets=labels, classes=tuple(str(c) for c in range(classes)))


def _enough_rows(name: str, n: int, classes: int) -> None:
    if n < classes:
        raise ValidationError(
            [f"dataset {name!r}: n = {n} rows cannot hold {classes} classes; give n >= {classes}"]
        )


def csv_table(
    path: str,
    target: str | None,
    features: list[str] | None,
    targets: list[str] | None = None,
    memory_map: bool = False,
    classes: bool = False,
) -> Dataset:
    """Read a CSV file with a header row; every problem names the file and, where it has one, the
    line and column (the reader: :mod:`mlbasics.data._csv`). ``targets`` names several target columns:
    the targets are then (n, k) and the model gets k outputs. ``memory_map``: read the file once
    into a binary cache beside it and map that, for files larger than memory
    (:mod:`mlbasics.data._csv_cache`). A target of words, or any target with ``classes``, holds
    class labels (:func:`labelled_table`)."""
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
    if len(chosen) == 1:
        index = header.indices(chosen)[0]
        first = first_label(header, index)
        if classes or (first is not None and not is_number(first)):
            if memory_map:
                raise DataError(
                    f"{path}: memory_map reads numbers only, and column {chosen[0]!r} holds class labels; "
                    "drop memory_map"
                )
            return labelled_table(header, features, chosen[0])
    elif classes:
        raise DataError(f"{path}: class labels come from one target column, not {len(chosen)}; give target")
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


def labelled_table(header: Header, features: list[str], target: str) -> Dataset:
    """A table whose target column holds class labels: words (the classes are their sorted names)
    or numbers (sorted by value, named as written without a trailing ``.0``: ``1.0`` and ``1`` are
    one class). Every row keeps the line it came from, so a later problem names it."""
    path = header.path
    index = header.indices([target])[0]
    labels, lines = read_labels(header, index)
    (feature_values,) = read_table(header, [header.indices(features)])
    if len(feature_values) != len(labels):  # both readers skip the same blank lines
        raise DataError(f"{path}: {len(feature_values)} rows of features but {len(labels)} labels")
    names, indices = _classes_of(header, target, labels, lines)
    return Dataset(
        features=torch.from_numpy(feature_values),
        targets=torch.tensor(indices, dtype=torch.int64),
        feature_names=tuple(features),
        target_name=target,
        classes=names,
        row_source=RowSource(path, target, torch.tensor(lines, dtype=torch.int64)),
    )


def _classes_of(
    header: Header, target: str, labels: list[str], lines: list[int]
) -> tuple[tuple[str, ...], list[int]]:
    """The classes, sorted, and each row's class index. More than :data:`MAX_CLASSES` classes, or
    a single one, is one line naming the file (and the line of the label one too many)."""
    numbers = all(is_number(label) and math.isfinite(float(label)) for label in labels)
    keys: dict[str, float | str] = {}
    for label, line in zip(labels, lines, strict=True):
        name = _number_name(label) if numbers else label
        if name not in keys:
            if len(keys) == MAX_CLASSES:
                raise DataError(
                    f"{header.path}, line {line}: column {target!r} holds a {MAX_CLASSES + 1:,}th different "
                    f"label, {label!r}; a classification has at most {MAX_CLASSES:,} classes (is it an id "
                    "or a measurement? then it is no class label)"
                )
            keys[name] = float(label) if numbers else name
    if len(keys) < 2:
        only = next(iter(keys))
        raise DataError(
            f"{header.path}: column {target!r} holds one class label only, {only!r}; a classifier needs "
            "rows of at least two classes"
        )
    names = tuple(sorted(keys, key=lambda name: keys[name]))
    position = {name: i for i, name in enumerate(names)}
    return names, [position[_number_name(label) if numbers else label] for label in labels]


def _number_name(text: str) -> str:
    """A numeric label's class name: ``"1"`` for 1, 1.0 and 1e0; ``"0.5"`` for 0.5."""
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)
