"""Every kind of bad input, through the real command (``mlbasics.cli.main``, in this process, with
its stdout, stderr and exit status captured as a subprocess's would be): one line on stderr naming the
offending thing, exit status 2, no traceback, nothing on stdout, and not one file written or changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics.devices import ON_THE_CPU
from mlbasics.runs.checkpoints import CHECKPOINT, MANIFEST
from tests.conftest import FakeSite, plugin_source, run_main

CSV_FILES = {
    "ok.csv": "x,y\n1,2\n2,4\n",
    "empty.csv": "",
    "header-only.csv": "x,y\n",
    "ragged.csv": "x,y\n1,2\n3\n",
    "text.csv": "x,y\n1,2\n3,abc\n",
    "nan.csv": "x,y\n1,nan\n",
    "inf.csv": "x,y\n1,2\n-inf,3\n",
    "other-columns.csv": "hours,score\n1,2\n",
}
TOML_FILES = {
    "malformed.toml": "epochs = 10\n[model\n",
    "misspelt-key.toml": "epoch = 3\n",
    "misspelt-component.toml": '[optimizer]\nname = "sdg"\n',
    "wrong-type.toml": 'epochs = "ten"\n',
    "not-utf8.toml": b"epochs = 1\n\xff\xfe\n",
}
LINEAR = ["--dataset", "tiny", "--model", "linear"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data files, config files and run folders (whole, damaged, foreign) to be wrong about."""
    root = tmp_path_factory.mktemp("workspace")
    for name, content in {**CSV_FILES, **TOML_FILES}.items():
        path = root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (root / "empty-folder").mkdir()
    (root / "folder.png").mkdir()
    mlbasics.train(dataset="tiny", model="linear", epochs=3, device="cpu", save=root / "run")
    damage = {
        "truncated": lambda folder: _truncate(folder / "model.safetensors"),
        "tampered": lambda folder: _flip_a_byte(folder / "history.csv"),
        "incomplete": lambda folder: (folder / MANIFEST).unlink(),
        "newer": lambda folder: _set_format_version(folder / MANIFEST, 99),
    }
    for name, harm in damage.items():
        shutil.copytree(root / "run", root / name)
        harm(root / name / CHECKPOINT)
    return root


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 1
    path.write_bytes(bytes(data))


def _set_format_version(path: Path, version: int) -> None:
    manifest = json.loads(path.read_text())
    manifest["format_version"] = version
    path.write_text(json.dumps(manifest))


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


def _csv(name: str) -> list[str]:
    return ["--dataset", "csv", "--set", f"dataset.path={name}", "--model", "linear"]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
NO_MPS = pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
TAMPERED = "the file was changed or truncated after the checkpoint was written"

