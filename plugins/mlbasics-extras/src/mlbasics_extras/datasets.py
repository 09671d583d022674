"""The datasets: generated curves, Anscombe's quartet (shipped with the package), and scikit-learn's
diabetes table and the iris, digits, wine and breast-cancer classification tables when
scikit-learn is installed."""

from __future__ import annotations

import csv
import io
from importlib import resources
from typing import Any

import torch

from mlbasics import Dataset, ValidationError


def _uniform_x(name: str, n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    if not low < high:
        raise ValidationError([f"dataset {name!r}: low must be below high, got low={low} and high={high}"])
    return low + (high - low) * torch.rand(n, 1, generator=generator)


def _with_noise(y: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    return y + noise * torch.randn(y.shape, generator=generator) if noise > 0 else y


def polynomial(
    coefficients: list[float], n: int, low: float, high: float, noise: float, seed: int
) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    x = _uniform_x("polynomial", n, low, high, generator)
    y = torch.zeros_like(x)
    for c in reversed(coefficients):  # Horner: ((c_k·x + c_k-1)·x + …) + c0
        y = y * x + c
    return Dataset(features=x, targets=_with_noise(y, noise, generator))


def sine(
    amplitude: float,
    frequency: float,
    phase: float,
    n: int,
    low: float,
    high: float,
    noise: float,
    seed: int,
) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    x = _uniform_x("sine", n, low, high, generator)
    y = amplitude * torch.sin(frequency * x + phase)
    return Dataset(features=x, targets=_with_noise(y, noise, generator))


def anscombe(which: int) -> Dataset:
    """F. J. Anscombe, "Graphs in Statistical Analysis", The American Statistician 27 (1973): four
    tables with the same means, variances, correlation and least-squares line, and very different
    pictures. The values ship inside the package (data/anscombe.csv), so it works offline."""
    text = resources.files(__package__).joinpath("data/anscombe.csv").read_text(encoding="utf-8")
    rows = [
        (float(row["x"]), float(row["y"]))
        for row in csv.DictReader(io.StringIO(text))
        if int(row["set"]) == which
    ]
    return Dataset.from_rows(rows)


def diabetes(scaled: bool) -> Dataset:
    """The diabetes table that scikit-learn ships (Efron et al., "Least Angle Regression", 2004)."""
    from sklearn.datasets import load_diabetes

    table = load_diabetes(scaled=scaled)
    return Dataset(
        features=torch.tensor(table.data, dtype=torch.float32),
        targets=torch.tensor(table.target, dtype=torch.float32).unsqueeze(1),
        feature_names=tuple(table.feature_names),
        target_name="progression",
    )


def _bunch(table: Any, target_name: str) -> Dataset:
    """A scikit-learn classification table: its classes in its own order (its indices), by name."""
    return Dataset(
        features=torch.tensor(table.data, dtype=torch.float32),
        targets=torch.tensor(table.target, dtype=torch.int64),
        feature_names=tuple(str(name) for name in table.feature_names),
        target_name=target_name,
        classes=tuple(str(name) for name in table.target_names),
    )


def iris() -> Dataset:
    """Fisher's iris (1936): sepal and petal length and width of 150 flowers, 50 of each species."""
    from sklearn.datasets import load_iris

    return _bunch(load_iris(), "species")


def digits() -> Dataset:
    """The UCI handwritten digits: 1797 images of 8x8 pixels (values 0 to 16), one feature each."""
    from sklearn.datasets import load_digits

    return _bunch(load_digits(), "digit")


def wine() -> Dataset:
    """The UCI wine table: 178 wines from three cultivars of one region of Italy."""
    from sklearn.datasets import load_wine

    return _bunch(load_wine(), "cultivar")


def breast_cancer() -> Dataset:
    """The Wisconsin diagnostic breast cancer table: 569 masses, 212 malignant and 357 benign."""
    from sklearn.datasets import load_breast_cancer

    return _bunch(load_breast_cancer(), "diagnosis")
