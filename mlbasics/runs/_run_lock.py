"""One run per run folder: a lock that a run holds on its folder for as long as it may write there.

The lock is ``flock`` on the file ``DIR/.lock``, which also holds the process id of the run
that has it (for the message that refuses a second run). The operating system drops the lock when
its holder's file is closed, so also when the process dies in any way (kill -9 included): there are
no stale locks to clean up. On systems without ``flock`` (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Final

from mlbasics._files import refusal
from mlbasics.errors import SaveError

LOCK_FILE: Final = ".lock"


class RunFolderLock:
    """Held by the run writing into ``folder``; :meth:`acquire` refuses a second one, in this
    process or another, with a :class:`SaveError` naming the process that holds it."""

    def __init__(self, folder: Path, descriptor: int | None, *, created: bool) -> None:
        self.folder = folder
        self._descriptor = descriptor
        self._created = created

    @classmethod
    def acquire(cls, folder: Path) -> RunFolderLock:
        """Create ``folder`` if needed and lock it. Creating the folder and the lock file (and
        writing the process id into it) is also the check that the folder can be written at all."""
        created = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _refused(folder, exc) from None
        if sys.platform == "win32":
            return cls(folder, None, created=created)
        try:
            descriptor = _lock(folder / LOCK_FILE)
        except SaveError:
            if created:
                _remove_empty(folder)
            raise
        except OSError as exc:
            if created:
                _remove_empty(folder)
            raise _refused(folder, exc) from None
        return cls(folder, descriptor, created=created)

    def release(self) -> None:
        """Let go of the folder. A folder this lock created that holds nothing but the lock file (no
        checkpoint was ever written) is removed, so a run that wrote nothing leaves nothing."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        try:
            if self._created and {entry.name for entry in self.folder.iterdir()} == {LOCK_FILE}:
                # Removed while still locked: whoever opened it meanwhile sees it is gone (see _lock).
                (self.folder / LOCK_FILE).unlink()
                self.folder.rmdir()
        except OSError:
            pass  # tidying up only
        finally:
            os.close(descriptor)


def _lock(path: Path) -> int:
    import fcntl

    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise _in_use(path.parent, holder) from None
        except BaseException:
            os.close(descriptor)
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a lock file that its last holder removed after we opened it
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def refuse_if_in_use(folder: Path) -> None:
    """Refuse, as :meth:`RunFolderLock.acquire` would, if another run holds ``folder``; take nothing.
    A run resumed into its own folder asks this before it reads the checkpoint there, which the
    run holding the folder may be replacing at that very moment."""
    if sys.platform == "win32":
        return
    import fcntl

    try:
        descriptor = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: no run has ever held it (or it cannot be read: acquire() will say)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(folder, _read_holder(descriptor)) from None
    finally:
        os.close(descriptor)  # closing also lets go of the shared lock just taken


def _in_use(folder: Path, holder: int | None) -> SaveError:
    who = f"process {holder}" if holder else "another process"
    return SaveError(
        f"{folder}: another run is writing into this folder ({who}); wait for it to end, "
        "or save into another folder",
        reason="the folder is in use by another run",
    )


def _read_holder(descriptor: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(descriptor, 32, 0).decode().strip())
    return None


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        (folder / LOCK_FILE).unlink(missing_ok=True)
        folder.rmdir()


def _refused(folder: Path, exc: OSError) -> SaveError:
    reason = refusal(exc, folder, creates_folders=True)
    return SaveError(f"{folder}: cannot write the run folder there ({reason})", reason=reason)
