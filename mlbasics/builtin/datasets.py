"""The built-in datasets: the lecture's tables, two generated ones, and the user's own CSV file."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import NamedTuple

import torch

from mlbasics.data import Dataset, GroundTruth
from mlbasics.errors import DataError
from mlbasics.registry import suggest

_FLOAT32_MAX = torch.finfo(torch.float32).max


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


def csv_table(path: str, target: str | None, features: list[str] | None) -> Dataset:
    """Read a CSV file with a header row; every problem names the file and, where it has one, the line."""
    table = read_csv(path)
    header = table.header
    target = header[-1] if target is None else target
    features = [name for name in header if name != target] if features is None else features
    for column in [target, *features]:
        table.require_column(column)
    if target in features:
        raise DataError(f"{path}: column {target!r} is both the target and a feature")
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    data = torch.tensor(table.numbers([*features, target]), dtype=torch.float32)
    return Dataset(
        features=data[:, :-1].contiguous(),
        targets=data[:, -1:].contiguous(),
        feature_names=tuple(features),
        target_name=target,
    )


class CsvTable(NamedTuple):
    """A CSV file's header (names stripped) and data rows, each row with its line number in the file."""

    path: str
    header_line: int
    header: list[str]
    rows: list[tuple[int, list[str]]]

    def require_column(self, name: str, hint: str | None = None) -> None:
        if name not in self.header:
            hint = suggest(name, self.header) or hint or f"; columns: {', '.join(self.header)}"
            raise DataError(f"{self.path}, line {self.header_line}: no column {name!r} in the header{hint}")

    def numbers(self, columns: list[str]) -> list[list[float]]:
        """The values of ``columns``, row by row, as finite float32 numbers."""
        wanted = [self.header.index(name) for name in columns]
        return [_numbers(self.path, number, row, self.header, wanted) for number, row in self.rows]


def read_csv(path: str) -> CsvTable:
    """Read a CSV file with a header row and at least one data row. Blank lines are skipped; line
    numbers are the file's, so messages point at the right place."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: empty file, expected a header row and data rows")
    header_line, header = rows[0]
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise DataError(f"{path}, line {header_line}: column {repeated[0]!r} appears twice in the header")
    if len(rows) == 1:
        raise DataError(f"{path}: only a header row, no data")
    return CsvTable(path, header_line, header, rows[1:])


def _numbers(path: str, line: int, row: list[str], header: list[str], wanted: list[int]) -> list[float]:
    if len(row) != len(header):
        raise DataError(f"{path}, line {line}: {len(row)} cells, but the header has {len(header)}")
    values = []
    for index in wanted:
        cell = row[index].strip()
        try:
            value = float(cell)
        except ValueError:
            raise DataError(
                f"{path}, line {line}: column {header[index]!r} holds {cell!r}, not a number"
            ) from None
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise DataError(
                f"{path}, line {line}: column {header[index]!r} holds {cell!r}, not a finite float32 number"
            )
        values.append(value)
    return values
