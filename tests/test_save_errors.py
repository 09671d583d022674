"""The operating system refusing a write: a full disk, a read-only file system, a name too long, a
place that takes no files, another run in the same folder. Refused before training where that can
be known; otherwise one line, the previous checkpoint whole, and the training done kept (printed
by the command, in ``SaveError.result`` for Python).

A full disk and a read-only file system are real: a small tmpfs mounted for the test (which needs
root and a kernel that lets the test mount; elsewhere those tests are skipped, saying why).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import mlbasics
import mlbasics.runs.checkpoints
from mlbasics import Callback, SaveError, Setup
from mlbasics.cli import main
from mlbasics.runs.checkpoints import CHECKPOINT, PREVIOUS, Checkpoint, write_checkpoint
from tests.conftest import run_cli

LINEAR = {"dataset": "tiny", "model": "linear", "device": "cpu"}
LINEAR_ARGS = ["--dataset", "tiny", "--model", "linear", "--device", "cpu", "--quiet"]
NO_SPACE = os.strerror(errno.ENOSPC)
READ_ONLY = os.strerror(errno.EROFS)


# -- a small real file system ---------------------------------------------------------------------


class Disk:
    """A tmpfs mounted at ``path``: small, and made full or read-only at will."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def free(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, *, leave: int = 0) -> None:
        """Take all free space but ``leave`` bytes (tmpfs counts whole pages of 4096 bytes)."""
        with open(self.path / f"filler-{time.monotonic_ns()}", "wb") as file:
            file.write(b"\0" * (self.free() - leave))

    def empty(self) -> None:
        for filler in self.path.glob("filler-*"):
            filler.unlink()

    def read_only(self, on: bool = True) -> None:
        """The whole file system read-only (Linux refuses while a file is open for writing)."""
        _mount("-o", f"remount,{'ro' if on else 'rw'}", str(self.path)).check_returncode()

    def freeze(self, folder: Path) -> None:
        """``folder`` read-only from now on, as a file system that turns read-only does: a read-only
        bind mount of it over itself (files already open stay writable, as there)."""
        _mount("--bind", str(folder), str(folder)).check_returncode()
        _mount("-o", "remount,bind,ro", str(folder)).check_returncode()

    def thaw(self, folder: Path) -> None:
        subprocess.run(["umount", str(folder)], check=True)


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    path = tmp_path / "disk"
    path.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(mounted.stderr or 'no permission').strip()})")
    try:
        yield Disk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- refused before training -----------------------------------------------------------------------

LONG = "a" * 300  # longer than any common file system allows for one name (255 bytes)


_INSIDE = ".checkpoint-xxxxxxxx.tmp/state.safetensors"  # the longest path a checkpoint writes
_DEEP = "d/" * 2100
REFUSED_BEFORE_TRAINING = [
    (
        "run folder name too long",
        ["train", *LINEAR_ARGS, "--save", LONG],
        f"{LONG}: cannot be a run folder: the name 'aaaaaaaaaaaaaaaaaaaaaaaa'... is 300 bytes long; "
        "the file system allows 255",
    ),
    (
        "run folder path too long",
        ["train", *LINEAR_ARGS, "--save", _DEEP],
        f"{_DEEP}: cannot be a run folder: the path is {len(str(Path(_DEEP))) + 1 + len(_INSIDE)} bytes "
        "long; the file system allows 4095",
    ),
    (
        "run folder under a regular file",
        ["train", *LINEAR_ARGS, "--save", "file.txt/run"],
        "file.txt/run: cannot write there (file.txt is a file, not a folder)",
    ),
    (
        "run folder in /proc",
        ["train", *LINEAR_ARGS, "--save", "/proc/mlbasics-run"],
        "/proc/mlbasics-run: cannot write the run folder there (/proc does not take new files)",
    ),
    (
        "plot name too long",
        ["train", *LINEAR_ARGS, "--plot", f"{LONG}.png"],
        f"plot file '{LONG}.png': the name 'aaaaaaaaaaaaaaaaaaaaaaaa'... is 304 bytes long; "
        "the file system allows 255",
    ),
    (
        "plot under a regular file",
        ["train", *LINEAR_ARGS, "--plot", "file.txt/loss.png"],
        "plot file 'file.txt/loss.png': 'file.txt' is a file, not a folder",
    ),
    (
        "plot in /proc",
        ["train", *LINEAR_ARGS, "--plot", "/proc/loss.png"],
        "plot file '/proc/loss.png': cannot be written there (/proc does not take new files)",
    ),
    (
        "predictions name too long",
        ["predict", "run", "--x", "1", "--output", f"{LONG}.csv"],
        f"output file '{LONG}.csv': the name 'aaaaaaaaaaaaaaaaaaaaaaaa'... is 304 bytes long; "
        "the file system allows 255",
    ),
    (
        "predictions in /proc",
        ["predict", "run", "--x", "1", "--output", "/proc/out.csv"],
        "output file '/proc/out.csv': cannot be written there (/proc does not take new files)",
    ),
]


