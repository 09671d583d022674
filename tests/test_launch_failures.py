"""What a torchrun launch says when it fails or is stopped: one line, from one rank, and a way on.

The rules that decide which rank speaks are exercised in this process where that shows the same
thing (a rank is its environment: ``RANK`` and ``WORLD_SIZE``; the launch's key-value store is a
:class:`torch.distributed.HashStore`). What only a launch shows -- a rank paused with SIGSTOP, a
signal to torchrun while the ranks train in lockstep or while their process group forms, an error
met in lockstep -- runs under real ``torchrun --nproc-per-node 2`` launches with gloo, each rank's
output collected apart (torchrun's ``--log-dir``/``--redirects``), so that lines are compared
whole whatever the interleaving. Launches are the slow part of the suite: there are six.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import torch.distributed as dist

from mlbasics.distributed import _failures as _rank_failures
from mlbasics.distributed import ranks as distributed
from mlbasics.errors import DataError
from tests.conftest import builtins_only_env, run_main

pytestmark = pytest.mark.filterwarnings("error")

#: Seconds a whole launch may take (two interpreters importing torch on a loaded machine).
LAUNCH_SECONDS = 240
LINEAR = ("--dataset", "synthetic-linear", "--model", "linear", "--lr", "0.05", "--set", "dataset.n=90")
#: Trains until stopped: checkpoints every 5 epochs into ``run``.
ENDLESS = ("train", *LINEAR, "--batch-size", "25", "--epochs", "100000000", "--quiet")
#: Each rank's stdout and stderr go to files of their own under ``logs``.
TORCHRUN = [
    sys.executable,
    *("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"),
    *("--log-dir", "logs", "--redirects", "3"),
    *("-m", "mlbasics"),
]


def _env(**extra: str) -> dict[str, str]:
    return builtins_only_env(OMP_NUM_THREADS="1", **extra)


def rank_lines(folder: Path, rank: int, stream: str = "stderr") -> list[str]:
    """The lines rank ``rank`` of the launch started in ``folder`` wrote to ``stream``."""
    (path,) = folder.glob(f"logs/*/attempt_0/{rank}/{stream}.log")
    return path.read_text().splitlines()


@pytest.fixture(autouse=True)
def _no_settled_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """What one in-process "rank" settled does not carry over to the next test."""
    monkeypatch.setattr(distributed, "_speaker", None)
    monkeypatch.setattr(distributed, "_lingers", False)


# -- in this process: which rank speaks ----------------------------------------------------------


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_bad_flag_is_said_by_rank_0_alone(rank: str) -> None:
    """Every rank parses the same command line; rank 1 stays silent and waits for torchrun."""
    done = run_main("train", "--epochs", "abc", env=_env(WORLD_SIZE="2", RANK=rank))
    assert done.returncode == 2
    said = ["mlbasics: error: argument --epochs: invalid int value: 'abc' (see `mlbasics train --help`)"]
    assert done.stderr.splitlines() == (said if rank == "0" else [])
    assert distributed.lingers() == (rank == "1")


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_bad_timeout_setting_is_said_by_rank_0_alone(rank: str) -> None:
    env = _env(WORLD_SIZE="2", RANK=rank, MLBASICS_DISTRIBUTED_TIMEOUT="abc")
    done = run_main("train", "--epochs", "1", "--quiet", env=env)
    assert done.returncode == 2
    said = [
        "mlbasics: error: environment variable MLBASICS_DISTRIBUTED_TIMEOUT='abc' is not a positive "
        "number of seconds"
    ]
    assert done.stderr.splitlines() == (said if rank == "0" else [])


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> dist.HashStore:
    """The launch's key-value store, shared by the "ranks" of this process."""
    shared = dist.HashStore()
    monkeypatch.setattr(_rank_failures, "_store", lambda: shared)
    return shared


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world_size: int = 2) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setattr(distributed, "_speaker", None)


def _lockstep_failure(error: Exception) -> Exception:
    from argparse import Namespace

    from mlbasics.cli._runs import _lockstep_failure

    return _lockstep_failure(error, Namespace(save=None, resume=None), None)


