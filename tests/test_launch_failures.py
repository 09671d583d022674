"""What a torchrun launch says when it fails or is stopped: one line, from one rank, and a way on.

Here, the refusals to train on N ranks: they advise only what can help.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlbasics import distributed
from tests.conftest import builtins_only_env, run_main

pytestmark = pytest.mark.filterwarnings("error")

LINEAR = ("--dataset", "synthetic-linear", "--model", "linear", "--lr", "0.05", "--set", "dataset.n=90")


def _env(**extra: str) -> dict[str, str]:
    return builtins_only_env(OMP_NUM_THREADS="1", **extra)


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
