"""Dataset.format_table: the lecture's tables as text, long datasets cut short with a count."""

from __future__ import annotations

import pytest

from mlbasics import Dataset, Registry


def test_attendance_as_the_lecture_writes_it(registry: Registry) -> None:
    table = registry.build("dataset", "attendance").format_table()
    assert table.splitlines() == [
        "attendance  midterm",
        "        10       90",
        "         9       70",
        "         1       20",
        "         4       50",
        "         8       60",
    ]


def test_columns_are_features_then_target_right_aligned() -> None:
    dataset = Dataset.from_rows([(1.5, -20, 3), (10, 2, 0.25)], feature_names=("a", "bee"), target_name="y")
    assert dataset.format_table().splitlines() == [
        "  a  bee     y",
        "1.5  -20     3",
        " 10    2  0.25",
    ]


def test_digits_are_significant_digits() -> None:
    dataset = Dataset.from_rows([(1 / 3, 2 / 3)])
    assert dataset.format_table(digits=3).splitlines()[1] == "0.333  0.667"


def test_long_datasets_show_max_rows_and_say_how_many_are_left(registry: Registry) -> None:
    lines = registry.build("dataset", "quadratic", n=12).format_table(max_rows=3).splitlines()
    assert len(lines) == 1 + 3 + 1
    assert lines[-1] == "... 9 more rows (12 in all)"
    one_left = registry.build("dataset", "quadratic", n=4).format_table(max_rows=3).splitlines()
    assert one_left[-1] == "... 1 more row (4 in all)"


def test_no_limit_and_zero_rows(registry: Registry) -> None:
    dataset = registry.build("dataset", "quadratic", n=25)
    assert len(dataset.format_table(max_rows=None).splitlines()) == 26
    assert dataset.format_table(max_rows=0).splitlines() == ["x  y", "... 25 more rows (25 in all)"]


def test_a_negative_max_rows_is_refused(registry: Registry) -> None:
    with pytest.raises(ValueError, match="max_rows must be >= 0 or None, got -1"):
        registry.build("dataset", "tiny").format_table(max_rows=-1)