@pytest.mark.usefixtures("store")
def test_an_error_every_rank_meets_in_lockstep_is_said_by_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ranks meet the data's change at one sync point: rank 1 leaves its words and goes, rank 0
    says its own."""
    changed = "big.csv: changed on disk since the data were loaded from it; start the run again"
    _as_rank(monkeypatch, 1)
    error = DataError(changed)
    assert _lockstep_failure(error) is error
    assert not distributed.speaks(error)
    assert not distributed.lingers()  # it leaves at once: rank 0 may be waiting for it in a collective
    _as_rank(monkeypatch, 0)
    error = DataError(changed)
    assert _lockstep_failure(error) is error
    assert distributed.speaks(error)


@pytest.mark.usefixtures("store")
def test_an_error_of_one_rank_in_lockstep_is_said_by_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 alone fails; rank 0 learns of it when its all-reduce fails because rank 1 left."""
    _as_rank(monkeypatch, 1)
    _lockstep_failure(DataError("big.csv: changed on disk"))
    _as_rank(monkeypatch, 0)
    gone = RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:40297")
    said = _lockstep_failure(gone)
    assert isinstance(said, distributed.LaunchFailure)
    assert (said.lines, said.status) == (["mlbasics: error: big.csv: changed on disk"], 2)


@pytest.mark.usefixtures("store")
def test_a_bug_in_lockstep_is_its_ranks_traceback_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _as_rank(monkeypatch, 1)
    bug = KeyError("oops")
    assert _lockstep_failure(bug) is bug
    assert distributed.speaks(bug)  # its traceback
    _as_rank(monkeypatch, 0)
    said = _lockstep_failure(RuntimeError("Connection closed by peer [127.0.0.1]:40297"))
    assert isinstance(said, distributed.OtherRankFailed)
    assert not distributed.speaks(said)


@pytest.mark.usefixtures("store")
def test_the_ranks_that_did_not_time_out_are_the_ones_that_stopped_answering() -> None:
    assert _rank_failures.who_stopped(0, 3, grace=0.2) == (0, [1, 2])  # nobody else timed out
    assert _rank_failures.who_stopped(2, 3, grace=0.2) == (0, [1])  # rank 0 speaks, not rank 2


def test_a_rank_that_stopped_answering_on_this_machine_is_ended(store: dist.HashStore) -> None:
    paused = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        os.kill(paused.pid, signal.SIGSTOP)
        store.set("process/1", f"{socket.gethostname()} {paused.pid}")
        store.set("process/2", f"another-machine {paused.pid}")
        assert _rank_failures.end([1, 2, 3]) == [1]  # rank 2 runs elsewhere, rank 3 never said
        assert paused.wait(timeout=30) == -signal.SIGKILL
    finally:
        paused.kill()


@pytest.mark.usefixtures("store")
def test_the_lowest_rank_that_recorded_its_failure_is_said() -> None:
    assert _rank_failures.recorded(3) is None
    _rank_failures.record(2, ["mlbasics: error: b"], 1)
    _rank_failures.record(1, ["mlbasics: error: a", "mlbasics: error: a2"], 2)
    assert _rank_failures.recorded(3) == (1, ["mlbasics: error: a", "mlbasics: error: a2"], 2)


@pytest.mark.parametrize(
    ("settings", "world_size", "resumed", "said"),
    [
        (
            {"dataset": {"name": "quadratic", "n": 3}, "validation": 0.34},
            3,
            False,
            "the training rows (2 rows) cannot be shared by 3 ranks: each needs at least one row; use at "
            "most 2 ranks (or hold out fewer rows)",
        ),
        (
            {"batch_size": 3, "dataset": {"name": "quadratic", "n": 7}},
            2,
            False,
            "the smallest batch (1 row) cannot be shared by 2 ranks: each needs at least one row of every "
            "batch; use --drop-last to leave it out, another batch_size, or at most 1 rank",
        ),
        (
            {"batch_size": 3, "dataset": {"name": "quadratic", "n": 7}},
            2,
            True,
            "the smallest batch (1 row) cannot be shared by 2 ranks: each needs at least one row of every "
            "batch; resume it on at most 1 rank, or with --drop-last --force (it leaves that batch out "
            "from here on)",
        ),
        (
            {"batch_size": 2, "dataset": {"name": "quadratic", "n": 8}},
            3,
            False,
            "the smallest batch (2 rows) cannot be shared by 3 ranks: each needs at least one row of every "
            "batch; use a batch_size of at least 3 rows, or at most 2 ranks",
        ),
    ],
)
def test_a_refusal_advises_what_can_help(
    settings: dict[str, Any], world_size: int, resumed: bool, said: str
) -> None:
    """A full batch gets no batch advice; a resumed run is told that --drop-last needs --force."""
    import mlbasics
    from mlbasics.engine.data_parallel import parallel_problem
    from mlbasics.engine.experiment import Experiment, with_settings

    setup = mlbasics.prepare(with_settings(Experiment(), settings, caller="test"))
    if resumed:
        setup.history.append(1.0)
    assert parallel_problem(setup, world_size) == said


