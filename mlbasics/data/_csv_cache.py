"""CSV files larger than memory: a one-time binary cache beside the CSV, memory-mapped.

``memory_map = true`` in the ``csv`` dataset reads the CSV once, block by block (the reader of
:mod:`mlbasics.data._csv`), into a hidden file beside it, ``.NAME.KEY.mlbasics-cache`` (KEY: a hash of
the chosen columns), and maps that file: the dataset's features and targets are CPU tensors backed
by the map, so neither building nor using the cache holds the table in memory; the kernel pages in
what a batch touches and may drop it again.

The file: a header of :data:`HEADER_BYTES` (a magic line, then JSON: the columns, the row count,
the CSV's size, modification time and a hash of its first bytes), then the features as float32
(rows x d, row-major), then the targets (rows x k). It is written under a temporary name and
renamed when complete, so a crash never leaves a half-written cache under the real name. It is
rebuilt when the CSV's size, modification time or first bytes differ from the header's, and when
the cache itself is not what its header says (corrupt, truncated, from another version).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlbasics._files import atomic_path
from mlbasics.data._csv import Header, read_blocks
from mlbasics.data.dataset import Dataset, SourceFile
from mlbasics.errors import DataError

MAGIC = b"mlbasics csv cache\n"
VERSION = 1
#: The header's size: the data start here, aligned for any float32 view.
HEADER_BYTES = 4096
#: Bytes of the CSV's start hashed into the cache key (with its size and modification time).
HEAD_BYTES = 1 << 16


def cache_path(csv_path: str, features: list[str], targets: list[str]) -> Path:
    """Where the cache of these columns of ``csv_path`` lives: beside it, hidden."""
    key = hashlib.sha256(json.dumps([features, targets]).encode()).hexdigest()[:12]
    path = Path(csv_path)
    return path.with_name(f".{path.name}.{key}.mlbasics-cache")


def _stamp(csv_path: str) -> dict[str, Any]:
    source = SourceFile.of(csv_path)
    with open(csv_path, "rb") as file:
        head = hashlib.sha256(file.read(HEAD_BYTES)).hexdigest()
    return {"csv_size": source.size, "csv_mtime_ns": source.mtime_ns, "csv_head_sha256": head}


def _read_meta(path: Path) -> dict[str, Any] | None:
    """The cache's header, or None if there is no cache or it is not one this version wrote."""
    try:
        with open(path, "rb") as file:
            raw = file.read(HEADER_BYTES)
    except OSError:
        return None
    if len(raw) < HEADER_BYTES or not raw.startswith(MAGIC):
        return None
    try:
        meta = json.loads(raw[len(MAGIC) :].rstrip(b"\0 ").decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("version") == VERSION else None


def _valid(meta: dict[str, Any] | None, path: Path, expected: dict[str, Any]) -> bool:
    if meta is None or any(meta.get(key) != value for key, value in expected.items()):
        return False
    rows, width = meta.get("rows"), len(expected["features"]) + len(expected["targets"])
    if not isinstance(rows, int) or rows < 1:
        return False
    try:
        return path.stat().st_size == HEADER_BYTES + rows * width * 4
    except OSError:
        return False


def load(header: Header, features: list[str], targets: list[str]) -> Dataset:
    """The chosen columns of the CSV as a memory-mapped :class:`Dataset`, building (or rebuilding)
    its cache first if needed."""
    path = cache_path(header.path, features, targets)
    try:
        expected = {"features": features, "targets": targets, **_stamp(header.path)}
    except OSError as exc:
        raise DataError(f"{header.path}: cannot be read ({exc.strerror})") from None
    if not _valid(_read_meta(path), path, expected):
        _build(path, header, features, targets, expected)
        if _stamp(header.path) != {
            key: expected[key] for key in ("csv_size", "csv_mtime_ns", "csv_head_sha256")
        }:
            raise DataError(
                f"{header.path}: changed while it was being read; read it again when it is written"
            )
    meta = _read_meta(path)
    if not _valid(meta, path, expected):
        raise DataError(f"{path}: the cache of {header.path} could not be read back; delete it and try again")
    assert meta is not None
    rows, d, k = meta["rows"], len(features), len(targets)
    # Mode "c" (copy-on-write): writable arrays, so torch.from_numpy does not warn; nothing writes.
    feature_map = np.memmap(path, dtype=np.float32, mode="c", offset=HEADER_BYTES, shape=(rows, d))
    target_map = np.memmap(
        path, dtype=np.float32, mode="c", offset=HEADER_BYTES + rows * d * 4, shape=(rows, k)
    )
    return Dataset(
        features=torch.from_numpy(feature_map),
        targets=torch.from_numpy(target_map),
        feature_names=tuple(features),
        target_names=tuple(targets),
        memory_mapped=True,
        # The CSV only: the cache is never written in place (a rebuild renames a new file over
        # it, and this map keeps reading the old one), so another process rebuilding it at the
        # same moment must not stop this run.
        source_files=(SourceFile(header.path, expected["csv_size"], expected["csv_mtime_ns"]),),
    )


def _build(
    path: Path, header: Header, features: list[str], targets: list[str], stamp: dict[str, Any]
) -> None:
    """Write the cache block by block: the features straight into place, the targets into a
    temporary file appended at the end (the row count is known only then)."""
    columns = header.indices(features) + header.indices(targets)
    d, k = len(features), len(targets)
    rows = 0
    with (
        atomic_path(path) as temporary,
        open(temporary, "wb") as out,
        tempfile.TemporaryFile(dir=path.parent) as side,
    ):
        for block in read_blocks(header, columns):
            # The careful reader may start again from row 0 after the fast one: write at start.
            out.seek(HEADER_BYTES + block.start * d * 4)
            out.write(np.ascontiguousarray(block.values[:, :d]).data)
            side.seek(block.start * k * 4)
            side.write(np.ascontiguousarray(block.values[:, d:]).data)
            rows = max(rows, block.start + len(block.values))
        out.truncate(HEADER_BYTES + rows * d * 4)
        out.seek(HEADER_BYTES + rows * d * 4)
        side.seek(0)
        shutil.copyfileobj(side, out, 1 << 20)
        out.truncate(HEADER_BYTES + rows * (d + k) * 4)
        meta = json.dumps({"version": VERSION, **stamp, "rows": rows}).encode()
        if len(MAGIC) + len(meta) > HEADER_BYTES:
            raise DataError(f"{header.path}: too many or too long column names for the cache header")
        out.seek(0)
        out.write(MAGIC + meta + b" " * (HEADER_BYTES - len(MAGIC) - len(meta)))
