"""Notes for the user: why a faster path was not taken, said once, on the ``mlbasics`` logger.

Notes go through :mod:`logging`, not :mod:`warnings`: a note is information about how a run was
carried out (it still gives the right result), and test suites that turn warnings into errors must
keep working. With no logging configured, Python prints them on stderr; the CLI prints them as
``mlbasics: note: ...``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("mlbasics")

_said: set[str] = set()


def note(message: str) -> None:
    """Tell the user ``message`` (every time)."""
    logger.warning(message)


def note_once(message: str) -> None:
    """Tell the user ``message`` the first time this process meets it: a sweep of a thousand
    members that each train eagerly gives one note, not a thousand."""
    if message not in _said:
        _said.add(message)
        note(message)


def forget_notes() -> None:
    """Forget which notes were given, so the next ones are given again (for tests)."""
    _said.clear()
