"""Writing files so that a crash, Ctrl-C or a full disk never leaves one half-written, and finding
out before any work whether they could be written at all."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mlbasics.errors import DataError, MlbasicsError, SaveError

#: Temporary files are named after the file they replace, shortened so that the temporary name is
#: never longer than the file system allows when the final name is not.
_TEMPORARY_NAME_STEM = 64


def check_output_path(path: str | Path, *, what: str) -> None:
    """Fail before any work, not after it, if ``path`` could not be written as a file: its folder
    must exist and take new files, it must not be a folder itself, and its names must not be too
    long for the file system. ``what`` names it in the message ("plot file")."""
    target = Path(path)
    folder = target.parent
    check_names(path, what=f"{what} {str(path)!r}", writing=True)  # first: see check_names
    if not folder.is_dir():
        blocker = _first_non_folder(folder)
        if blocker is not None:
            raise MlbasicsError(f"{what} {str(path)!r}: {str(blocker)!r} is a file, not a folder")
        raise MlbasicsError(f"{what} {str(path)!r}: folder {str(folder)!r} does not exist")
    if target.is_dir():
        raise MlbasicsError(f"{what} {str(path)!r}: is a folder, not a file")
    try:  # the only sure test of "can a file be made there" (a read-only mount, /proc) is to make one
        descriptor, probe = tempfile.mkstemp(dir=folder, prefix=".mlbasics-probe-", suffix=".tmp")
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        reason = refusal(exc, folder)
        raise SaveError(f"{what} {str(path)!r}: cannot be written there ({reason})", reason=reason) from None


def check_names(
    path: str | Path, *, what: str | None = None, writing: bool = False, longest_inside: str = ""
) -> None:
    """The check every path a user gives goes through before it is used, read or written (a run
    folder, a config or data file, a plot, a log, a plugin file): a name in it too long for its file
    system, which the operating system answers at any use -- even asking whether it exists -- with
    ENAMETOOLONG (errno 36), is one line starting with ``what`` (by default the path itself): a
    :class:`SaveError` for a path to be written (``writing``), else a :class:`DataError`.
    ``longest_inside``: see :func:`name_problem`."""
    problem = name_problem(Path(path), longest_inside=longest_inside)
    if problem is None:
        return
    message = f"{str(path) if what is None else what}: {problem}"
    raise SaveError(message, reason=problem) if writing else DataError(message)


def name_problem(path: Path, *, longest_inside: str = "") -> str | None:
    """Why ``path`` cannot be created because a name in it is too long for its file system (each
    name against ``PC_NAME_MAX``, the whole path, with ``longest_inside`` appended, against
    ``PC_PATH_MAX``), or ``None``. Says nothing where the system cannot tell its limits."""
    existing = _nearest_existing(path)
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # no limits known (Windows has no pathconf)
        return None
    for name in path.parts:
        size = len(os.fsencode(name))
        if size > name_max > 0:
            return f"the name {name[:24]!r}... is {size} bytes long; the file system allows {name_max}"
    whole = len(os.fsencode(os.path.join(path, longest_inside) if longest_inside else str(path)))
    if whole >= path_max > 0:
        return f"the path is {whole} bytes long; the file system allows {path_max - 1}"
    return None


def refusal(exc: OSError, place: Path, *, creates_folders: bool = False) -> str:
    """The operating system's reason for refusing to write at ``place``, in words a user can act on.
    ``creates_folders``: the writer makes ``place`` and its missing parents itself, so a missing
    folder cannot be the reason."""
    existing = _nearest_existing(place)
    if exc.errno == errno.ENOENT and existing.is_dir() and (creates_folders or existing == place):
        # /proc and other pseudo file systems answer "no such file" to creating one
        return f"{existing} does not take new files"
    return exc.strerror or str(exc)


def _nearest_existing(path: Path) -> Path:
    while not _exists(path) and path != path.parent:
        path = path.parent
    return path


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long to even ask about
        return False


def _first_non_folder(path: Path) -> Path | None:
    """The first of ``path``'s ancestors (or itself) that exists but is not a folder, if any."""
    for ancestor in [*reversed(path.parents), path]:
        if ancestor.exists() and not ancestor.is_dir():
            return ancestor
    return None


def umask() -> int:
    """The process's umask: the permission bits new files and folders are made without."""
    try:  # Linux says it without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it (and back at once)
    os.umask(mask)
    return mask


def usual_mode(*, folder: bool = False) -> int:
    """The mode ``open()`` or ``mkdir()`` would give a new file or folder under the umask (0644
    and 0755 under the usual 022). ``tempfile`` makes its files 0600 and its folders 0700, which a
    file or folder it becomes must not keep: a classmate could not open a shared plot."""
    return (0o777 if folder else 0o666) & ~umask()


def temporary_folder(folder: Path, *, prefix: str, suffix: str) -> Path:
    """A new folder inside ``folder`` with a unique name, made with :func:`usual_mode`'s mode
    (``tempfile.mkdtemp``'s 0700 otherwise), to be renamed into place once it is filled."""
    made = Path(tempfile.mkdtemp(dir=folder, prefix=prefix, suffix=suffix))
    os.chmod(made, usual_mode(folder=True))
    return made


def temporary_file(target: Path) -> tuple[int, Path]:
    """A new, open file beside ``target`` (its descriptor and path), to be renamed over it once
    written: ``target``'s mode if it exists, else :func:`usual_mode`'s (``tempfile.mkstemp``'s 0600
    otherwise). Raises ``OSError`` as ``mkstemp`` does."""
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name[:_TEMPORARY_NAME_STEM]}.", suffix=".tmp"
    )
    try:
        mode = os.stat(target).st_mode & 0o7777 if target.is_file() else usual_mode()
        if hasattr(os, "fchmod"):  # POSIX (Windows files have no such modes)
            os.fchmod(fd, mode)
    except OSError:
        pass  # a mode that cannot be set (a file system without modes) is no reason not to write
    return fd, Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it replaces ``path`` in one
    step (a rename), and if the block fails the temporary file is removed and ``path`` is untouched.
    If the operating system refuses any of it (a full disk, a read-only folder, ``path`` a folder),
    that is one :class:`SaveError` naming ``path`` and the reason. The file ends with the mode a
    plain write gives it (:func:`temporary_file`)."""
    target = Path(path)
    check_names(path, writing=True)
    try:
        fd, temporary = temporary_file(target)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    os.close(fd)
    try:
        try:
            yield temporary
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
    finally:
        temporary.unlink(missing_ok=True)


def _cannot_write(path: str | Path, exc: OSError) -> SaveError:
    reason = refusal(exc, Path(path).parent)
    return SaveError(f"{path}: cannot be written ({reason})", reason=reason)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
