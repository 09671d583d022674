"""Sweeps and data-parallel training under torchrun: real ``torchrun --nproc-per-node 2`` launches
on the CPU (gloo), each small enough to take seconds, against the same command in one process.

How close a launch must come to one process. A 2-rank sweep trains each member in an ensemble of
half the size, and data-parallel training sums each batch's gradient in two parts and then adds
them: the same arithmetic, rounded in another order, a few ulps (u = 2^-24 in float32) per step.
For the lecture's MLP the sweep tests (tests/test_sweeps.py, TIGHT_RTOL) measured how far such
differences grow: two float32 runs stay within 2·18u for the first TIGHT_EPOCHS epochs, and
TIGHT_RTOL is five times that; the sweep here runs those epochs. For the linear model on
synthetic-linear the training is convex and every step contracts the difference between two runs
(the argument of tests/test_sweeps.py's _assert_members_match_single_runs: the MSE's Hessian has
eigenvalues about 2, and a batch of 15 to 25 standard-normal rows of 3 features keeps them below
2·(1 + sqrt(3/15))² ≈ 5.8, so with lr 0.05 a difference shrinks by |1 - lr·λ| < 1 a step), so the
roundings added sum to a few steps' worth, far inside assert_close's float32 tolerance
(1e-5 + 1.3e-6·|value|). Neither depends on one CPU's rounding: any CPU rounds float32 to u.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from test_sweeps import TIGHT_EPOCHS, TIGHT_RTOL

from mlbasics import distributed
from mlbasics.errors import MlbasicsError
from tests.conftest import builtins_only_env, run_main

pytestmark = pytest.mark.filterwarnings("error")

#: Seconds a whole launch may take, start-up included (two interpreters importing torch on a
#: loaded 2-core machine take most of it); a launch that hangs fails the test instead.
LAUNCH_SECONDS = 240
LECTURE_GRID = ("--seeds", "1,2", "--lrs", "0.01,0.05", "--grid", "optimizer.momentum=0,0.9")
LINEAR = ("--dataset", "synthetic-linear", "--model", "linear", "--lr", "0.05", "--set", "dataset.n=90")
CRASH_PLUGIN = '''
import os
import signal

import torch

from mlbasics import ComponentSpec, hookimpl


class CrashOnRank1(torch.nn.Linear):
    """A linear model that fails in its 20th forward pass on rank 1: raises, or (CRASH=kill) dies."""

    calls = 0

    def forward(self, x):
        if os.environ.get("RANK") == "1":
            CrashOnRank1.calls += 1
            if CrashOnRank1.calls == 20:
                if os.environ.get("CRASH") == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("rank 1 crashed on purpose")
        return super().forward(x)


def build(in_features, out_features):
    return CrashOnRank1(in_features, out_features)


@hookimpl
def mlbasics_models():
    return [ComponentSpec(kind="model", name="crash-on-rank-1", factory=build, summary="fails on rank 1")]
'''


def _env(**extra: str) -> dict[str, str]:
    return builtins_only_env(OMP_NUM_THREADS="1", **extra)


#: ``torchrun --standalone --nproc-per-node 2 -m mlbasics``: --standalone picks a free port, so
#: launches of parallel test workers never meet; --tee prefixes every line with its rank.
TORCHRUN = [
    sys.executable,
    *("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--tee", "3"),
    *("-m", "mlbasics"),
]


def torchrun(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """:data:`TORCHRUN` ``ARGS``, run to its end."""
    return subprocess.run(
        [*TORCHRUN, *args],
        capture_output=True,
        text=True,
        env=env or _env(),
        cwd=cwd,
        timeout=LAUNCH_SECONDS,
        check=False,
    )


def _of_rank(text: str, rank: int) -> list[str]:
    """The lines rank ``rank`` wrote (torchrun's --tee prefix taken off)."""
    prefix = f"[default{rank}]:"
    return [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]


def _json_of_rank_0(text: str) -> Any:
    return json.loads("\n".join(_of_rank(text, 0)))


# -- without a launch ----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 7, 200, 201])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shares_are_disjoint_contiguous_balanced_and_cover_all(count: int, world_size: int) -> None:
    shares = [distributed.share(count, rank, world_size) for rank in range(world_size)]
    assert [i for part in shares for i in part] == list(range(count))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_launch_is_read_from_torchruns_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.launch() is None
    assert distributed.is_main()
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert distributed.launch() is None  # a world of one is an ordinary run
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launch() == distributed.Launch(rank=3, world_size=4, local_rank=1)
    assert not distributed.is_main()
    monkeypatch.setenv("RANK", "four")
    with pytest.raises(MlbasicsError, match=r"^environment variable RANK='four' is not a whole number$"):
        distributed.launch()


def test_the_collective_timeout_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(distributed.TIMEOUT_ENV, raising=False)
    assert distributed.timeout() == distributed.DEFAULT_TIMEOUT
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "30")
    assert distributed.timeout() == 30.0
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(MlbasicsError, match="MLBASICS_DISTRIBUTED_TIMEOUT='soon' is not a positive number"):
        distributed.timeout()


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"optimizer": "lstsq", "model": "linear"}, "optimizer 'lstsq' solves in closed form"),
        ({"optimizer": "lbfgs"}, "optimizer 'lbfgs' needs a closure"),
        ({"batch_size": 3, "dataset": {"name": "quadratic", "n": 7}}, r"the smallest batch \(1 row\)"),
        ({"dataset": "attendance", "model": "linear"}, None),
    ],
)
def test_what_data_parallel_training_refuses(settings: dict[str, Any], problem: str | None) -> None:
    import re

    import mlbasics
    from mlbasics.engine.data_parallel import parallel_problem

    setup = mlbasics.prepare(_experiment(settings))
    found = parallel_problem(setup, world_size=2)
    assert (found is None) if problem is None else re.search(problem, found or "")


