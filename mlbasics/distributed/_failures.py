"""How the ranks of a torchrun launch learn why one failed when no collective can tell them.

Before training, the ranks agree on failures with a collective (:func:`mlbasics.distributed.agree`).
In lockstep (data-parallel) training they cannot: a rank that fails may leave its peers waiting in
a step's all-reduce, where a new collective would not meet. And a rank that stops answering
(paused, hung, swapped out) answers nothing at all. So the ranks use the launch's key-value store
(the one its rendezvous set up: every rank reaches it, and under torchrun it outlives them):

- a rank that fails records the lines it would print (:func:`record`), then leaves; rank 0, whose
  collective fails once that rank is gone, finds them (:func:`recorded`) and says them, once;
- the ranks whose collective timed out mark themselves (:func:`who_stopped`); the ranks that did not
  are the ones that stopped answering, and the lowest rank that did speaks. The stopped ranks that
  run on this machine are ended (:func:`end`: torchrun would end them anyway, 30 seconds later) before
  that rank leaves, so torchrun's report names them, not the healthy rank;
- a rank that stays silent while another rank speaks waits (:func:`linger`) until torchrun stops it
  after the speaker left: torchrun then names the speaker as the root cause, and the speaker is not
  stopped before it said why.

Keys carry the restart count of torchrun's agent, so the records of an attempt that
``--max-restarts`` replaced are not read as this one's. Every value is JSON or text, never pickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from torch.distributed.distributed_c10d import Store

#: Seconds the ranks whose collective timed out wait for each other to mark themselves. Peers
#: blocked in the same collective entered it within a step of each other and time out as close.
GRACE_SECONDS: Final = 5.0
#: Seconds a silent rank waits for torchrun to stop it after the rank that speaks left.
LINGER_SECONDS: Final = 10.0


def _store() -> Store:
    from torch.distributed import distributed_c10d

    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return distributed_c10d.PrefixStore(f"mlbasics/{attempt}", distributed_c10d._get_default_store())


def _get(store: Store, key: str) -> bytes | None:
    """``key``'s value, or ``None`` (``get`` itself would wait for the key to appear)."""
    return bytes(store.get(key)) if store.check([key]) else None


def publish(rank: int) -> None:
    """Say where this rank runs (host and process id), so that a peer can end it if it stops
    answering. Called once, when the rank has joined the process group."""
    store = _store()
    store.set(f"process/{rank}", f"{socket.gethostname()} {os.getpid()}")


def record(rank: int, lines: list[str], status: int) -> None:
    """Leave what this rank would print for its failure (``lines``) and its exit status, for rank 0
    to say. ``lines`` empty: the rank says it itself (a traceback), and rank 0 says nothing."""
    store = _store()
    key = f"failed/{rank}"
    store.set(key, json.dumps({"lines": lines, "status": status}))
    store.check([key])  # a round trip: the store holds it before this rank leaves


def recorded(world_size: int) -> tuple[int, list[str], int] | None:
    """The lowest rank that recorded its failure, with its lines and status, or ``None``."""
    store = _store()
    for rank in range(world_size):
        data = _get(store, f"failed/{rank}")
        if data is not None:
            said = json.loads(data)
            return rank, [str(line) for line in said["lines"]], int(said["status"])
    return None


def is_timeout(error: BaseException) -> bool:
    """Whether ``error`` is a collective that gave up waiting for a peer (gloo's words for it)."""
    return isinstance(error, RuntimeError) and "timed out" in str(error).lower()


def who_stopped(rank: int, world_size: int, grace: float = GRACE_SECONDS) -> tuple[int, list[int]]:
    """After this rank's collective timed out: the rank that speaks for it (the lowest that timed
    out too) and the ranks that stopped answering (those that did not mark themselves within
    ``grace`` seconds)."""
    store = _store()
    store.set(f"timed-out/{rank}", "1")
    answered = {rank}
    deadline = time.monotonic() + grace
    while True:  # polled: the store's own wait would log its timeout
        answered |= {peer for peer in range(world_size) if store.check([f"timed-out/{peer}"])}
        if len(answered) == world_size or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return min(answered), [peer for peer in range(world_size) if peer not in answered]


def end(ranks: list[int]) -> list[int]:
    """End (SIGKILL) those of ``ranks`` that run on this machine; return them. A rank that stopped
    answering has left the launch already: its peers' collectives failed, and torchrun would end
    it once they leave."""
    store = _store()
    host = socket.gethostname()
    ended = []
    for rank in ranks:
        where = _get(store, f"process/{rank}")
        if where is None:
            continue
        name, _, pid = where.decode().rpartition(" ")
        if name == host and pid.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
                ended.append(rank)
    return ended


def linger(seconds: float = LINGER_SECONDS) -> None:
    """Wait until torchrun stops this rank (SIGTERM, after the rank that speaks has left), or
    ``seconds`` at most."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