# (what is wrong, the command, the one line it must print after "mlbasics: error: ")
BAD_INPUT = [
    ("unknown component", ["train", "--model", "mpl"], "unknown model 'mpl'; did you mean 'mlp'?"),
    (
        "unknown component in TOML",
        ["train", "misspelt-component.toml"],
        "unknown optimizer 'sdg'; did you mean 'sgd'?",
    ),
    (
        "misspelt param",
        ["train", "--set", "model.hiden=[4]"],
        "model 'mlp': unknown param 'hiden'; did you mean 'hidden'?",
    ),
    ("misspelt setting", ["train", "--set", "epoch=3"], "unknown setting 'epoch'; did you mean 'epochs'?"),
    (
        "misspelt TOML key",
        ["train", "misspelt-key.toml"],
        "misspelt-key.toml: unknown key 'epoch'; did you mean 'epochs'?",
    ),
    ("unknown flag", ["train", "--epohcs", "3"], "unrecognized arguments: --epohcs (see `mlbasics --help`)"),
    (
        "wrong type of a param",
        ["train", "--set", "optimizer.lr=fast"],
        "optimizer 'sgd': param 'lr' expected float, got 'fast' (str)",
    ),
    (
        "wrong type of a flag",
        ["train", "--epochs", "ten"],
        "argument --epochs: invalid int value: 'ten' (see `mlbasics train --help`)",
    ),
    ("wrong type in TOML", ["train", "wrong-type.toml"], "epochs must be an integer, got 'ten'"),
    ("negative lr", ["train", "--lr", "-1"], "optimizer 'sgd': param 'lr' must be > 0, got -1.0"),
    ("zero epochs", ["train", "--epochs", "0"], "epochs must be >= 1, got 0"),
    (
        "empty hidden sizes",
        ["train", "--set", "model.hidden=[]"],
        "model 'mlp': param 'hidden' needs at least 1 item(s), got 0",
    ),
    (
        "unknown activation inside an MLP",
        ["train", "--set", "model.activation=sigmod"],
        "model 'mlp': param 'activation': unknown activation 'sigmod'; did you mean 'sigmoid'?",
    ),
    (
        "lstsq with an MLP",
        ["train", "--optimizer", "lstsq"],
        "optimizer 'lstsq' fits only a linear model (torch.nn.Linear), not Sequential",
    ),
    (
        "model input size vs dataset",
        ["train", *LINEAR, "--set", "model.in_features=3"],
        "model 'linear': in_features = 3 does not match dataset 'tiny', which has 1 feature column",
    ),
    (
        "malformed TOML, with the line",
        ["train", "malformed.toml"],
        "malformed.toml: invalid TOML: Expected ']' at the end of a table declaration (at line 2, column 7)",
    ),
    ("TOML that is not UTF-8", ["train", "not-utf8.toml"], "not-utf8.toml: not UTF-8 text"),
    ("missing CSV", ["train", *_csv("missing.csv")], "missing.csv: no such file"),
    (
        "empty CSV",
        ["train", *_csv("empty.csv")],
        "empty.csv: empty file, expected a header row and data rows",
    ),
    (
        "CSV with a header only",
        ["train", *_csv("header-only.csv")],
        "header-only.csv: only a header row, no data",
    ),
    ("ragged CSV", ["train", *_csv("ragged.csv")], "ragged.csv, line 3: 1 cells, but the header has 2"),
    (
        "non-numeric CSV",
        ["train", *_csv("text.csv")],
        "text.csv, line 3: column 'y' holds 'abc', not a number",
    ),
    (
        "NaN in a CSV",
        ["train", *_csv("nan.csv")],
        "nan.csv, line 2: column 'y' holds 'nan', not a finite float32 number",
    ),
    (
        "inf in a CSV",
        ["train", *_csv("inf.csv")],
        "inf.csv, line 3: column 'x' holds '-inf', not a finite float32 number",
    ),
    (
        "CSV without the target column",
        ["train", *_csv("other-columns.csv"), "--set", "dataset.target=y"],
        "other-columns.csv, line 1: no column 'y' in the header; columns: hours, score",
    ),
    (
        "CSV without a target column of several",
        ["train", *_csv("other-columns.csv"), "--set", "dataset.targets=['score','y']"],
        "other-columns.csv, line 1: no column 'y' in the header; columns: hours, score",
    ),
    (
        "CSV with a bad cell, memory-mapped (no cache is left behind)",
        ["train", *_csv("text.csv"), "--set", "dataset.memory_map=true"],
        "text.csv, line 3: column 'y' holds 'abc', not a number",
    ),
    pytest.param(
        "device not available",
        ["train", "--device", "cuda"],
        f"device 'cuda' is not available: no CUDA GPU found (torch {torch.__version__}, "
        f"{f'CUDA {torch.version.cuda}' if torch.version.cuda else 'a build without CUDA'}); {ON_THE_CPU}",
        marks=NO_CUDA,
        id="device not available",
    ),
    pytest.param(
        "MPS not available",
        ["train", "--device", "mps"],
        f"device 'mps' is not available: this machine or torch build has no MPS support; {ON_THE_CPU}",
        marks=NO_MPS,
        id="MPS not available",
    ),
    (
        "unknown device",
        ["train", "--device", "gpu"],
        "unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps",
    ),
    ("missing run folder", ["train", "--resume", "nowhere"], "nowhere: no such run folder"),
    (
        "folder without a checkpoint",
        ["train", "--resume", "empty-folder"],
        "empty-folder: holds no checkpoint (no checkpoint/ folder); write one with --save empty-folder",
    ),
    (
        "file instead of a run folder",
        ["train", "--resume", "ok.csv"],
        "ok.csv: not a folder; a run folder is written by `mlbasics train --save`",
    ),
    (
        "truncated checkpoint",
        ["train", "--resume", "truncated"],
        f"truncated/checkpoint/model.safetensors: does not match its SHA-256 in manifest.json; {TAMPERED}",
    ),
    (
        "tampered checkpoint",
        ["train", "--resume", "tampered"],
        f"tampered/checkpoint/history.csv: does not match its SHA-256 in manifest.json; {TAMPERED}",
    ),
    (
        "incomplete checkpoint",
        ["train", "--resume", "incomplete"],
        "incomplete/checkpoint/manifest.json: missing; the checkpoint is incomplete",
    ),
    (
        "checkpoint from a newer mlbasics",
        ["train", "--resume", "newer"],
        "newer/checkpoint/manifest.json: written by a newer mlbasics (checkpoint format 99; this one reads format 1): "
        "upgrade mlbasics to read it",
    ),
    (
        "checkpoint from another experiment",
        ["train", "--resume", "run", "--lr", "0.5"],
        "cannot resume run: it was trained with another experiment: optimizer 'sgd': lr is 0.5 now but was 0.01 "
        "(--force resumes anyway)",
    ),
    (
        "resuming to fewer epochs",
        ["train", "--resume", "run", "--epochs", "2"],
        "cannot resume run to 2 epochs: it has trained 3 already",
    ),
    (
        "saving over another run",
        ["train", *LINEAR, "--save", "run"],
        "run already holds a run (epoch 3); continue it with --resume run, or pass --force to replace it",
    ),
    (
        "saving into a file",
        ["train", "--save", "ok.csv"],
        "ok.csv: exists and is not a folder; --save needs a folder for the run",
    ),
    (
        "checkpoint interval without a folder",
        ["train", "--checkpoint-every", "5"],
        "--checkpoint-every needs --save DIR (or --resume DIR)",
    ),
    (
        "zero checkpoint interval",
        ["train", "--save", "new-run", "--checkpoint-every", "0"],
        "checkpoint interval must be an integer >= 1, got 0",
    ),
    (
        "divergence threshold <= 1",
        ["train", "--divergence-threshold", "0.5"],
        "divergence threshold must be a finite number > 1, got 0.5",
    ),
    (
        "bad input does not create --save DIR",
        ["train", "--model", "mpl", "--save", "new-run"],
        "unknown model 'mpl'; did you mean 'mlp'?",
    ),
    ("predict: missing run folder", ["predict", "nowhere", "--x", "1"], "nowhere: no such run folder"),
    (
        "predict: damaged run folder",
        ["predict", "tampered", "--x", "1"],
        f"tampered/checkpoint/history.csv: does not match its SHA-256 in manifest.json; {TAMPERED}",
    ),
    (
        "predict: too many values",
        ["predict", "run", "--x", "1,2"],
        "--x '1,2': 2 values, but the model takes 1 (x), separated by commas",
    ),
    ("predict: not a number", ["predict", "run", "--x", "abc"], "--x 'abc': 'abc' is not a number"),
    (
        "predict: not finite",
        ["predict", "run", "--x", "nan"],
        "--x 'nan': 'nan' is not a finite float32 number",
    ),
    (
        "predict: CSV without the feature column",
        ["predict", "run", "--csv", "other-columns.csv"],
        "other-columns.csv, line 1: no column 'x' in the header; the model takes x",
    ),
    (
        "predict: ragged CSV",
        ["predict", "run", "--csv", "ragged.csv"],
        "ragged.csv, line 3: 1 cells, but the header has 2",
    ),
    (
        "predict: no input",
        ["predict", "run"],
        "one of the arguments --x --csv is required (see `mlbasics predict --help`)",
    ),
    (
        "predict: output folder missing",
        ["predict", "run", "--x", "1", "--output", "no/such/out.csv"],
        "output file 'no/such/out.csv': folder 'no/such' does not exist",
    ),
    (
        "predict: output is a folder",
        ["predict", "run", "--x", "1", "--output", "empty-folder"],
        "output file 'empty-folder': is a folder, not a file",
    ),
    (
        "plot file is a folder (found before training)",
        ["train", *LINEAR, "--plot", "folder.png"],
        "plot file 'folder.png': is a folder, not a file",
    ),
]


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [row if hasattr(row, "marks") else pytest.param(*row, id=row[0]) for row in BAD_INPUT],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    workspace: Path, case: str, args: list[str], message: str
) -> None:
    before = _snapshot(workspace)
    result = run_main(*args, cwd=workspace)
    assert result.stderr == f"mlbasics: error: {message}\n", case
    assert result.returncode == 2
    assert result.stdout == ""
    assert _snapshot(workspace) == before  # nothing created, changed or half-written


def test_a_run_whose_plugin_is_gone_names_the_plugin(site: FakeSite, tmp_path: Path) -> None:
    site.install(
        "mlbasics-softsign",
        version="2.0",
        entry_points={"softsign": "softsign_gone_plugin"},
        modules={"softsign_gone_plugin": plugin_source("softsign_gone_plugin")},
    )
    trained = run_main(
        "train",
        "--set",
        "model.activation=softsign",
        "--epochs",
        "2",
        "--quiet",
        "--save",
        "run",
        env=site.env(),
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    before = _snapshot(tmp_path / "run")
    env = site.env() | {"MLBASICS_DISABLE_PLUGINS": "softsign"}
    result = run_main("train", "--resume", "run", "--epochs", "4", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "mlbasics: error: cannot resume run: it was trained with activation 'softsign' (the activation of "
        "model 'mlp') from plugin softsign (mlbasics-softsign 2.0), which is not available here"
    )
    assert "--force" not in result.stderr  # forcing cannot bring a plugin back: not offered
    assert result.stderr.count("\n") == 1
    assert _snapshot(tmp_path / "run") == before