def test_a_refused_resume_says_only_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not first the note that resuming on another number of ranks is fine: the ranks agree that
    they can train the run before rank 0 says anything about it (here rank 0 of 3, its process
    group stood in for: the refusal comes before any collective of training)."""
    saved = run_main("train", *LINEAR, "--batch-size", "22", "--epochs", "2", "--save", str(tmp_path / "run"))
    assert saved.returncode == 0, saved.stderr
    launch = distributed.Launch(rank=0, world_size=3, local_rank=0)
    monkeypatch.setattr(distributed, "start", lambda: launch)
    monkeypatch.setattr(distributed, "agree", lambda error: None)
    refused = run_main(
        "train", "--resume", str(tmp_path / "run"), "--epochs", "4", env=_env(WORLD_SIZE="3", RANK="0")
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "mlbasics: error: the smallest batch (2 rows) cannot be shared by 3 ranks: each needs at least one "
        "row of every batch; resume it on at most 2 ranks, or with --drop-last --force (it leaves that "
        "batch out from here on)"
    ]


# -- real launches ------------------------------------------------------------------------------


@contextmanager
def launched(folder: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """:data:`TORCHRUN` ``ARGS`` started in ``folder``; whatever is left of it is killed afterwards
    (torchrun and its ranks, each rank in a session of its own)."""
    process = subprocess.Popen(
        [*TORCHRUN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or _env(),
        cwd=folder,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        ranks = _ranks(process.pid)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        for pid in ranks:  # in sessions of their own: a rank torchrun left behind
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _ranks(torchrun: int) -> list[int]:
    """The processes torchrun started, rank 0 first (each one's RANK, read from /proc)."""
    children = Path(f"/proc/{torchrun}/task/{torchrun}/children")
    found = {}
    try:
        for pid in children.read_text().split():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            found[int(pid)] = next(int(item[5:]) for item in environ if item.startswith(b"RANK="))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return []
    return sorted(found, key=found.__getitem__)


def _both_ranks(process: subprocess.Popen[str]) -> list[int]:
    deadline = time.monotonic() + LAUNCH_SECONDS / 2
    while time.monotonic() < deadline:
        ranks = _ranks(process.pid)
        if len(ranks) == 2:
            return ranks
        time.sleep(0.05)
    pytest.fail("torchrun did not start two ranks")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    """Running, stopped or sleeping; not gone, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(what: str, condition: Any, seconds: float = LAUNCH_SECONDS / 2) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"waited {seconds:g} s for {what}")


def _saved_epoch(folder: Path) -> int:
    state = folder / "run" / "checkpoint" / "state.json"
    return int(json.loads(state.read_text())["epoch"]) if state.exists() else 0


def _root_cause(torchrun_stderr: str) -> int:
    """The rank that torchrun's report names as the root cause of the failure."""
    found = re.search(r"Root Cause.*?\n\s*rank\s*: (\d+)", torchrun_stderr, re.DOTALL)
    assert found, torchrun_stderr
    return int(found.group(1))


@pytest.mark.slow
def test_a_rank_that_stops_answering_is_named_once_with_the_way_on(tmp_path: Path) -> None:
    """Rank 1 paused (SIGSTOP) once a checkpoint is written: rank 0 waits the collective timeout,
    names rank 1 and ends it, and torchrun names rank 1 as the root cause."""
    seconds = 15
    env = _env(MLBASICS_DISTRIBUTED_TIMEOUT=str(seconds))
    with launched(tmp_path, *ENDLESS, "--save", "run", "--checkpoint-every", "5", env=env) as process:
        _wait_for("a checkpoint", lambda: _saved_epoch(tmp_path) > 0)
        os.kill(_both_ranks(process)[1], signal.SIGSTOP)
        _, stderr = process.communicate(timeout=LAUNCH_SECONDS)
    assert process.returncode != 0
    epoch = _saved_epoch(tmp_path)
    assert rank_lines(tmp_path, 0) == [
        f"mlbasics: error: rank 1 stopped answering: the other ranks waited {seconds} s "
        f"(MLBASICS_DISTRIBUTED_TIMEOUT) for it and ended it; the checkpoint of epoch {epoch} is kept in "
        "run; resume with: mlbasics train --resume run"
    ]
    assert rank_lines(tmp_path, 1) == []
    assert _root_cause(stderr) == 1
    assert "Signal 9 (SIGKILL) received" in stderr


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_the_ranks_together_with_a_checkpoint(tmp_path: Path) -> None:
    """What a scheduler sends at the end of a job's time: the ranks end the epoch together, rank 0
    checkpoints it and says how to resume, as one process does; the run resumes."""
    with launched(tmp_path, *ENDLESS, "--save", "run", "--checkpoint-every", "5") as process:
        _wait_for("a checkpoint", lambda: _saved_epoch(tmp_path) > 0)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=LAUNCH_SECONDS)
    assert process.returncode != 0
    epoch = _saved_epoch(tmp_path)
    assert epoch > 0
    assert rank_lines(tmp_path, 0) == [
        f"mlbasics: interrupted by SIGTERM after epoch {epoch} of 100000000; checkpoint written to run; "
        "resume with: mlbasics train --resume run"
    ]
    assert rank_lines(tmp_path, 1) == []
    assert f"stopped early: interrupted by SIGTERM after epoch {epoch}" in rank_lines(tmp_path, 0, "stdout")
    resumed = run_main("train", "--resume", str(tmp_path / "run"), "--epochs", str(epoch + 3), "--quiet")
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_ctrl_c_while_the_process_group_forms_stops_rank_0_at_once(tmp_path: Path) -> None:
    """Rank 1 paused while it imports; rank 0 waits for it in the rendezvous (in C++, where no
    Python signal handler runs) when Ctrl-C reaches torchrun, which passes SIGINT on to the ranks.
    Rank 0 says so and leaves well before torchrun would kill it (30 s); rank 1 leaves, silently,
    once it runs again."""
    with launched(tmp_path, "train", "--epochs", "100000000", "--quiet") as process:
        rank_0, rank_1 = _both_ranks(process)
        _wait_for("rank 1 to import", lambda: _cpu_seconds(rank_1) > 0.5)
        os.kill(rank_1, signal.SIGSTOP)
        seen = [_cpu_seconds(rank_0)]

        def waiting() -> bool:  # its CPU time stands still: it waits for rank 1
            seen.append(_cpu_seconds(rank_0))
            return seen[-1] > 1 and seen[-1] == seen[-10:][0] and len(seen) > 10

        _wait_for("rank 0 to wait for rank 1", waiting)
        process.send_signal(signal.SIGINT)
        _wait_for("rank 0 to stop", lambda: not _alive(rank_0), seconds=15)
        os.kill(rank_1, signal.SIGCONT)
        process.communicate(timeout=LAUNCH_SECONDS)
    assert rank_lines(tmp_path, 0) == ["mlbasics: interrupted"]
    assert rank_lines(tmp_path, 1) == []


