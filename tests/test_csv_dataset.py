"""The ``csv`` dataset: the user's own table, and a clear error naming file and line for every flaw.

The reader (mlbasics.data._csv) reads in blocks; with ``tiny_chunks`` every test here runs with blocks of
a few bytes too, so lines split across reads, many blocks and the careful reader's blocks are
exercised on small files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlbasics import DataError, Registry
from mlbasics.data import _csv


@pytest.fixture(autouse=True, params=[None, 7], ids=["4MiB-blocks", "7-byte-blocks"])
def tiny_chunks(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.param is None:
        yield
    else:
        with _csv.chunk_bytes(request.param):
            yield


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


@pytest.mark.parametrize(
    "text",
    [
        "a,b,y\n1,2,3\n4,5,6\n",
        "a,b,y\r\n1,2,3\r\n\r\n4,5,6\r\n",  # Windows line ends, a blank line
        "a,b,y\r1,2,3\r4,5,6",  # old Mac line ends, no final line end
        "\n\na,b,y\n 1 , 2 ,3\n\n4,5,+6e0\n\n",  # blank lines first, spaces around numbers
        'a,"b",y\n"1",2,3\n4,5,6\n',  # quoted cells: the careful reader
        "a,b,y\n1_0,2,3\n4,5,6\n",  # Python reads 1_0 as 10; NumPy does not: the careful reader
        "a,b,y\n1,2,3\n  \n4,5,6\n",  # a line of spaces is blank
        "a,b,y\n1,2,3\n,,\n4,5,6\n",  # so is a line of empty cells
    ],
)
def test_fast_and_careful_readers_agree(registry: Registry, tmp_path: Path, text: str) -> None:
    dataset = registry.build("dataset", "csv", path=_write(tmp_path, text))
    first = 10.0 if "1_0" in text else 1.0
    assert dataset.features.tolist() == [[first, 2], [4, 5]]
    assert dataset.targets.tolist() == [[3], [6]]


def test_unused_columns_may_hold_anything_but_rows_keep_the_header_width(
    registry: Registry, tmp_path: Path
) -> None:
    path = _write(tmp_path, "x,note,y\n1,hello,2\n3,,4\n")
    dataset = registry.build("dataset", "csv", path=path, features=["x"])
    assert dataset.features.tolist() == [[1], [3]]
    path = _write(tmp_path, "x,y,note\n1,2,hi\n3,4\n", name="short.csv")
    with pytest.raises(DataError, match=r"short\.csv, line 3: 2 cells, but the header has 3"):
        registry.build("dataset", "csv", path=path, target="y", features=["x"])
    path = _write(tmp_path, "x,y\n1,2,3\n3,4\n", name="long.csv")
    with pytest.raises(DataError, match=r"long\.csv, line 2: 3 cells, but the header has 2"):
        registry.build("dataset", "csv", path=path)


def test_a_bad_cell_deep_in_a_file_is_named_by_line_and_column(registry: Registry, tmp_path: Path) -> None:
    lines = ["a,b,y"] + [f"{i},{i + 1},{i + 2}" for i in range(3000)]
    lines[2500] = "7,x7,9"
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"data\.csv, line 2501: column 'b' holds 'x7', not a number"):
        registry.build("dataset", "csv", path=path)


_CELLS = st.floats(-1e30, 1e30, allow_nan=False, allow_subnormal=False).map(repr) | st.sampled_from(
    ["0", "-0", "1e-3", "+7", " 3 ", "4E2", "1_0"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_CELLS, min_size=3, max_size=3), min_size=1, max_size=12),
    line_end=st.sampled_from(["\n", "\r\n"]),
)
def test_any_numeric_table_reads_as_python_floats_rounded_to_float32(
    registry: Registry, tmp_path: Path, rows: list[list[str]], line_end: str
) -> None:
    """Whichever reader reads it, every cell is float(cell) rounded to float32, as before."""
    import numpy as np

    path = _write(tmp_path, line_end.join([",".join(["a", "b", "y"]), *(",".join(row) for row in rows)]))
    dataset = registry.build("dataset", "csv", path=path)
    expected = np.array([[float(cell) for cell in row] for row in rows], dtype=np.float64).astype(np.float32)
    assert dataset.features.numpy().tobytes() == np.ascontiguousarray(expected[:, :2]).tobytes()
    assert dataset.targets.numpy().tobytes() == np.ascontiguousarray(expected[:, 2:]).tobytes()


def test_an_unreadable_path_is_one_line(registry: Registry, tmp_path: Path) -> None:
    inside_a_file = Path(_write(tmp_path, "x,y\n1,2\n")) / "data.csv"
    with pytest.raises(DataError, match=r"data\.csv/data\.csv: cannot be read \(Not a directory\)"):
        registry.build("dataset", "csv", path=str(inside_a_file))
    with pytest.raises(DataError, match=r"cannot be read \(Not a directory\)"):
        registry.build("dataset", "csv", path=str(inside_a_file), memory_map=True)