@pytest.mark.parametrize(
    ("case", "args", "message"), [pytest.param(*row, id=row[0]) for row in REFUSED_BEFORE_TRAINING]
)
def test_places_that_cannot_be_written_are_refused_before_training(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: str,
    args: list[str],
    message: str,
) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("not a folder\n")
    mlbasics.train(**LINEAR, epochs=2, save=tmp_path / "run")
    before = _snapshot(tmp_path)
    status, out, err = _cli(capsys, *args)
    assert (status, out, err) == (2, "", f"mlbasics: error: {message}\n"), case
    assert _snapshot(tmp_path) == before


def test_a_read_only_file_system_is_refused_before_training(
    disk: Disk, capsys: pytest.CaptureFixture[str]
) -> None:
    (disk.path / "old.csv").write_text("kept\n")
    mlbasics.train(**LINEAR, epochs=2, save=disk.path / "run")
    disk.read_only()
    before = _snapshot(disk.path)
    for args, message in [
        (
            ["train", *LINEAR_ARGS, "--save", f"{disk.path}/new"],
            f"{disk.path}/new: cannot write there ({disk.path} is not a writable folder)",
        ),
        (
            ["train", *LINEAR_ARGS, "--plot", f"{disk.path}/loss.png"],
            f"plot file '{disk.path}/loss.png': cannot be written there ({READ_ONLY})",
        ),
        (
            ["predict", f"{disk.path}/run", "--x", "1", "--output", f"{disk.path}/old.csv"],
            f"output file '{disk.path}/old.csv': cannot be written there ({READ_ONLY})",
        ),
    ]:
        assert _cli(capsys, *args) == (2, "", f"mlbasics: error: {message}\n")
    # Resuming into a read-only run folder: refused when the folder is locked, before training.
    status, out, err = _cli(capsys, "train", "--quiet", "--resume", f"{disk.path}/run", "--epochs", "4")
    assert (status, out) == (2, "")
    assert (
        err
        == f"mlbasics: error: {disk.path}/run: cannot write there ({disk.path}/run is not a writable folder)\n"
    )
    assert _snapshot(disk.path) == before


# -- the disk fills up ------------------------------------------------------------------------------


def _trained(epochs: int) -> Setup:
    setup = mlbasics.prepare(mlbasics.Experiment(**LINEAR, epochs=epochs))
    mlbasics.fit(setup)
    return setup


