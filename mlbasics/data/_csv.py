"""Reading a CSV file of numbers: fast, in bounded memory, and exact about where a cell is wrong.

Two readers share one contract. The *fast* one hands blocks of lines to ``numpy.loadtxt`` (its C
parser, which NumPy has had since 1.23) and never looks at a row in Python; it gives up at the
first thing it is not sure about: a quote, a cell that is not a finite float32 number, a row whose
length differs from the header's, text that is not UTF-8. The *careful* one is the standard
library's ``csv`` module, row by row, with every rule the ``csv`` dataset has always had (quoted
cells, blank lines skipped, whitespace around numbers, underscores in numbers as Python reads
them); it runs only when the fast one gave up, from the start of the file, and either reads the
file (whatever the fast reader found unusual was fine after all) or raises the one-line error
naming the file, line and column. Both produce the same numbers for any file both accept: NumPy
and Python parse decimal text with the same correctly rounded conversion to float64, and both
round to float32 the same way.

Neither holds the file's text: both read it in blocks of :data:`CHUNK_BYTES` and yield float32
blocks of rows, so what stays in memory is the float32 table (or nothing, when the blocks go to a
cache file, see :mod:`mlbasics.data._csv_cache`). Why NumPy and not pyarrow or polars: docs/performance.md.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final, NamedTuple

import numpy as np

from mlbasics._files import check_names
from mlbasics.core.registry import suggest
from mlbasics.errors import DataError

#: Bytes of the file read at a time. The tests set it to a few bytes, so that every code path that
#: a 10 GB file takes (blocks, lines split across reads, the careful reader's blocks) runs on a
#: five-line file.
CHUNK_BYTES = 1 << 20

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_BOM = codecs.BOM_UTF8


class Header(NamedTuple):
    """A CSV file's header: its column names (stripped), the line it is on, and where the data begin
    (a byte offset; None when the header itself needed the careful reader)."""

    path: str
    line: int
    names: list[str]
    data_offset: int | None

    def require_column(self, name: str, hint: str | None = None) -> None:
        if name not in self.names:
            hint = suggest(name, self.names) or hint or f"; columns: {', '.join(self.names)}"
            raise DataError(f"{self.path}, line {self.line}: no column {name!r} in the header{hint}")

    def indices(self, columns: list[str]) -> list[int]:
        for name in columns:
            self.require_column(name)
        return [self.names.index(name) for name in columns]


class Block(NamedTuple):
    """Rows ``start`` to ``start + len(values)`` of the chosen columns, as float32."""

    start: int
    values: np.ndarray


class _GiveUp(Exception):
    """The fast reader met something it does not judge: the careful reader takes over."""


def _open(path: str) -> IO[bytes]:
    check_names(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def _is_blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def read_header(path: str) -> Header:
    """The header row: the first line that is not blank. Every problem with the file as a whole
    (missing, a folder, empty, a repeated column name) is one :class:`DataError` naming it."""
    with _open(path) as file:
        try:
            return _fast_header(path, file)
        except _GiveUp:
            pass
    for line, row in _careful_rows(path):
        return _header(path, line, row, None)
    raise DataError(f"{path}: empty file, expected a header row and data rows")


def _header(path: str, line: int, row: list[str], offset: int | None) -> Header:
    names = [name.strip() for name in row]
    if len(names) == 1:
        separator = next((mark for mark in _OTHER_SEPARATORS if mark in names[0]), None)
        if separator is not None:
            raise DataError(
                f"{path}, line {line}: the header is one column, {names[0]!r}: the file separates its "
                f"cells with {_OTHER_SEPARATORS[separator]}, and the csv dataset reads commas; save it "
                f"with commas between the cells (a spreadsheet's CSV, comma-separated)"
            )
    if all(_is_number(name) for name in names):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise DataError(
            f"{path}, line {line}: the first row holds only numbers ({shown}), so it is data, not a header; "
            f"the csv dataset needs a header row naming the columns first (such as x,y)"
        )
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{path}, line {line}: column {repeated[0]!r} appears twice in the header")
    return Header(path, line, names, offset)


#: Separators other than the comma that a CSV file may use, with how a message names them.
_OTHER_SEPARATORS: Final = {";": "semicolons (;)", "\t": "tabs", "|": "bars (|)"}


def _is_number(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return False
    return True


def _fast_header(path: str, file: IO[bytes]) -> Header:
    """The header from the first bytes of the file, and the byte offset just past it."""
    size = 1 << 16
    while True:
        file.seek(0)
        head = file.read(size)
        at_end = len(head) < size
        bom = len(_BOM) if head.startswith(_BOM) else 0
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(head[bom:], final=at_end)
        except UnicodeDecodeError:
            raise _GiveUp from None
        consumed = 0

        def lines(source: str) -> Iterator[str]:
            nonlocal consumed
            for line in io.StringIO(source, newline=""):
                consumed += len(line)
                yield line

        reader = csv.reader(lines(text), strict=True)
        try:
            for row in reader:
                if _is_blank(row):
                    continue
                complete = at_end or text[consumed - 1] in "\r\n"
                if not complete:
                    break  # the header may go on past what was read: read more
                offset = bom + len(text[:consumed].encode("utf-8"))
                return _header(path, reader.line_num, row, offset)
            else:
                if at_end:
                    raise DataError(f"{path}: empty file, expected a header row and data rows")
        except csv.Error:
            raise _GiveUp from None
        size *= 4


def read_blocks(header: Header, columns: list[int]) -> Iterator[Block]:
    """The values of ``columns`` (indices into the header), block by block, as finite float32.

    Fast first; if the fast reader gives up, the careful one starts again from row 0 (the
    consumer writes each block at its ``start``, so rows already written are simply written
    again) and either reads the whole file or raises the error that names the bad cell. A file
    without a single data row is an error."""
    rows = 0
    if header.data_offset is not None:
        try:
            for block in _fast_blocks(header, columns):
                rows = block.start + len(block.values)
                yield block
            if rows:
                return
        except _GiveUp:
            pass
    rows = 0
    for block in _careful_blocks(header, columns):
        rows = block.start + len(block.values)
        yield block
    if rows == 0:
        raise DataError(f"{header.path}: only a header row, no data")


def _fast_blocks(header: Header, columns: list[int]) -> Iterator[Block]:
    width = len(header.names)
    last = width - 1
    # loadtxt checks only that the columns it parses exist in a row. So the last column is always
    # parsed (every row reaches it; if it holds text, the careful reader takes over), and then the
    # count of commas in a block must be exactly (width - 1) per row (none has more).
    used = columns if last in columns else [*columns, last]
    assert header.data_offset is not None
    start = 0
    with _open(header.path) as file:
        file.seek(header.data_offset)
        for raw in _line_blocks(file):
            if b'"' in raw:
                raise _GiveUp
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _GiveUp from None
            if not text.strip():
                if text.strip(" \t\r\n"):
                    raise _GiveUp  # other whitespace: let the careful reader judge it
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error")
                    values = np.loadtxt(
                        io.StringIO(text, newline=None),
                        dtype=np.float64,
                        delimiter=",",
                        comments=None,
                        usecols=used,
                        ndmin=2,
                    )
            except (ValueError, UserWarning):
                raise _GiveUp from None
            if raw.count(b",") != len(values) * last:
                raise _GiveUp
            values = values[:, : len(columns)]
            if not np.all(np.abs(values) <= _FLOAT32_MAX):  # NaN is not <= anything
                raise _GiveUp
            yield Block(start, values.astype(np.float32))
            start += len(values)


def _line_blocks(file: IO[bytes]) -> Iterator[bytes]:
    """The rest of ``file`` in pieces of about :data:`CHUNK_BYTES`, each ending at a line end."""
    pending = b""
    while True:
        data = file.read(CHUNK_BYTES)
        if not data:
            if pending:
                yield pending
            return
        pending += data
        cut = pending.rfind(b"\n")
        if cut < 0:  # old Mac line ends; a final "\r" may be half of a "\r\n"
            cut = pending.rfind(b"\r", 0, len(pending) - 1)
        if cut < 0:
            continue
        yield pending[: cut + 1]
        pending = pending[cut + 1 :]


def _careful_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """Every non-blank row of the file, with the line it ends on, as the csv module reads it."""
    with _open(path) as binary, io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True)
        try:
            for row in reader:
                if not _is_blank(row):
                    yield reader.line_num, row
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None


def _careful_blocks(header: Header, columns: list[int]) -> Iterator[Block]:
    rows = _careful_rows(header.path)
    for _ in rows:
        break  # the header row
    per_block = max(1, CHUNK_BYTES // 64)
    start, pending = 0, []
    for line, row in rows:
        pending.append(_numbers(header, line, row, columns))
        if len(pending) == per_block:
            yield Block(start, np.array(pending, dtype=np.float64).astype(np.float32))
            start, pending = start + len(pending), []
    if pending:
        yield Block(start, np.array(pending, dtype=np.float64).astype(np.float32))


def _numbers(header: Header, line: int, row: list[str], columns: list[int]) -> list[float]:
    path, names = header.path, header.names
    if len(row) != len(names):
        raise DataError(f"{path}, line {line}: {len(row)} cells, but the header has {len(names)}")
    values = []
    for index in columns:
        cell = row[index].strip()
        try:
            value = float(cell)
        except ValueError:
            raise DataError(
                f"{path}, line {line}: column {names[index]!r} holds {cell!r}, not a number"
            ) from None
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise DataError(
                f"{path}, line {line}: column {names[index]!r} holds {cell!r}, not a finite float32 number"
            )
        values.append(value)
    return values


def is_number(cell: str) -> bool:
    """Whether a cell reads as a number (``nan`` and ``inf`` too: numbers, if bad ones)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def first_label(header: Header, column: int) -> str | None:
    """The first non-empty cell of ``column`` (stripped), reading no further than it: whether a
    target column holds numbers or words (class labels) is told by its first value."""
    rows = _careful_rows(header.path)
    for _ in rows:
        break  # the header row
    for _, row in rows:
        if column < len(row) and row[column].strip():
            return row[column].strip()
    return None


