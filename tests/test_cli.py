"""The ``mlbasics`` command end to end, as a user runs it: ``mlbasics.cli.main`` in this process
(``run_main``), and in a fresh interpreter where the interpreter's own part is what is tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import FakeSite, builtins_only_env, plugin_source, run_cli, run_main

ROOT = Path(__file__).parent.parent
BUILTIN_NAMES = [
    "attendance",
    "tiny",
    "scores",
    "synthetic-linear",
    "quadratic",
    "csv",
    "xor",
    "blobs",
    "spirals",
    "linear",
    "logistic",
    "mlp",
    "linear-stack",
    "relu",
    "sigmoid",
    "tanh",
    "identity",
    "mse",
    "sse-half",
    "cross-entropy",
    "binary-cross-entropy",
    "sgd",
    "lstsq",
    "mse",  # the metric, beside the loss of the same name
    "rmse",
    "mae",
    "max-error",
    "r2",
    "explained-variance",
    "accuracy",
    "balanced-accuracy",
    "precision",
    "recall",
    "f1",
    "log-loss",
    "top-k-accuracy",
    "checkpoint",
    "csv-logger",
    "divergence-check",
    "early-stopping",
    "jsonl-logger",
    "lr-cosine",
    "lr-plateau",
    "lr-step",
    "progress-bar",
]


def test_no_command_prints_help() -> None:
    result = run_main()
    assert result.returncode == 0
    assert "usage: mlbasics" in result.stdout
    for command in ("list", "plugins", "train"):
        assert command in result.stdout


def test_version() -> None:
    result = run_main("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("mlbasics 0.")


def test_list_shows_every_builtin_with_its_plugin() -> None:
    result = run_main("list", "--json", env=builtins_only_env())
    assert result.returncode == 0, result.stderr
    components = json.loads(result.stdout)
    assert sorted(c["name"] for c in components) == sorted(BUILTIN_NAMES)
    assert {c["plugin"]["name"] for c in components} == {"builtins"}
    assert {c["plugin"]["distribution"] for c in components} == {"mlbasics"}
    sgd = next(c for c in components if c["name"] == "sgd")
    assert sgd["params"][0] == {
        "name": "lr",
        "type": "float",
        "required": False,
        "default": 0.01,
        "constraint": "> 0",
        "help": "learning rate",
    }


def test_list_table_filters_by_kind_and_pattern() -> None:
    result = run_main("list", "models", "lin*", env={"COLUMNS": "200", "PATH": ""})
    assert result.returncode == 0, result.stderr
    assert "linear-stack" in result.stdout
    assert "hidden: list[int] = [6, 10, 6]" in result.stdout
    assert "mlp" not in result.stdout
    assert "builtins 0.1.0" in result.stdout


def test_list_markdown_is_the_committed_reference() -> None:
    result = run_main("list", "--format", "markdown")
    assert result.returncode == 0
    assert result.stdout.startswith("## Datasets\n")
    assert "| `mlp` |" in result.stdout


def test_list_unknown_kind() -> None:
    result = run_main("list", "layers")
    assert result.returncode == 2
    assert (
        result.stderr
        == "mlbasics: error: unknown component kind 'layers'; kinds: dataset, model, activation, loss, optimizer, "
        "metric, callback\n"
    )


def test_plugins_shows_the_builtins() -> None:
    result = run_main("plugins", "--json", env=builtins_only_env())
    assert result.returncode == 0
    records = json.loads(result.stdout)
    [builtins] = [r for r in records if r["name"] == "builtins"]
    assert builtins == {
        "name": "builtins",
        "distribution": "mlbasics",
        "version": "0.1.0",
        "module": "mlbasics.builtin",
        "path": None,
        "status": "active",
        "error": None,
        "components": 45,
    }
    # Whatever else is installed is listed, and kept out by MLBASICS_PLUGINS.
    assert all(r["status"] == "disabled" for r in records if r["name"] != "builtins")


def test_a_broken_plugin_is_reported_and_the_rest_works(site: FakeSite) -> None:
    site.install(
        "mlbasics-broken",
        version="0.3",
        entry_points={"broken": "broken_cli_plugin"},
        modules={"broken_cli_plugin": "import not_installed_dependency\n"},
    )
    site.install(
        "mlbasics-softsign",
        entry_points={"softsign": "softsign_cli_plugin"},
        modules={"softsign_cli_plugin": plugin_source("softsign_cli_plugin")},
    )
    plugins = run_main("plugins", "--json", env=site.env())
    assert plugins.returncode == 0, plugins.stderr
    records = {r["name"]: r for r in json.loads(plugins.stdout)}
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["version"] == "0.3"
    assert (
        records["broken"]["error"]
        == "import failed: ModuleNotFoundError: No module named 'not_installed_dependency'"
    )
    assert records["softsign"]["status"] == "active"
    table = run_main("plugins", env=site.env() | {"COLUMNS": "200"})
    assert "failed: import failed: ModuleNotFoundError" in table.stdout
    listing = run_main("list", "--json", env=site.env())
    assert listing.returncode == 0
    assert "softsign" in [c["name"] for c in json.loads(listing.stdout)]
    train = run_main(
        "train",
        "--model",
        "mlp",
        "--set",
        "model.activation=softsign",
        "--epochs",
        "3",
        "--json",
        env=site.env(),
    )
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["components"]["model"]["params"]["activation"] == "softsign"


def test_train_synthetic_linear_example_as_json() -> None:
    result = run_main("train", "examples/synthetic-linear.toml", "--json", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    weight, bias = data["parameters"]["weight"][0], data["parameters"]["bias"][0]
    assert [abs(w - t) < 0.01 for w, t in zip(weight, [1, 2, 3], strict=True)] == [True] * 3
    assert abs(bias - 5) < 0.01
    assert data["epochs"] == 500
    assert data["device"] == "cpu"
    assert data["components"]["optimizer"] == {
        "name": "sgd",
        "params": {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0},
        "plugin": "builtins",
        "distribution": "mlbasics",
        "version": "0.1.0",
    }
    assert result.stderr == ""


def test_train_summary_shows_learned_and_true_parameters() -> None:
    result = run_main(
        "train", "examples/synthetic-linear.toml", "--quiet", cwd=ROOT, env={"COLUMNS": "120", "PATH": ""}
    )
    assert result.returncode == 0, result.stderr
    assert "final loss" in result.stdout
    assert "Learned H(x) = Wx + b" in result.stdout
    assert "truth" in result.stdout


def test_flags_override_the_config() -> None:
    result = run_main(
        "train", "examples/tiny.toml", "--optimizer", "lstsq", "--set", "epochs=7", "--json", cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["epochs"] == 1
    assert data["experiment"]["epochs"] == 7
    assert data["parameters"]["weight"] == [[pytest.approx(1.0, abs=1e-5)]]


@pytest.mark.slow
def test_train_with_no_arguments_runs_the_lecture_mlp() -> None:
    result = run_main("train", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["epochs"] == 10000
    assert data["final_loss"] < 0.01
    assert [data["components"][k]["name"] for k in ("dataset", "model", "loss", "optimizer")] == [
        "quadratic",
        "mlp",
        "mse",
        "sgd",
    ]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "fit.png"
    result = run_main(
        "train", "--dataset", "tiny", "--model", "linear", "--epochs", "50", "--quiet", "--plot", str(plot)
    )
    assert result.returncode == 0, result.stderr
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["fit.png"]  # no temporary file left behind


USER_ERRORS = [
    (["train", "--model", "mpl"], "mlbasics: error: unknown model 'mpl'; did you mean 'mlp'?"),
    (["train", "--lr", "-1"], "mlbasics: error: optimizer 'sgd': param 'lr' must be > 0, got -1.0"),
    (["train", "--epochs", "0"], "mlbasics: error: epochs must be >= 1, got 0"),
    (
        ["train", "--set", "model.hidden=[]"],
        "mlbasics: error: model 'mlp': param 'hidden' needs at least 1 item(s), got 0",
    ),
    (
        ["train", "--set", "model.activation=sigmod"],
        "mlbasics: error: model 'mlp': param 'activation': unknown activation 'sigmod'; did you mean 'sigmoid'?",
    ),
    (
        ["train", "--set", "optimizer.lr=fast"],
        "mlbasics: error: optimizer 'sgd': param 'lr' expected float, got 'fast' (str)",
    ),
    (["train", "--set", "epoch=3"], "mlbasics: error: unknown setting 'epoch'; did you mean 'epochs'?"),
    (
        ["train", "--optimizer", "lstsq"],
        "mlbasics: error: optimizer 'lstsq' fits only a linear model (torch.nn.Linear), not Sequential",
    ),
    (
        ["train", "--device", "gpu"],
        "mlbasics: error: unknown device 'gpu'; use auto, cpu, cuda, cuda:N or mps",
    ),
    (["train", "missing.toml"], "mlbasics: error: missing.toml: no such file"),
    (
        ["train", "--dataset", "csv", "--set", "dataset.path=nope.csv"],
        "mlbasics: error: nope.csv: no such file",
    ),
    (
        ["train", "--plot", "no/such/folder/x.png"],
        "mlbasics: error: plot file 'no/such/folder/x.png': folder 'no/such/folder' does not exist",
    ),
]


@pytest.mark.parametrize(("args", "message"), USER_ERRORS, ids=[" ".join(a) for a, _ in USER_ERRORS])
def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_main(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == message + "\n"
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_malformed_toml_gives_the_line(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("epochs = 10\n[model\n")
    result = run_main("train", "bad.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("mlbasics: error: bad.toml: invalid TOML: ")
    assert "line 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback() -> None:
    # A subprocess: --debug lets the error escape main(), and the traceback and the exit status the
    # user sees are the interpreter's.
    result = run_cli("--debug", "train", "--model", "mpl")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "mlbasics.errors.ValidationError: unknown model 'mpl'" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_device(tmp_path: Path) -> None:
    result = run_main("train", "--device", "cuda", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("mlbasics: error: device 'cuda' is not available: no CUDA GPU found")
