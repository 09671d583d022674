"""Runs started by ``torchrun``: which rank this process is, its process group, and how ranks agree.

mlbasics has no launcher of its own. ``torchrun`` (``python -m torch.distributed.run``) starts the
processes and tells each one who it is through the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, and ``MASTER_ADDR``/``MASTER_PORT`` for the rendezvous); :func:`launch` reads them.
A process without them, or in a world of one, is an ordinary run and nothing here does anything.

:func:`start` joins the process group once: gloo for tensors on the CPU, and NCCL for CUDA tensors
where there are GPUs (each rank then works on ``cuda:LOCAL_RANK``). Every collective has a timeout
(:data:`TIMEOUT_ENV`, default :data:`DEFAULT_TIMEOUT` seconds), so a rank whose peer vanished
without ``torchrun`` noticing still stops in bounded time. Ranks other than 0 give no notes: the
notes of a run are the same on every rank, and rank 0 speaks for them.

Failures. Between two collectives every rank runs its own code; :func:`together` marks such a
stretch. At its end the ranks exchange one flag each (an all-reduce of a tensor): if any failed, the
lowest failing rank raises its own error, the one line the user sees, and every other rank raises
:class:`OtherRankFailed`, which the CLI ends silently with status 1. A mistake every rank makes alike
before the process group exists (the command line, :data:`TIMEOUT_ENV`) is said by rank 0
(:func:`speaks_for_all`); another one made outside such a stretch joins the group just to agree
(:func:`speaks`), so it is still said once. In lockstep training no collective can be started to
agree: the ranks settle who speaks through the launch's key-value store instead
(:mod:`mlbasics.distributed._failures`), and so do ranks whose collective timed out, to name the rank that
stopped answering (:func:`stopped_answering`). A rank that dies outright (a crash, SIGKILL) is seen
by ``torchrun``, which stops the others. Ctrl-C and SIGTERM are watched by a thread of the command
(:mod:`mlbasics.distributed._signals`).

Only tensors cross processes (:func:`all_gather_bytes`, :func:`all_gather_values`): no pickled
objects, so a peer can never make this process run code.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import attrs

from mlbasics.distributed import _failures
from mlbasics.errors import DivergenceError, MlbasicsError

if TYPE_CHECKING:
    import torch

#: Seconds a rank waits in one collective before it gives up on its peers. Ranks legitimately wait
#: for the slowest one's share of a sweep, so this is long; set it lower for quick runs.
TIMEOUT_ENV: Final = "MLBASICS_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT: Final = 1800.0


@attrs.frozen
class Launch:
    """This process's place in a torchrun launch."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


class OtherRankFailed(Exception):
    """Raised on the ranks that did not fail when another one did; that rank says why."""

    def __init__(self, rank: int | None) -> None:
        self.rank = rank
        super().__init__(f"rank {'?' if rank is None else rank} failed; its own output says why")


class LaunchFailure(Exception):
    """What this rank says for the whole launch, the ranks having settled that it speaks: ``lines``
    to print as they are, the exit ``status``, and the ``ended`` ranks (stopped answering, ended
    by this one)."""

    def __init__(self, lines: list[str], status: int, ended: tuple[int, ...] = ()) -> None:
        self.lines = lines
        self.status = status
        self.ended = ended
        super().__init__("\n".join(lines))


