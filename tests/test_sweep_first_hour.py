"""A sweep as a student meets it (issue 25): Ctrl-C keeps what was trained (ranked, drawn, marked
interrupted, exit status 130), and its summary says what was swept and shows a spread only where
there is one."""

from __future__ import annotations

import json
import re
import signal
import textwrap
from pathlib import Path

import pytest

import mlbasics
from mlbasics.show import display
from tests.conftest import run_main

#: A loss plugin file whose ``sigint-mse`` sends this process a real SIGINT on its Nth call (the
#: Nth step: under vmap the loss is called once per step for all members), as Ctrl-C would.
INTERRUPTING_LOSS = """
import signal

import torch
from mlbasics import ComponentSpec, Param, hookimpl

calls = 0


def sigint_mse(after):
    def loss(prediction, target):
        global calls
        calls += 1
        if calls == after:
            signal.raise_signal(signal.SIGINT)
        return torch.nn.functional.mse_loss(prediction, target)

    return loss


@hookimpl
def mlbasics_losses():
    return [
        ComponentSpec(
            kind="loss",
            name="sigint-mse",
            factory=sigint_mse,
            summary="MSE that sends SIGINT at its Nth call",
            params=[Param(name="after", type=int, default=1, ge=1)],
        )
    ]
"""

TINY = ["--dataset", "tiny", "--model", "linear", "--lrs", "0.01,0.1", "--seeds", "0-2"]


@pytest.fixture
def interrupting(tmp_path: Path) -> Path:
    path = tmp_path / "interrupting.py"
    path.write_text(textwrap.dedent(INTERRUPTING_LOSS))
    return path


def _sweep(plugin: Path, *args: str, cwd: Path) -> tuple[int, str, str]:
    # Not always Python's default_int_handler: a shell starts background jobs with SIGINT ignored.
    before = signal.getsignal(signal.SIGINT)
    result = run_main("--plugins-dir", str(plugin), "sweep", *args, cwd=cwd)
    assert signal.getsignal(signal.SIGINT) is before  # the handler was put back
    return result.returncode, result.stdout, result.stderr


def test_ctrl_c_in_a_vmapped_sweep_keeps_the_histories_so_far(interrupting: Path, tmp_path: Path) -> None:
    args = [
        *TINY,
        "--epochs",
        "1000",
        "--loss",
        "sigint-mse",
        "--set",
        "loss.after=300",
        "--set",
        "log_every=50",
    ]
    status, stdout, stderr = _sweep(
        interrupting, *args, "--json", "--history", "--plot", "sweep.png", cwd=tmp_path
    )
    assert status == 130, stderr
    result = json.loads(stdout)
    assert result["mode"] == "vmap"
    assert result["interrupted_by"] == "SIGINT"
    assert result["not_trained"] == 0
    members = result["members"]
    assert len(members) == 6
    epochs = {len(member["history"]) for member in members}
    assert epochs == {300}  # the 300th call is the step during which the signal came: it ends there
    assert all(member["stopped"] == "interrupted by SIGINT after epoch 300" for member in members)
    losses = [member["final_loss"] for member in members]
    assert losses == sorted(losses)  # ranked, best first
    assert stderr == (
        "mlbasics: sweep interrupted by SIGINT: every member stopped after epoch 300 of 1000; the results "
        "so far are shown in the JSON on stdout\n"
    )
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_ctrl_c_in_a_sweep_one_after_another_keeps_the_members_trained(
    interrupting: Path, tmp_path: Path
) -> None:
    args = [
        *TINY,
        "--epochs",
        "100",
        "--loss",
        "sigint-mse",
        "--set",
        "loss.after=250",
        "--sequential",
        "--quiet",
    ]
    status, stdout, stderr = _sweep(interrupting, *args, cwd=tmp_path)
    assert status == 130, stderr
    # Members of 100 epochs, one after another: two whole, the third stopped inside its 50th epoch.
    assert stderr == (
        "mlbasics: sweep interrupted by SIGINT: 2 of 6 members trained, 1 stopped after epoch 50 of 100, "
        "3 not started; the results so far are shown above\n"
    )
    said = " ".join(stdout.split())  # as the console wrapped it
    assert "interrupted: 2 of 6 members trained, 1 stopped after epoch 50 of 100, 3 not started" in said
    assert re.search(r"│ \S+ \(epoch 50\) │", stdout), stdout  # the member stopped, marked in the table
    assert re.search(r"^3 members, trained one after another", stdout, re.MULTILINE), stdout


def test_in_python_a_sweep_keeps_its_members_when_asked_to(interrupting: Path) -> None:
    registry = mlbasics.Registry.isolated()
    registry.add_plugin_path(interrupting)
    result = mlbasics.sweep(
        dataset="tiny",
        model="linear",
        loss={"name": "sigint-mse", "after": 40},
        epochs=100,
        seeds=[0, 1],
        lrs=[0.1],
        registry=registry,
        signals=True,
    )
    assert result.interrupted_by == signal.SIGINT
    assert [len(member.history) for member in result.members] == [40, 40]
    assert "  interrupted  the losses so far" in repr(result)


# -- the summary: what was swept, and a spread only where there is one ---------------------------


def test_the_summary_says_what_was_swept_not_the_experiments_own_values() -> None:
    result = mlbasics.sweep(
        dataset="tiny", model="linear", epochs=20, seeds=range(4), lrs=[0.01, 0.03], device="cpu"
    )
    lines = repr(result).splitlines()
    assert lines[1] == "  swept       seed 0-3; optimizer.lr 0.01, 0.03"
    assert lines[2] == "  optimizer   sgd, loss mse"  # not "sgd(lr=0.01) ... seed 1": those were swept
    assert lines[4].startswith("  final loss  best ")
    assert ", median " in lines[4]


def test_what_the_members_share_is_still_said() -> None:
    result = mlbasics.sweep(
        dataset="tiny",
        model="linear",
        epochs=5,
        grid={"optimizer.momentum": [0.0, 0.9]},
        device="cpu",
        seed=3,
    )
    lines = repr(result).splitlines()
    assert lines[1] == "  swept       optimizer.momentum 0.0, 0.9"
    assert lines[2] == "  optimizer   sgd(lr=0.01), loss mse, seed 3"


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ([0.5], "0.5"),
        ([0.001243, 0.001243], "best 0.001243, worst 0.001243"),
        ([1.0, 2.0, 3.0, 4.0], "best 1, median 2.5, worst 4"),  # of an even count, the mean of the middle two
        ([1.0, float("nan")], "1 (1 diverged)"),
        ([float("inf")], "all diverged"),
    ],
)
def test_a_spread_only_where_it_means_something(values: list[float], text: str) -> None:
    assert display.spread(values) == text


def test_two_members_show_best_and_worst_only() -> None:
    result = mlbasics.sweep(dataset="tiny", model="linear", epochs=5, seeds=[1, 2], device="cpu")
    final = next(line for line in repr(result).splitlines() if line.startswith("  final loss"))
    assert "median" not in final
    assert re.fullmatch(r"  final loss  best \S+, worst \S+", final), final