FAILING_CALLBACK = '''
import os

from mlbasics import Callback, ComponentSpec, Param, hookimpl
from mlbasics.errors import DataError


class FailAt(Callback):
    """Fails on the ranks listed, at epoch ``at``, as a data file that changed would."""

    def __init__(self, at, ranks):
        self.at, self.ranks = at, ranks.split(",")

    def on_sync(self, setup, epoch, losses):
        if epoch >= self.at and os.environ["RANK"] in self.ranks:
            raise DataError(f"big.csv: changed on disk in epoch {epoch}")


@hookimpl
def mlbasics_callbacks():
    return [ComponentSpec(kind="callback", name="fail-at", factory=FailAt, summary="fails",
                          params=(Param(name="at", type=int), Param(name="ranks", type=str)))]
'''


@pytest.mark.slow
@pytest.mark.parametrize("ranks", ["0,1", "1"])
def test_an_error_met_in_lockstep_is_said_once_by_rank_0(tmp_path: Path, ranks: str) -> None:
    """Every rank meets it at the same sync point, or rank 1 alone, which then leaves rank 0 waiting
    in the next step's all-reduce: either way rank 0 alone says it, on its own line."""
    (tmp_path / "fail_at.py").write_text(FAILING_CALLBACK)
    with launched(
        tmp_path,
        *("--plugins-dir", "fail_at.py", "train", *LINEAR, "--batch-size", "25", "--epochs", "100000000"),
        *("--set", "log_every=1", "--callback", "fail-at", "--set", "callbacks.fail-at.at=20"),
        *("--set", f'callbacks.fail-at.ranks="{ranks}"', "--quiet"),
        env=_env(MLBASICS_PLUGINS="builtins,fail_at"),
    ) as process:
        process.communicate(timeout=LAUNCH_SECONDS)
    assert process.returncode != 0
    assert rank_lines(tmp_path, 0) == ["mlbasics: error: big.csv: changed on disk in epoch 20"]
    assert rank_lines(tmp_path, 1) == []
