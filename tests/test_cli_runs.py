"""``mlbasics train --save/--resume``, Ctrl-C and SIGTERM, divergence, anomaly detection and
``mlbasics predict``, end to end: signals and --debug tracebacks in a subprocess (what is tested
is the process: its exit status and what the interpreter prints), the rest in this process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlbasics import Checkpoint
from tests.conftest import FakeSite, run_cli, run_main

# Long enough that only a signal ends it; tiny, so each step takes microseconds.
ENDLESS = ["train", "--dataset", "tiny", "--model", "linear", "--lr", "0.01", "--epochs", "100000000"]

MARKER_PLUGIN = """
from mlbasics import ComponentSpec, Param, hookimpl

@hookimpl
def mlbasics_losses():
    return [ComponentSpec(kind="loss", name="marked-mse", factory="marker_plugin:marked_mse",
                          summary="MSE that creates a file when training has begun",
                          params=(Param(name="marker", type=str),), tags={"least-squares"})]

def marked_mse(marker):
    import pathlib
    import torch

    class MarkedMSE(torch.nn.MSELoss):
        def forward(self, prediction, target):
            path = pathlib.Path(marker)
            if not path.exists():
                path.touch()
            return super().forward(prediction, target)

    return MarkedMSE()
"""


def _start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A subprocess: a signal sent to a real process, and the exit status it ends with, are tested."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlbasics", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"training ended before {path.name} appeared: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_checkpoints_says_how_to_resume_and_exits_128_plus_its_number(
    tmp_path: Path, signum: int, status: int
) -> None:
    process = _start([*ENDLESS, "--quiet", "--save", "run", "--checkpoint-every", "1000"], tmp_path)
    _wait_for(tmp_path / "run" / "checkpoint" / "manifest.json", process)  # training is under way
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    name = signal.Signals(signum).name
    match = re.fullmatch(
        rf"mlbasics: interrupted by {name} after epoch (\d+) of 100000000; checkpoint written to run; "
        r"resume with: mlbasics train --resume run\n",
        stderr,
    )
    assert match, stderr
    epoch = int(match[1])
    assert f"stopped early: interrupted by {name} after epoch {epoch}" in stdout
    checkpoint = Checkpoint.load(tmp_path / "run")
    assert checkpoint.epoch == epoch  # the stop itself was checkpointed, not only the periodic ones
    assert len(checkpoint.history) == epoch

    resumed = run_main("train", "--resume", "run", "--epochs", str(epoch + 5), "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert (result["epochs"], result["resumed_from"]) == (epoch + 5, epoch)
    assert result["history"][:epoch] == checkpoint.history


def test_without_save_an_interrupt_says_nothing_was_saved(site: FakeSite, tmp_path: Path) -> None:
    site.install(
        "mlbasics-marker", entry_points={"marker": "marker_plugin"}, modules={"marker_plugin": MARKER_PLUGIN}
    )
    marker = tmp_path / "started"
    args = [*ENDLESS, "--loss", "marked-mse", "--set", f"loss.marker={marker}", "--json"]
    process = _start(args, tmp_path, env=site.env())
    _wait_for(marker, process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    result = json.loads(stdout)  # the run so far is still reported
    assert result["interrupted_by"] == "SIGINT"
    assert 1 <= result["epochs"] < 100000000
    assert stderr == (
        f"mlbasics: interrupted by SIGINT after epoch {result['epochs']} of 100000000; nothing was saved "
        "(train with --save DIR to keep a run you can resume)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "started"]


def test_resume_continues_in_the_same_folder(tmp_path: Path) -> None:
    first = run_main(
        "train",
        "--dataset",
        "tiny",
        "--model",
        "linear",
        "--epochs",
        "20",
        "--json",
        "--save",
        "run",
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    more = run_main(
        "train", "--resume", "run", "--epochs", "30", "--json", "--checkpoint-every", "4", cwd=tmp_path
    )
    assert more.returncode == 0, more.stderr
    straight = run_main(
        "train", "--dataset", "tiny", "--model", "linear", "--epochs", "30", "--json", cwd=tmp_path
    )
    assert json.loads(more.stdout)["history"] == json.loads(straight.stdout)["history"]
    assert Checkpoint.load(tmp_path / "run").epoch == 30
    again = run_main("train", "--resume", "run", "--quiet", cwd=tmp_path, env={"COLUMNS": "160", "PATH": ""})
    assert again.returncode == 0, again.stderr
    assert "after 30 epochs on cpu in " in again.stdout
    assert ", resumed at epoch 30" in again.stdout
    further = run_main(
        "train", "--resume", "run", "--save", "./run", "--epochs", "32", "--json", cwd=tmp_path
    )
    assert further.returncode == 0, further.stderr  # ./run is the same folder, not another run to protect
    assert Checkpoint.load(tmp_path / "run").epoch == 32


def test_divergence_on_the_command_line_points_at_the_last_finite_checkpoint(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic-linear", "--model", "linear", "--lr", "2", "--epochs", "300"]
    result = run_main(
        *args, "--quiet", "--set", "log_every=5", "--save", "run", "--checkpoint-every", "5", cwd=tmp_path
    )
    assert result.returncode == 2
    assert result.stdout == ""
    first, second = result.stderr.splitlines()
    hint = re.fullmatch(
        r"mlbasics: error: training diverged at epoch \d+ of 300: the loss became inf \(last finite loss \S+ at "
        r"epoch \d+\); learning rate 2 is too large for this data: the loss grew \d+e\d+-fold in \d+ epochs; "
        r"try lr ≤ (\S+)",
        first,
    )
    assert hint is not None, first
    kept = Checkpoint.load(tmp_path / "run").epoch
    assert second == (
        f"mlbasics: error: the last finite checkpoint, epoch {kept}, is kept in run; to go on from it with "
        f"other settings: mlbasics train --resume run --force --lr {hint[1]}"
    )
    assert "Traceback" not in result.stderr


def test_detect_anomaly_names_the_operation_and_debug_shows_the_forward_call(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic-linear", "--model", "linear", "--lr", "2", "--epochs", "300"]
    result = run_main(*args, "--quiet", "--detect-anomaly", "--set", "log_every=300", cwd=tmp_path)
    assert result.returncode == 2
    assert re.fullmatch(
        r"mlbasics: error: anomaly detection: the backward pass of \w+ \(\w+Backward\d\) returned NaN in its "
        r"output \d+ in one of epochs 1 to 300; the forward call that made it is in the details \(--debug shows them\)\n",
        result.stderr,
    ), result.stderr
    # A subprocess: --debug lets the error escape main(); the traceback is the interpreter's.
    debug = run_cli("--debug", *args, "--detect-anomaly", "--set", "log_every=300", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback of forward call that caused the error" in debug.stderr
    assert "mlbasics.training.anomaly.AnomalyError" in debug.stderr


def test_predict_from_values_and_csv(tmp_path: Path) -> None:
    trained = run_main(
        "train",
        "examples/scores.toml",
        "--optimizer",
        "lstsq",
        "--quiet",
        "--save",
        str(tmp_path / "run"),
        cwd=Path(__file__).parent.parent,
    )
    assert trained.returncode == 0, trained.stderr
    values = run_main("predict", "run", "--x", "10,8,5", "1,4,3", cwd=tmp_path)
    assert values.returncode == 0, values.stderr
    lines = values.stdout.splitlines()
    assert lines[0] == "attendance,quiz,assignment1,midterm"
    assert [line.split(",")[:3] for line in lines[1:]] == [["10", "8", "5"], ["1", "4", "3"]]
    (tmp_path / "new.csv").write_text("quiz,attendance,assignment1,name\n8,10,5,ann\n4,1,3,bob\n")
    from_csv = run_main("predict", "run", "--csv", "new.csv", "--output", "out.csv", cwd=tmp_path)
    assert from_csv.returncode == 0, from_csv.stderr
    assert from_csv.stdout == ""
    assert (tmp_path / "out.csv").read_text() == values.stdout  # columns picked by name, in the model's order
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_predict_never_runs_code_from_the_folder(tmp_path: Path) -> None:
    """A run folder naming a component that is not installed is refused; nothing in it is imported."""
    trained = run_main(
        "train",
        "--dataset",
        "tiny",
        "--model",
        "linear",
        "--epochs",
        "3",
        "--quiet",
        "--save",
        "run",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    (tmp_path / "run" / "checkpoint" / "evil.py").write_text("raise SystemExit('executed')\n")
    # A subprocess: a fresh interpreter started with the folder on its PYTHONPATH, importing nothing
    # from it (this process has long imported everything it needs).
    env = dict(os.environ) | {"PYTHONPATH": str(tmp_path / "run" / "checkpoint")}
    result = run_cli("predict", "run", "--x", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("x,y\n2,")