def launch() -> Launch | None:
    """The launch this process is part of, read from torchrun's environment, or ``None`` (no launch,
    or a world of one process)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    if "WORLD_SIZE" not in os.environ:
        return None
    values = []
    for name in names:
        text = os.environ.get(name, "0" if name == "LOCAL_RANK" else "")
        try:
            values.append(int(text))
        except ValueError:
            raise MlbasicsError(f"environment variable {name}={text!r} is not a whole number") from None
    rank, world_size, local_rank = values
    if world_size <= 1:
        return None
    if not 0 <= rank < world_size:
        raise MlbasicsError(
            f"environment variable RANK={rank} is not between 0 and WORLD_SIZE-1={world_size - 1}"
        )
    return Launch(rank=rank, world_size=world_size, local_rank=local_rank)


def is_main() -> bool:
    """Whether this process writes and prints: rank 0 of a launch, or any process outside one."""
    current = launch()
    return current is None or current.is_main


def timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise MlbasicsError(
            f"environment variable {TIMEOUT_ENV}={text!r} is not a positive number of seconds"
        )
    return seconds


_joined = False  # this module initialised the process group (and destroys it at exit)


def start() -> Launch | None:
    """Join this launch's process group (once) and set this rank up: its CUDA device, one CPU thread
    unless ``OMP_NUM_THREADS`` says otherwise, no notes but on rank 0. ``None`` outside a launch."""
    global _joined
    current = launch()
    if current is None:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        limit = timedelta(seconds=timeout())
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(1)  # ranks share the machine's cores; torchrun sets this too
        if torch.cuda.is_available():
            torch.cuda.set_device(current.local_rank)  # "cuda" and "auto" mean this rank's GPU
            dist.init_process_group("cpu:gloo,cuda:nccl", timeout=limit)
        else:
            dist.init_process_group("gloo", timeout=limit)
        _joined = True
        atexit.register(_leave)
        _failures.publish(current.rank)
    if not current.is_main:
        logging.getLogger("mlbasics").addFilter(_silence)
    return current


def _silence(record: logging.LogRecord) -> bool:
    return False


def _leave() -> None:
    import torch.distributed as dist

    if _joined and dist.is_initialized():
        dist.destroy_process_group()


def leave_now(status: int) -> None:
    """End this rank's process now, with ``status``, if it joined a process group: stdout and
    stderr flushed, then ``os._exit``. Every collective has returned on every rank by then (the
    command's last step agrees or gathers), but tearing the gloo process group down (explicitly or
    at interpreter exit) while the other rank exits too now and then ends in a C++ abort
    ("terminate called without an active exception", SIGABRT) that turns a finished run into a
    failed launch; skipping the teardown leaves the operating system to close the sockets."""
    if not _joined:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def share(count: int, rank: int, world_size: int) -> range:
    """The items of ``count`` that ``rank`` takes: a contiguous block, the blocks as even as can be
    (they differ by at most one), the same on every rank and every run."""
    return range(count * rank // world_size, count * (rank + 1) // world_size)


# -- agreeing on failures ------------------------------------------------------------------------

#: The rank that speaks for the failure of this launch, once the ranks agreed on one.
_speaker: int | None = None
#: This rank, once failed, is to leave only when torchrun stops it (:func:`lingers`).
_lingers = False


def settled(speaker: int) -> None:
    """The ranks settled (without :func:`agree`) that ``speaker`` speaks for the launch's failure."""
    global _speaker
    _speaker = speaker


def linger_later() -> None:
    """Once failed, this rank is to wait for torchrun to stop it (:func:`lingers`)."""
    global _lingers
    _lingers = True


def lingers() -> bool:
    """Whether this failed rank waits for torchrun to stop it
    (:func:`mlbasics._failures.linger`) rather than leave at once: it stayed silent while a
    rank that is still running says why (which would otherwise be stopped first, and blamed
    second), or it ended ranks that stopped answering (which torchrun is to see gone first)."""
    return _lingers


def quiet_for(speaker: int) -> OtherRankFailed:
    """The error that ends this rank silently while ``speaker`` says why (and leaves first)."""
    settled(speaker)
    linger_later()
    return OtherRankFailed(speaker)


def agree(error: BaseException | None) -> None:
    """Every rank says whether it failed (one all-reduce). If any did: the lowest failing rank raises
    its ``error``, every other rank :class:`OtherRankFailed`. Call it on every rank at the same point."""
    global _speaker
    import torch
    import torch.distributed as dist

    current = launch()
    assert current is not None
    assert dist.is_initialized()
    failed = torch.zeros(current.world_size, dtype=torch.int32)
    if error is not None:
        failed[current.rank] = 1
    dist.all_reduce(failed)
    ranks = failed.nonzero().flatten().tolist()
    if not ranks:
        return
    _speaker = ranks[0]
    if error is not None and _speaker == current.rank:
        raise error
    raise OtherRankFailed(_speaker)


@contextlib.contextmanager
def together() -> Iterator[Launch | None]:
    """Run the block on every rank; at its end the ranks agree (:func:`agree`), so that a failure of
    one stops all. Outside a launch it just runs the block."""
    current = start()
    if current is None:
        yield None
        return
    try:
        yield current
    except Exception as exc:  # Ctrl-C (KeyboardInterrupt) reaches every rank: no agreeing on it
        agree(exc)
        raise
    agree(None)


#: Set while the ranks train in lockstep (data-parallel): a collective then may not be started to agree.
in_lockstep = False


