"""Stopping training cleanly on Ctrl-C (SIGINT) or SIGTERM: at the end of the current step.

A signal handler must not stop the loop in the middle of a step (the parameters could be half
updated), so the handler only records the signal in an :class:`Interrupt`; the loop reads that flag
after every step (one attribute read, nanoseconds) and ends at the next step boundary. Callbacks then
run as at any sync point, and checkpoints are written from a consistent state.

A second signal while the first is being honoured raises :class:`KeyboardInterrupt` at once, so a
stuck run can still be stopped; an interrupted checkpoint write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Final, Protocol

#: The signals training stops on: Ctrl-C, and the polite "please stop" of kill, systemd, Slurm, Docker.
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


class Interrupt:
    """Which signal asked training to stop; ``0`` while none has.

    In data-parallel training a rank may not stop alone (its peers would wait for it in the next
    all-reduce): a signal there is first only ``requested`` on the rank that got it, and becomes
    ``signal`` on every rank at once when the ranks agree on it at the end of an epoch
    (:mod:`mlbasics.engine.data_parallel`)."""

    __slots__ = ("requested", "signal")

    def __init__(self) -> None:
        self.signal = 0
        self.requested = 0

    def request(self, signum: int) -> None:
        """Ask the loop to stop after the current step, as if ``signum`` had arrived."""
        self.signal = signum


class _HasInterrupt(Protocol):
    interrupt: Interrupt


def signal_name(signum: int) -> str:
    """``2`` -> ``"SIGINT"``."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT,
    143 for SIGTERM), so scripts and job schedulers can tell an interrupted run from a failed one."""
    return 128 + signum


@contextlib.contextmanager
def stop_on_signals(target: Interrupt | _HasInterrupt) -> Iterator[Interrupt]:
    """While the block runs, SIGINT and SIGTERM ask training to stop at the end of the current step
    instead of killing the process. ``target`` is a :class:`mlbasics.Setup` (or its ``Interrupt``).

    Outside the main thread (where Python cannot receive signals) this does nothing. The previous
    handlers are restored afterwards.
    """
    interrupt = target if isinstance(target, Interrupt) else target.interrupt
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return

    def handle(signum: int, frame: object) -> None:
        if interrupt.signal:  # asked a second time: the user means it
            raise KeyboardInterrupt
        interrupt.request(signum)

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield interrupt
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