def _experiment(settings: dict[str, Any]) -> Any:
    from mlbasics.engine.experiment import Experiment, with_settings

    return with_settings(Experiment(), settings, caller="test")


@pytest.mark.parametrize(("loss", "reduction"), [("mse", "mean"), ("huber", "mean"), ("sse-half", "sum")])
def test_the_loss_is_found_to_average_or_sum_over_rows(loss: str, reduction: str) -> None:
    import mlbasics
    from mlbasics.engine.data_parallel import row_reduction

    assert row_reduction(mlbasics.prepare(_experiment({"loss": loss}))) == reduction


# -- sweeps under torchrun -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_two_rank_sweep_is_the_one_process_sweep(tmp_path: Path) -> None:
    """The lecture's grid of 8 members, 4 a rank, for TIGHT_EPOCHS epochs (the tolerance above)."""
    args = ("sweep", *LECTURE_GRID, "--epochs", str(TIGHT_EPOCHS), "--json", "--history")
    launched = torchrun(*args, cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr + launched.stdout
    alone = run_main(*args, env=_env())
    assert alone.returncode == 0, alone.stderr
    assert _of_rank(launched.stdout, 1) == []  # rank 1 prints nothing
    ranked, expected = _json_of_rank_0(launched.stdout), json.loads(alone.stdout)
    for result in (ranked, expected):
        del result["seconds"], result["setup_seconds"]
    members, expected_members = ranked.pop("members"), expected.pop("members")
    assert ranked == expected  # mode "vmap", no reason, device, axes, experiment
    assert [m["index"] for m in members] == [m["index"] for m in expected_members]  # the same ranking
    for member, other in zip(members, expected_members, strict=True):
        assert member["values"] == other["values"]
        assert member.keys() == other.keys()
        torch.testing.assert_close(
            torch.tensor(member["history"]), torch.tensor(other["history"]), rtol=TIGHT_RTOL, atol=0
        )
        for name, value in member["parameters"].items():
            torch.testing.assert_close(torch.tensor(value), torch.tensor(other["parameters"][name]))


@pytest.mark.slow
def test_rank_0_alone_shows_the_table_and_writes_the_plot(tmp_path: Path) -> None:
    launched = torchrun("sweep", "--seeds", "0-3", "--epochs", "20", "--plot", "curves.png", cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr + launched.stdout
    assert _of_rank(launched.stdout + launched.stderr, 1) == []
    shown = "\n".join(_of_rank(launched.stdout, 0))
    assert shown.count("Sweep, best first") == 1
    assert "4 members, trained as one vmapped ensemble on cpu" in shown
    assert "plot written to curves.png" in shown
    assert (tmp_path / "curves.png").stat().st_size > 0


@pytest.mark.slow
def test_a_mistake_in_one_ranks_members_is_said_once_by_that_rank(tmp_path: Path) -> None:
    """Members hidden=[0] are rank 1's share; rank 0's would train for a long time if it went on."""
    start = time.monotonic()
    launched = torchrun(
        "sweep", "--grid", "model.hidden=[[4],[0]]", "--epochs", "10000000", "--quiet", cwd=tmp_path
    )
    assert time.monotonic() - start < LAUNCH_SECONDS / 2
    assert launched.returncode != 0
    line = "mlbasics: error: model 'mlp': param 'hidden' must be >= 1, got 0"
    assert _of_rank(launched.stderr, 1) == [line]
    assert _of_rank(launched.stderr, 0) == []


@pytest.mark.slow
def test_a_mistake_every_rank_makes_is_said_once(tmp_path: Path) -> None:
    launched = torchrun("sweep", "--seeds", "x", cwd=tmp_path)
    assert launched.returncode != 0
    said = [line for rank in (0, 1) for line in _of_rank(launched.stderr, rank)]
    assert said == ["mlbasics: error: --seeds: 'x' is not a seed or a range like 0-9"]


@pytest.mark.slow
def test_ctrl_c_stops_every_rank(tmp_path: Path) -> None:
    """Ctrl-C in a terminal is SIGINT to the whole foreground process group: torchrun and its ranks."""
    process = subprocess.Popen(
        [
            *TORCHRUN,
            "sweep",
            "--seeds",
            "0-3",
            "--epochs",
            "100000000",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        _wait_for_training(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        stopping = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert time.monotonic() - stopping < 60
    assert process.returncode != 0
    said = _of_rank(stderr, 0) + _of_rank(stderr, 1)
    assert said == ["mlbasics: interrupted"], stderr  # no traceback from a rank, said once


def _wait_for_training(torchrun_pid: int) -> None:
    """Until both ranks use the CPU (torch imported, training), read from /proc."""
    deadline = time.monotonic() + LAUNCH_SECONDS / 2
    while time.monotonic() < deadline:
        time.sleep(1)
        children = Path(f"/proc/{torchrun_pid}/task/{torchrun_pid}/children")
        ranks = children.read_text().split() if children.exists() else []
        if len(ranks) == 2 and all(_cpu_seconds(int(pid)) > 4 for pid in ranks):
            time.sleep(1)
            return
    pytest.fail("the ranks did not start training")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- data-parallel training ----------------------------------------------------------------------


def _trained(output: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(output)
    return result


def _assert_same_training(launched: dict[str, Any], alone: dict[str, Any], **tolerance: float) -> None:
    assert launched["epochs"] == alone["epochs"]
    torch.testing.assert_close(torch.tensor(launched["history"]), torch.tensor(alone["history"]), **tolerance)
    for name, value in alone["parameters"].items():
        torch.testing.assert_close(torch.tensor(launched["parameters"][name]), torch.tensor(value))


@pytest.mark.slow
def test_data_parallel_training_with_mini_batches_is_one_process_training(tmp_path: Path) -> None:
    """90 rows in batches of 25 (the last 15): shards of 12 and 13 rows, then 7 and 8; rank 0 alone
    writes the run folder."""
    args = ("train", *LINEAR, "--epochs", "30", "--batch-size", "25", "--json")
    launched = torchrun(*args, "--save", "run", cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr + launched.stdout
    assert _of_rank(launched.stdout, 1) == []
    alone = run_main(*args, env=_env())
    assert alone.returncode == 0, alone.stderr
    _assert_same_training(_trained("\n".join(_of_rank(launched.stdout, 0))), _trained(alone.stdout))
    state = json.loads(next((tmp_path / "run").glob("**/state.json")).read_text())
    assert state["ranks"] == 2


@pytest.mark.slow
def test_data_parallel_training_of_class_labels_is_one_process_training(tmp_path: Path) -> None:
    """Logistic regression (cross-entropy on a linear model: convex, its Hessian in the logits at
    most 1/2) on standardized blobs, in batches of 25: as for the linear model above, a rounding
    difference does not grow step to step, and the two runs agree to float32's tolerance. The
    confusion matrix counts the same rows; the classes have the same names."""
    args = ("train", "--dataset", "blobs", "--set", "dataset.n=90", "--model", "logistic", "--lr", "0.1")
    args += ("--standardize", "features", "--epochs", "30", "--batch-size", "25", "--metric", "accuracy")
    args += ("--validation", "0.2", "--json")
    launched = torchrun(*args, cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr + launched.stdout
    alone = run_main(*args, env=_env())
    assert alone.returncode == 0, alone.stderr
    together, one = _trained("\n".join(_of_rank(launched.stdout, 0))), _trained(alone.stdout)
    _assert_same_training(together, one)
    assert together["classes"] == one["classes"] == ["0", "1", "2"]
    assert together["experiment"]["loss"]["name"] == "cross-entropy"
    assert together["confusion"]["validation"]["counts"] == one["confusion"]["validation"]["counts"]


@pytest.mark.slow
def test_data_parallel_full_batch_training_shares_the_rows(tmp_path: Path) -> None:
    """The lecture's MLP, full batch, for TIGHT_EPOCHS epochs (the tolerance above)."""
    args = ("train", "--epochs", str(TIGHT_EPOCHS), "--json")
    launched = torchrun(*args, cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr + launched.stdout
    alone = run_main(*args, env=_env())
    _assert_same_training(
        _trained("\n".join(_of_rank(launched.stdout, 0))), _trained(alone.stdout), rtol=TIGHT_RTOL, atol=0
    )


@pytest.mark.slow
def test_a_run_saved_by_two_ranks_resumes_on_two_or_on_one(tmp_path: Path) -> None:
    args = ("train", *LINEAR, "--batch-size", "25", "--json")
    saved = torchrun(*args, "--epochs", "15", "--save", "run", cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr + saved.stdout
    whole = run_main(*args, "--epochs", "30", env=_env())

    on_one = run_main(
        "train",
        "--resume",
        str(tmp_path / "run"),
        "--save",
        str(tmp_path / "one"),
        "--epochs",
        "30",
        "--json",
        env=_env(),
    )
    assert on_one.returncode == 0, on_one.stderr
    assert on_one.stderr.splitlines() == [
        "mlbasics: note: resuming a run saved by 2 ranks on one process: the global batches and steps "
        "are the same (a checkpoint holds no per-rank state); only the rounding of the summed gradients differs"
    ]
    _assert_same_training(_trained(on_one.stdout), _trained(whole.stdout))

    on_two = torchrun("train", "--resume", "run", "--epochs", "30", "--json", cwd=tmp_path)
    assert on_two.returncode == 0, on_two.stderr + on_two.stdout
    assert not any("resuming" in line for line in _of_rank(on_two.stderr, 0) + _of_rank(on_two.stderr, 1))
    _assert_same_training(_trained("\n".join(_of_rank(on_two.stdout, 0))), _trained(whole.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("crash", ["raise", "kill"])
def test_a_rank_that_fails_in_training_stops_the_other(tmp_path: Path, crash: str) -> None:
    """Rank 1 fails in its 20th step (an exception, or SIGKILL); rank 0 would train for a long time."""
    (tmp_path / "rank_crash.py").write_text(CRASH_PLUGIN)
    env = _env(CRASH=crash, MLBASICS_PLUGINS="builtins,rank_crash")
    start = time.monotonic()
    launched = torchrun(
        "--plugins-dir", "rank_crash.py", "train", "--model", "crash-on-rank-1", *LINEAR[:2], "--epochs",
        "10000000", "--batch-size", "10", "--quiet", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert time.monotonic() - start < LAUNCH_SECONDS / 2
    assert launched.returncode != 0
    assert _of_rank(launched.stderr, 0) == []  # rank 0 was stopped, silently
    from_rank_1 = [line for line in launched.stderr.splitlines() if line.startswith("[default1]:[rank1]:")]
    if crash == "raise":
        assert from_rank_1[-1] == "[default1]:[rank1]: RuntimeError: rank 1 crashed on purpose"
    else:
        assert from_rank_1 == []
        assert "Signal 9 (SIGKILL) received" in launched.stderr  # torchrun says which rank died, how
