"""Ctrl-C and SIGTERM on one rank of a torchrun launch of the ``mlbasics`` command.

``torchrun`` starts every rank in a session of its own and passes on the signals it gets: Ctrl-C
in the terminal reaches torchrun, which sends SIGINT to every rank; SIGTERM to torchrun (a
scheduler ending a job) becomes SIGTERM to every rank, and SIGKILL 30 seconds later. A rank may be
waiting in a collective when the signal comes (in C++, for a peer that is still starting or that
stopped answering), where Python runs no signal handler until the wait ends. So a thread watches
for the signals instead (:func:`signal.set_wakeup_fd`), and acts whatever the main thread is doing:

- Outside lockstep training, SIGINT ends the rank at once, rank 0 saying ``mlbasics: interrupted``;
  SIGTERM ends it silently, as it ends one process that is not training.
- In lockstep (data-parallel) training, the first signal is a request (:func:`lockstep`'s
  ``request``): the ranks agree on it at the end of the epoch (:mod:`mlbasics.engine.data_parallel`
  calls :func:`agreed`), stop together, and rank 0 checkpoints and says so, as one process does. If
  they have not agreed within :data:`STOP_SECONDS` (a long epoch, a peer that stopped answering), or
  a second signal comes, every rank ends at once, rank 0 saying what ``stopped_now`` says (what the
  run folder holds).
- While a rank reports a failure (:func:`leaving`), signals do nothing: the report is short, and the
  SIGTERM that torchrun sends every rank once another one failed must not cut it off.

What is printed here is written with one ``os.write``, so that lines of two processes never run
together, and without taking the locks of ``sys.stderr``, which the main thread may hold.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Final, NoReturn

#: Seconds the ranks have to agree on a stop (at the end of an epoch) before they end at once.
STOP_SECONDS: Final = 5.0
SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def _interrupted(signum: int) -> str | None:
    return "mlbasics: interrupted" if signum == signal.SIGINT else None


class _Watch:
    """What the watching thread knows; changed under ``lock`` by both threads."""

    def __init__(self, main: bool) -> None:
        self.main = main
        self.lock = threading.Lock()
        self.request: Callable[[int], None] | None = None  # set while training in lockstep
        self.stopped_now: Callable[[int], str | None] = _interrupted
        self.first = 0  # the signal requested in lockstep
        self.deadline: float | None = None
        self.agreed = False
        self.leaving = False

    def received(self, signum: int) -> None:
        with self.lock:
            if self.leaving or self.agreed:
                return
            if self.request is None:
                if signum == signal.SIGINT:
                    self.stop_now(signum)
                os._exit(128 + signum)  # SIGTERM: silently, as its default action would
            if self.first:
                self.stop_now(self.first)
            self.first = signum
            self.deadline = time.monotonic() + STOP_SECONDS
            self.request(signum)

    def expired(self) -> None:
        with self.lock:
            if self.first and not (self.leaving or self.agreed):
                self.stop_now(self.first)

    def stop_now(self, signum: int) -> NoReturn:
        try:
            line = self.stopped_now(signum) if self.main else None
            if line:
                os.write(2, f"{line}\n".encode())
        finally:
            os._exit(128 + signum)


_watch: _Watch | None = None


def watch(main: bool) -> None:
    """From now on, SIGINT and SIGTERM are handled as above (call it once, from the main thread, in
    a rank of a launch). ``main``: whether this rank speaks for the launch (rank 0)."""
    global _watch
    if _watch is not None or threading.current_thread() is not threading.main_thread():
        return
    state = _Watch(main)
    read, write = os.pipe()
    os.set_blocking(write, False)
    for number in SIGNALS:
        signal.signal(number, _noted)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=_run, args=(state, read), name="mlbasics-signals", daemon=True).start()
    _watch = state


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the watching thread has the signal from the wakeup fd)."""


def _run(state: _Watch, read: int) -> None:
    while True:
        deadline = state.deadline
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([read], [], [], wait)
        if ready:
            for signum in os.read(read, 64):
                if signum in SIGNALS:
                    state.received(signum)
        elif state.deadline is not None and time.monotonic() >= state.deadline:
            state.deadline = None
            state.expired()


@contextlib.contextmanager
def lockstep(request: Callable[[int], None], stopped_now: Callable[[int], str | None]) -> Iterator[None]:
    """While the block trains in lockstep: the first signal is passed to ``request``; if the ranks
    have not agreed on it within :data:`STOP_SECONDS`, rank 0 prints ``stopped_now(signal)`` and every
    rank ends. Outside a watched launch, the block just runs."""
    state = _watch
    if state is None:
        yield
        return
    with state.lock:
        state.request, state.stopped_now, state.first, state.agreed = request, stopped_now, 0, False
    try:
        yield
    finally:
        with state.lock:
            state.request, state.stopped_now, state.deadline = None, _interrupted, None


def agreed() -> None:
    """The ranks agreed to stop at the end of this epoch: they stop together, no deadline."""
    if _watch is not None:
        with _watch.lock:
            _watch.agreed, _watch.deadline = True, None


def leaving() -> None:
    """This rank reports a failure and leaves: signals no longer end it."""
    if _watch is not None:
        with _watch.lock:
            _watch.leaving, _watch.deadline = True, None
