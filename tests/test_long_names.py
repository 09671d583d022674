"""A path with a name too long for the file system, wherever a user gives one: a run folder to read
(``--resume``, ``predict DIR``) or to write (``--save``), a config or data file, a plot, a log, a
plugin file or folder. The operating system answers any use of such a path -- even asking whether
it exists -- with ENAMETOOLONG (errno 36); each goes through one check first and is one line
naming the path, exit status 2, no traceback, nothing written."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

import mlbasics
from mlbasics import DataError, Experiment, MlbasicsError, Registry, SaveError
from mlbasics.cli import main
from mlbasics.core.registry import reset_default_registry
from mlbasics.runs.checkpoints import Checkpoint

LONG = "a" * 300  # longer than any common file system allows for one name (255 bytes)
#: How the check words a name of ``size`` bytes (all of them ``a``).
TOO_LONG = "the name 'aaaaaaaaaaaaaaaaaaaaaaaa'... is {size} bytes long; the file system allows 255"
QUICK = ["--dataset", "tiny", "--model", "linear", "--device", "cpu", "--epochs", "2", "--quiet"]


@pytest.fixture(autouse=True)
def _in_a_folder_with_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.pathconf(tmp_path, "PC_NAME_MAX") != 255:
        pytest.skip("the file system here does not allow 255-byte names")
    monkeypatch.chdir(tmp_path)
    mlbasics.train(dataset="tiny", model="linear", device="cpu", epochs=2, save="run")


def test_the_operating_system_itself_refuses_such_a_name() -> None:
    """What the check stands in front of: without it, asking is already an error."""
    with pytest.raises(OSError, match="File name too long") as raised:
        Path(LONG).exists()
    assert raised.value.errno == errno.ENAMETOOLONG


CASES = [
    ("resume", ["train", *QUICK, "--resume", LONG], f"{LONG}: cannot be a run folder: " + TOO_LONG.format(size=300)),
    ("predict", ["predict", LONG, "--x", "1"], f"{LONG}: cannot be a run folder: " + TOO_LONG.format(size=300)),
    ("save", ["train", *QUICK, "--save", LONG], f"{LONG}: cannot be a run folder: " + TOO_LONG.format(size=300)),
    ("resume into save", ["train", *QUICK, "--resume", "run", "--save", LONG], f"{LONG}: cannot be a run folder: " + TOO_LONG.format(size=300)),
    ("config", ["train", f"{LONG}.toml", *QUICK], f"{LONG}.toml: " + TOO_LONG.format(size=305)),
    ("sweep config", ["sweep", f"{LONG}.toml", "--seeds", "0,1", "--quiet"], f"{LONG}.toml: " + TOO_LONG.format(size=305)),
    ("dataset path", ["train", *QUICK, "--dataset", "csv", "--set", f"dataset.path={LONG}.csv"], f"{LONG}.csv: " + TOO_LONG.format(size=304)),
    ("predict csv", ["predict", "run", "--csv", f"{LONG}.csv"], f"{LONG}.csv: " + TOO_LONG.format(size=304)),
    ("predict output", ["predict", "run", "--x", "1", "--output", f"{LONG}.csv"], f"output file '{LONG}.csv': " + TOO_LONG.format(size=304)),
    ("plot", ["train", *QUICK, "--plot", f"{LONG}.png"], f"plot file '{LONG}.png': " + TOO_LONG.format(size=304)),
    ("sweep plot", ["sweep", *QUICK, "--seeds", "0,1", "--plot", f"{LONG}.png"], f"plot file '{LONG}.png': " + TOO_LONG.format(size=304)),
    ("csv-logger", ["train", *QUICK, "--callback", "csv-logger", "--set", f"callbacks.csv-logger.path={LONG}.csv"], f"callback 'csv-logger' from plugin builtins: path '{LONG}.csv': " + TOO_LONG.format(size=304)),
    ("jsonl-logger", ["train", *QUICK, "--callback", "jsonl-logger", "--set", f"callbacks.jsonl-logger.path={LONG}.jsonl"], f"callback 'jsonl-logger' from plugin builtins: path '{LONG}.jsonl': " + TOO_LONG.format(size=306)),
    ("plugins dir", ["--plugins-dir", LONG, "list"], f"--plugins-dir '{LONG}': " + TOO_LONG.format(size=300)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "args", "message"), [pytest.param(*row, id=row[0]) for row in CASES])
def test_every_path_a_user_gives_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, args: list[str], message: str
) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    status = main(args)
    captured = capsys.readouterr()
    assert (status, captured.err) == (2, f"mlbasics: error: {message}\n"), case
    assert "Traceback" not in captured.out
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written, nothing left


def test_a_plugins_folder_named_in_the_environment_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stale MLBASICS_PLUGINS_DIR entry is a failed plugin that `mlbasics plugins` shows (the
    others keep working), as a missing folder there is."""
    monkeypatch.setenv("MLBASICS_PLUGINS_DIR", LONG)
    reset_default_registry()  # made by the fixture's training, before the variable was set
    assert main(["plugins", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records[LONG]["status"] == "failed"
    assert records[LONG]["error"] == TOO_LONG.format(size=300)
    assert records["builtins"]["status"] == "active"
    assert main(["train", *QUICK]) == 0


def test_the_python_api_raises_the_same_one_line_errors(tmp_path: Path) -> None:
    run = f"{LONG}: cannot be a run folder: " + TOO_LONG.format(size=300)
    calls = [
        (lambda: mlbasics.resume(LONG), DataError, run),
        (lambda: Checkpoint.load(LONG), DataError, run),
        (lambda: mlbasics.resume("run", save=LONG, epochs=4), SaveError, run),
        (lambda: mlbasics.train(dataset="tiny", epochs=2, save=LONG), SaveError, run),
        (lambda: Experiment.load(f"{LONG}.toml"), DataError, f"{LONG}.toml: " + TOO_LONG.format(size=305)),
        (lambda: Experiment().save(f"{LONG}.toml"), SaveError, f"{LONG}.toml: " + TOO_LONG.format(size=305)),
    ]
    for call, error, message in calls:
        with pytest.raises(error) as raised:
            call()
        assert str(raised.value) == message
    with pytest.raises(MlbasicsError) as raised:  # isolated registries are strict
        Registry.isolated().add_plugin_path(LONG)
    assert str(raised.value) == f"plugin {LONG}: " + TOO_LONG.format(size=300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