def read_labels(header: Header, column: int) -> tuple[list[str], list[int]]:
    """Every data row's cell of ``column`` (stripped), and the line each row ends on: the class
    labels of a classification table. A row of the wrong length, or an empty label, is one
    :class:`DataError` naming the file, line and column."""
    path, names = header.path, header.names
    labels: list[str] = []
    lines: list[int] = []
    rows = _careful_rows(path)
    for _ in rows:
        break  # the header row
    for line, row in rows:
        if len(row) != len(names):
            raise DataError(f"{path}, line {line}: {len(row)} cells, but the header has {len(names)}")
        label = row[column].strip()
        if not label:
            raise DataError(
                f"{path}, line {line}: column {names[column]!r} is empty; every row needs a class label"
            )
        labels.append(label)
        lines.append(line)
    if not labels:
        raise DataError(f"{path}: only a header row, no data")
    return labels, lines


def count_lines(path: str) -> int:
    """An upper bound on the rows of the file (its line ends, plus one), read in blocks."""
    lines = 1
    with _open(path) as file:
        while data := file.read(CHUNK_BYTES):
            lines += max(data.count(b"\n"), data.count(b"\r"))
    return lines + 1  # a "\r\n" split between two reads is counted by neither max


def read_table(header: Header, groups: list[list[int]]) -> list[np.ndarray]:
    """The columns of each group (say, the features and the targets) as float32 arrays (n, len(group)),
    filled block by block: the file's text is never all in memory, and the arrays are allocated
    once (from a count of the file's lines), grown only if that count was short."""
    columns = [index for group in groups for index in group]
    capacity = count_lines(header.path)
    arrays = [np.empty((capacity, len(group)), dtype=np.float32) for group in groups]
    rows = 0
    for block in read_blocks(header, columns):
        end = block.start + len(block.values)
        if end > capacity:
            capacity = max(end, 2 * capacity)
            arrays = [_grown(array, capacity) for array in arrays]
        offset = 0
        for array, group in zip(arrays, groups, strict=True):
            array[block.start : end] = block.values[:, offset : offset + len(group)]
            offset += len(group)
        rows = max(rows, end)
    # A view: the few rows counted but not filled (blank lines, the header) are not worth a copy.
    return [array[:rows] for array in arrays]


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    grown = np.empty((rows, array.shape[1]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown


@contextlib.contextmanager
def chunk_bytes(size: int) -> Iterator[None]:
    """Read in pieces of ``size`` bytes inside the block (the tests use a few bytes)."""
    global CHUNK_BYTES
    saved, CHUNK_BYTES = CHUNK_BYTES, size
    try:
        yield
    finally:
        CHUNK_BYTES = saved


def file_stamp(path: str | Path) -> tuple[int, int]:
    """(size, mtime_ns) of a file: what tells that it changed."""
    status = Path(path).stat()
    return status.st_size, status.st_mtime_ns
