"""The ``csv`` dataset: the user's own table, and a clear error naming file and line for every flaw."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbasics import DataError, Registry


def _write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def test_reads_features_and_target_by_header_name(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path, "hours,quiz,score\n1,2,10\n3,4,30\n\n5,6,50\n")
    dataset = registry.build("dataset", "csv", path=path)
    assert dataset.feature_names == ("hours", "quiz")
    assert dataset.target_name == "score"
    assert dataset.features.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert dataset.targets.tolist() == [[10], [30], [50]]
    chosen = registry.build("dataset", "csv", path=path, target="hours", features=["quiz"])
    assert chosen.features.tolist() == [[2], [4], [6]]
    assert chosen.targets.tolist() == [[1], [3], [5]]


def test_quoted_cells_and_byte_order_mark(registry: Registry, tmp_path: Path) -> None:
    path = _write(tmp_path, '\ufeff"x","y"\n"1.5","2"\n'.encode())
    assert registry.build("dataset", "csv", path=path).features.tolist() == [[1.5]]


@pytest.mark.parametrize(
    ("content", "params", "message"),
    [
        (None, {}, r"missing\.csv: no such file"),
        ("", {}, r"data\.csv: empty file"),
        ("x,y\n", {}, r"data\.csv: only a header row, no data"),
        ("x,y\n1,2\n3\n", {}, r"data\.csv, line 3: 1 cells, but the header has 2"),
        ("x,y\n1,2\n3,abc\n", {}, r"data\.csv, line 3: column 'y' holds 'abc', not a number"),
        ("x,y\n1,nan\n", {}, r"data\.csv, line 2: column 'y' holds 'nan', not a finite float32 number"),
        ("x,y\n1,inf\n", {}, r"data\.csv, line 2: column 'y' holds 'inf'"),
        ("x,y\n1,1e39\n", {}, r"data\.csv, line 2: column 'y' holds '1e39'"),
        ("x,y\n1,2\n", {"target": "z"}, r"data\.csv, line 1: no column 'z' in the header; columns: x, y"),
        (
            "hours,score\n1,2\n",
            {"target": "scor"},
            r"data\.csv, line 1: no column 'scor' in the header; did you mean 'score'\?",
        ),
        ("x,y\n1,2\n", {"features": ["x", "w"]}, r"data\.csv, line 1: no column 'w' in the header"),
        ("x,y\n1,2\n", {"features": ["y"]}, r"column 'y' is both the target and a feature"),
        ("y\n1\n", {}, r"no feature columns besides the target 'y'"),
        ("x,x,y\n1,2,3\n", {}, r"data\.csv, line 1: column 'x' appears twice in the header"),
        (b"x,y\n\xff\xfe,1\n", {}, r"data\.csv: not UTF-8 text"),
        ('x,y\n"1,2\n', {}, r"data\.csv, line \d+: not valid CSV"),
    ],
)
def test_malformed_files_name_file_and_line(
    registry: Registry, tmp_path: Path, content: str | bytes | None, params: dict[str, object], message: str
) -> None:
    path = str(tmp_path / "missing.csv") if content is None else _write(tmp_path, content)
    with pytest.raises(DataError, match=message):
        registry.build("dataset", "csv", path=path, **params)


def test_a_folder_is_not_a_csv_file(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        registry.build("dataset", "csv", path=str(tmp_path))