def test_a_disk_that_fills_between_two_files_leaves_the_previous_checkpoint_whole(
    disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = disk.path / "run"
    write_checkpoint(run, _trained(3))
    written: list[str] = []
    real_write = mlbasics.runs.checkpoints._write_synced

    def recording(path: Path, data: bytes) -> None:
        real_write(path, data)
        written.append(path.name)

    monkeypatch.setattr(mlbasics.runs.checkpoints, "_write_synced", recording)
    disk.fill(leave=2 * 4096)  # room for two of the new checkpoint's six files
    with pytest.raises(SaveError) as error:
        write_checkpoint(run, _trained(5))
    assert str(error.value) == f"{run}: cannot write a checkpoint ({NO_SPACE})"
    assert 0 < len(written) < len(mlbasics.runs.checkpoints.FILES)  # it failed between files, not before
    assert sorted(p.name for p in run.iterdir()) == [CHECKPOINT]  # no half-written folder left over
    assert Checkpoint.load(run).epoch == 3  # the manifest and every file it lists: the old checkpoint

    disk.empty()
    write_checkpoint(run, _trained(5))
    assert Checkpoint.load(run).epoch == 5


class Then(Callback):
    """Does ``harm`` once, at the first sync point after the run folder holds a checkpoint."""

    def __init__(self, run: Path, harm: Callable[[], None]) -> None:
        self.run, self.harm, self.done = run, harm, False

    def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
        if not self.done and (self.run / CHECKPOINT).exists():
            self.harm()
            self.done = True


@pytest.mark.parametrize("failure", ["disk full", "file system read-only"])
def test_a_checkpoint_that_cannot_be_written_stops_training_and_keeps_the_result(
    disk: Disk, failure: str
) -> None:
    run = disk.path / "run"
    if failure == "disk full":
        harm, reason = disk.fill, NO_SPACE
    else:
        harm, reason = (lambda: disk.freeze(run)), READ_ONLY
    straight = mlbasics.train(**LINEAR, epochs=10, log_every=1)
    with pytest.raises(SaveError) as error:
        mlbasics.train(
            **LINEAR, epochs=20, log_every=1, save=run, checkpoint_every=5, callbacks=[Then(run, harm)]
        )
    assert str(error.value) == (
        f"{run}: cannot write the checkpoint of epoch 10 ({reason}); "
        "the checkpoint of epoch 5 there is the last good one"
    )
    result = error.value.result
    assert result is not None  # the training done is not thrown away: it is in the error
    assert result.epochs == 10
    assert result.history == straight.history  # the same process and machine: bitwise
    assert all(torch.equal(result.parameters[k], straight.parameters[k]) for k in result.parameters)
    assert result.stopped == "saving failed after epoch 10"
    checkpoint = Checkpoint.load(run)
    assert checkpoint.epoch == 5
    assert checkpoint.history == straight.history[:5]
    if failure == "file system read-only":
        disk.thaw(run)
    disk.empty()
    # The folder was released: the run goes on from its last good checkpoint.
    resumed = mlbasics.resume(run, epochs=10, log_every=1)
    assert resumed.history == straight.history


def test_a_full_disk_at_the_end_prints_the_result_then_one_line(
    disk: Disk, capsys: pytest.CaptureFixture[str]
) -> None:
    run = disk.path / "run"
    disk.fill(leave=4096)  # room for the folder's lock (its process id), not for a checkpoint
    status, out, err = _cli(capsys, "train", *LINEAR_ARGS, "--epochs", "3", "--save", str(run))
    assert status == 2
    assert "final loss" in out
    assert "after 3 epochs" in out
    assert err == (
        f"mlbasics: error: {run}: cannot write the checkpoint of epoch 3 ({NO_SPACE}); no checkpoint was "
        "written there; the result of training is shown above, not saved\n"
    )
    assert not run.exists()  # it wrote nothing, so it leaves nothing

    status, out, err = _cli(capsys, "train", *LINEAR_ARGS, "--epochs", "3", "--save", str(run), "--json")
    assert status == 2
    assert json.loads(out)["epochs"] == 3
    assert err.endswith("; the result of training is shown in the JSON on stdout, not saved\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("saved", [False, True])
def test_a_plot_that_cannot_be_written_after_training_still_shows_the_result(
    disk: Disk, tmp_path: Path, capsys: pytest.CaptureFixture[str], saved: bool
) -> None:
    pytest.importorskip("matplotlib")
    plot = disk.path / "loss.png"
    run = tmp_path / "run"
    disk.fill()  # an empty file still fits, so the check before training passes; the PNG does not
    args = ["train", *LINEAR_ARGS, "--epochs", "3", "--plot", str(plot)]
    status, out, err = _cli(capsys, *args, *(["--save", str(run)] if saved else []))
    assert status == 2
    assert "final loss" in out
    assert "plot written" not in out
    kept = f"and saved in {run}" if saved else "not saved"
    assert err == (
        f"mlbasics: error: {plot}: cannot be written ({NO_SPACE}); the result of training is shown above, {kept}\n"
    )
    assert sorted(p.name for p in disk.path.iterdir() if not p.name.startswith("filler-")) == []
    if saved:
        assert Checkpoint.load(run).epoch == 3


def test_predictions_on_a_full_disk_leave_the_old_file(
    disk: Disk, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlbasics.train(**LINEAR, epochs=2, save=tmp_path / "run")
    output = disk.path / "out.csv"
    output.write_text("old predictions\n")
    disk.fill()
    status, out, err = _cli(
        capsys, "predict", str(tmp_path / "run"), "--x", "1", "2", "--output", str(output)
    )
    assert (status, out) == (2, "")
    assert err == f"mlbasics: error: {output}: cannot be written ({NO_SPACE})\n"
    assert output.read_text() == "old predictions\n"
    assert sorted(p.name for p in disk.path.iterdir() if not p.name.startswith("filler-")) == ["out.csv"]


def test_a_refused_second_rename_puts_the_previous_checkpoint_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one step no real file system refuses on cue: the rename of the new checkpoint into place."""
    run = tmp_path / "run"
    write_checkpoint(run, _trained(3))
    real_replace = os.replace

    def refusing(source: Any, target: Any) -> None:
        if Path(source).name.startswith(".checkpoint-"):  # the new checkpoint, not the old one back
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_replace(source, target)

    monkeypatch.setattr(mlbasics.runs.checkpoints.os, "replace", refusing)
    with pytest.raises(SaveError, match=f"cannot write a checkpoint \\({os.strerror(errno.EIO)}\\)"):
        write_checkpoint(run, _trained(5))
    assert sorted(p.name for p in run.iterdir()) == [CHECKPOINT]
    assert not (run / PREVIOUS).exists()
    assert Checkpoint.load(run).epoch == 3


# -- one run per folder ---------------------------------------------------------------------------


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first run never wrote a checkpoint"
        time.sleep(0.1)


def _epoch(run: Path) -> int:
    """The epoch of ``run``'s checkpoint; -1 if it is caught between two renames of a swap."""
    try:
        return Checkpoint.load(run).epoch
    except mlbasics.DataError:
        return -1


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlbasics", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_second_process_saving_into_the_same_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real processes: the lock is the operating system's, and it must die with its holder."""
    monkeypatch.chdir(tmp_path)
    billion = ["--epochs", "1000000000", "--checkpoint-every", "20"]
    first = _start("train", *LINEAR_ARGS, *billion, "--save", "run", cwd=tmp_path)
    try:
        _wait_for(lambda: (tmp_path / "run" / CHECKPOINT).exists(), first)
        refusal = (
            f"mlbasics: error: run: another run is writing into this folder (process {first.pid}); "
            "wait for it to end, or save into another folder\n"
        )
        second = run_cli("train", *LINEAR_ARGS, "--epochs", "3", "--save", "run", "--force", cwd=tmp_path)
        assert (second.returncode, second.stdout, second.stderr) == (2, "", refusal)
        for args in (["--resume", "run"], ["--resume", "run", "--save", "run"]):  # this process, too
            assert _cli(capsys, "train", *LINEAR_ARGS, "--epochs", "1000000001", *args) == (2, "", refusal)
        assert first.poll() is None  # the first run goes on untouched
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 128 + signal.SIGTERM
        assert "Traceback" not in err
        assert err.startswith("mlbasics: interrupted by SIGTERM after epoch ")
    finally:
        with contextlib.suppress(ProcessLookupError):
            first.kill()
        first.communicate()

    # A run killed outright (kill -9) cannot clean up, and needs not: its lock died with it.
    killed = _start("train", *LINEAR_ARGS, *billion, "--resume", "run", cwd=tmp_path)
    try:
        epoch = _epoch(tmp_path / "run")
        _wait_for(lambda: _epoch(tmp_path / "run") > epoch, killed)
    finally:
        killed.kill()  # SIGKILL
        killed.communicate()
    status, _, err = _cli(capsys, "train", *LINEAR_ARGS, "--epochs", "2", "--save", "run", "--force")
    assert (status, err) == (0, "")
    assert Checkpoint.load(tmp_path / "run").epoch == 2


def test_a_second_run_in_the_same_process_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    refused: list[str] = []

    class TryToo(Callback):
        def on_sync(self, setup: Setup, epoch: int, losses: torch.Tensor) -> None:
            if epoch == 6:
                for attempt in (
                    lambda: mlbasics.train(**LINEAR, epochs=3, save=run, overwrite=True),
                    lambda: mlbasics.resume(run, epochs=12),
                ):
                    with pytest.raises(SaveError) as error:
                        attempt()
                    refused.append(str(error.value))

    result = mlbasics.train(
        **LINEAR, epochs=8, log_every=1, save=run, checkpoint_every=5, callbacks=[TryToo()]
    )
    assert (
        refused
        == [
            f"{run}: another run is writing into this folder (process {os.getpid()}); wait for it to end, "
            "or save into another folder"
        ]
        * 2
    )
    assert Checkpoint.load(run).history == result.history  # the first run was not disturbed
    mlbasics.resume(run, epochs=9)  # released at the end of training
    assert Checkpoint.load(run).epoch == 9


def test_a_run_that_writes_nothing_leaves_no_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(mlbasics.DivergenceError):
        mlbasics.train(**LINEAR, epochs=50, optimizer={"name": "sgd", "lr": 50.0}, save=run)
    assert not run.exists()
    with pytest.raises(mlbasics.ValidationError):  # a mistake in the experiment: not even created
        mlbasics.train(**LINEAR, epochs=5, optimizer="sdg", save=run)
    assert not run.exists()


def test_a_sweep_plot_that_cannot_be_written_still_shows_the_results(
    disk: Disk, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    plot = disk.path / "sweep.png"
    disk.fill()
    args = ["--dataset", "tiny", "--model", "linear", "--device", "cpu", "--epochs", "3", "--lrs", "0.01,0.1"]
    status, out, err = _cli(capsys, "sweep", *args, "--quiet", "--json", "--plot", str(plot))
    assert status == 2
    assert len(json.loads(out)["members"]) == 2
    assert err == (
        f"mlbasics: error: {plot}: cannot be written ({NO_SPACE}); the results of the sweep are shown in the "
        "JSON on stdout, not saved\n"
    )
