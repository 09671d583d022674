"""Under ``torchrun``: which rank this process is, its process group, how ranks agree (:mod:`.ranks`),
how a failure is said once (:mod:`._failures`, through the launch's key-value store) and how Ctrl-C
and SIGTERM reach every rank (:mod:`._signals`).

Imports: only the top-level modules. Like mmengine's ``dist``, it is used by the rest (the
data-parallel step, sweeps across ranks, the command line) and uses none of it. A process that
``torchrun`` did not start never joins a group: everything here then says "one process".
"""

from mlbasics.distributed.ranks import (
    DEFAULT_TIMEOUT,
    TIMEOUT_ENV,
    Launch,
    LaunchFailure,
    OtherRankFailed,
    agree,
    all_gather_bytes,
    all_gather_values,
    is_main,
    launch,
    leave_now,
    linger_later,
    lingers,
    peer_failed,
    quiet_for,
    settled,
    share,
    speaks,
    speaks_for_all,
    start,
    stopped_answering,
    timeout,
    together,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "TIMEOUT_ENV",
    "Launch",
    "LaunchFailure",
    "OtherRankFailed",
    "agree",
    "all_gather_bytes",
    "all_gather_values",
    "is_main",
    "launch",
    "leave_now",
    "linger_later",
    "lingers",
    "peer_failed",
    "quiet_for",
    "settled",
    "share",
    "speaks",
    "speaks_for_all",
    "start",
    "stopped_answering",
    "timeout",
    "together",
]
