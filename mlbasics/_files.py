"""Writing files so that a crash or Ctrl-C never leaves one half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlbasics.errors import DataError, MlbasicsError


def check_output_path(path: str | Path, *, what: str) -> None:
    """Fail before any work, not after it, if ``path`` could not be written as a file: its folder
    must exist and it must not be a folder itself. ``what`` names it in the message ("plot file")."""
    target = Path(path)
    if not target.parent.is_dir():
        raise MlbasicsError(f"{what} {str(path)!r}: folder {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise MlbasicsError(f"{what} {str(path)!r}: is a folder, not a file")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it replaces ``path`` in one
    step (a rename), and if the block fails the temporary file is removed and ``path`` is untouched.
    If the folder refuses the temporary file or the rename (not writable, ``path`` a folder), that is
    one :class:`DataError` naming ``path``."""
    target = Path(path)
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        try:
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
    finally:
        temporary.unlink(missing_ok=True)


def _cannot_write(path: str | Path, exc: OSError) -> DataError:
    return DataError(f"{path}: cannot be written ({exc.strerror})")


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