def speaks(error: BaseException) -> bool:
    """Whether this process should print ``error`` for the launch. Outside a launch: yes. Once the
    ranks agreed on a failure: the rank that speaks for it. In lockstep training: a divergence, seen
    by every rank at once, is said by rank 0; any other error by the rank it happened on. Otherwise
    the ranks have not agreed yet: this rank joins the process group and agrees with the others."""
    current = launch()
    if current is None or isinstance(error, OtherRankFailed):
        return current is None
    if _speaker is not None:
        return _speaker == current.rank
    if in_lockstep:
        if peer_failed(error):
            return False  # the peer that went away says why (or torchrun does)
        return current.is_main if isinstance(error, DivergenceError) else True
    try:
        start()
    except MlbasicsError:  # the launch's own settings (MLBASICS_DISTRIBUTED_TIMEOUT): alike on every rank
        return speaks_for_all()
    except Exception:  # the group could not start: each rank says why
        return True
    try:
        agree(error)
    except OtherRankFailed as other:
        quiet_for(other.rank if other.rank is not None else 0)
        return False
    except Exception:  # agree raised ``error``: this rank speaks
        return True
    return True


def speaks_for_all() -> bool:
    """For a mistake that every rank makes alike (the command line, the environment), before
    their process group exists: whether this rank says it (rank 0); the others wait for it."""
    current = launch()
    if current is None or current.is_main:
        return True
    quiet_for(0)
    return False


def stopped_answering(error: BaseException, kept: str | None = None) -> Exception | None:
    """If ``error`` is a collective that timed out waiting for a peer: the ranks whose collectives
    timed out settle who speaks (:func:`mlbasics._failures.who_stopped`); that rank ends the
    ranks that stopped answering on this machine and gets the :class:`LaunchFailure` to print (with
    ``kept``, what the run folder keeps, appended); the others get the error that ends them
    silently. ``None`` for any other error."""
    current = launch()
    if current is None or not _joined or not _failures.is_timeout(error):
        return None
    speaker, stopped = _failures.who_stopped(current.rank, current.world_size)
    if speaker != current.rank:
        return quiet_for(speaker)
    settled(speaker)
    seconds = f"{timeout():g} s ({TIMEOUT_ENV})"
    if stopped:
        ended = _failures.end(stopped)
        them = "it" if len(stopped) == 1 else "them"
        if ended:
            them += f" and ended {them if ended == stopped else _ranks_named(ended)}"
        what = f"{_ranks_named(stopped)} stopped answering: the other ranks waited {seconds} for {them}"
    else:
        ended = []
        what = (
            f"the ranks lost touch with each other: a collective waited {seconds}, and all of them timed out"
        )
    return LaunchFailure([f"mlbasics: error: {what}{f'; {kept}' if kept else ''}"], 1, tuple(ended))


def _ranks_named(ranks: list[int]) -> str:
    return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"


def peer_failed(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because a peer is gone (gloo's words for it)."""
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        words in text for words in ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
    )


# -- tensors across ranks ------------------------------------------------------------------------


def all_gather_bytes(data: bytes) -> list[bytes]:
    """Every rank's ``data``, in rank order, sent as a tensor of bytes (never unpickled)."""
    import torch

    tensor = (
        torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    )
    return [bytes(part.numpy().tobytes()) for part in _all_gather_ragged(tensor)]


def all_gather_values(values: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's 1-D float64 ``values`` (of any length), in rank order."""
    import torch

    assert values.dtype == torch.float64
    assert values.dim() == 1
    return _all_gather_ragged(values.cpu())


def _all_gather_ragged(tensor: torch.Tensor) -> list[torch.Tensor]:
    """All ranks' 1-D CPU tensors of one dtype and any lengths: the lengths first, then the tensors
    padded to the longest (a collective needs one size on every rank)."""
    import torch
    import torch.distributed as dist

    world_size = dist.get_world_size()
    length = torch.tensor([tensor.numel()], dtype=torch.int64)
    lengths = [torch.zeros(1, dtype=torch.int64) for _ in range(world_size)]
    dist.all_gather(lengths, length)
    longest = max(int(n) for n in lengths)
    padded = torch.zeros(longest, dtype=tensor.dtype)
    padded[: tensor.numel()] = tensor
    parts = [torch.zeros(longest, dtype=tensor.dtype) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    return [part[: int(n)] for part, n in zip(parts, lengths, strict=True)]
