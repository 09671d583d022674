"""Bad input at the edges, in-process through ``mlbasics.cli.main``: a factory that raises (or runs
out of memory), a plugin that calls ``sys.exit()``, a device torch refuses, values nested absurdly
deep, an allow-list naming no plugin, a sweep too large to hold, and a forced resume with another
model. Each is one line on stderr naming the offending thing, exit status 2 for the user's input
(1 for a plugin's bug), no traceback, and nothing written."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import (
    ComponentBuildError,
    Experiment,
    PluginBugError,
    Registry,
    ValidationError,
)
from mlbasics.cli import main
from mlbasics.core.plugins import PluginSet, PluginSettings
from mlbasics.core.specs import MAX_NESTING, nested_too_deeply
from mlbasics.errors import caused_by_params
from mlbasics.sweeps.grid import MAX_MEMBERS
from tests import reliability_plugin
from tests.conftest import FakeSite

# One component of every kind whose factory raises what EDGE_FAIL names (built normally if unset).
FAILING_PLUGIN = """
import os
import sys

import torch
from torch import nn

import mlbasics
from mlbasics import ComponentSpec, hookimpl

FAILURES = {
    "value": lambda: ValueError("width must be even"),
    "type": lambda: TypeError("expected a tensor"),
    "memory": lambda: MemoryError(),
    "torch-memory": lambda: RuntimeError(
        "DefaultCPUAllocator: not enough memory: you tried to allocate 400000000000 bytes."
    ),
    "cuda-memory": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    "key": lambda: KeyError("width"),
    "attribute": lambda: AttributeError("'NoneType' object has no attribute 'shape'"),
}


def _maybe_fail():
    what = os.environ.get("EDGE_FAIL")
    if what == "exit":
        sys.exit("the plugin gave up")
    if what:
        raise FAILURES[what]()


def dataset():
    _maybe_fail()
    return mlbasics.Dataset.from_rows([(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)])


def model(in_features, out_features):
    _maybe_fail()
    return nn.Linear(in_features, out_features)


def activation():
    _maybe_fail()
    return nn.Tanh()


def loss():
    _maybe_fail()
    return nn.MSELoss()


def optimizer(params, lr=0.01):
    _maybe_fail()
    return torch.optim.SGD(params, lr=lr)


@hookimpl
def mlbasics_datasets():
    return [ComponentSpec(kind="dataset", name="edge-data", factory=dataset, summary="3 rows")]


@hookimpl
def mlbasics_models():
    return [ComponentSpec(kind="model", name="edge-model", factory=model, summary="linear")]


@hookimpl
def mlbasics_activations():
    return [ComponentSpec(kind="activation", name="edge-act", factory=activation, summary="tanh")]


@hookimpl
def mlbasics_losses():
    return [ComponentSpec(kind="loss", name="edge-loss", factory=loss, summary="mse")]


@hookimpl
def mlbasics_optimizers():
    return [ComponentSpec(kind="optimizer", name="edge-opt", factory=optimizer, summary="sgd")]
"""

# The flags that make the experiment build the failing component of each kind (the others built-in).
CHOOSE = {
    "dataset": ["--dataset", "edge-data"],
    "model": ["--dataset", "tiny", "--model", "edge-model"],
    "activation": ["--dataset", "tiny", "--set", "model.hidden=[2]", "--set", "model.activation=edge-act"],
    "loss": ["--dataset", "tiny", "--model", "linear", "--loss", "edge-loss"],
    "optimizer": ["--dataset", "tiny", "--model", "linear", "--optimizer", "edge-opt"],
}
NAMES = {
    "dataset": "edge-data",
    "model": "edge-model",
    "activation": "edge-act",
    "loss": "edge-loss",
    "optimizer": "edge-opt",
}


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], status: int = 2) -> str:
    """Run ``mlbasics ARGV`` in-process; check the exit status and that stderr is one line with no
    traceback and stdout is empty; return that line."""
    assert main(argv) == status
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    assert err.startswith("mlbasics: error: ")
    return err.strip()


@pytest.fixture
def plugin_file(tmp_path: Path) -> Path:
    path = tmp_path / "edges.py"
    path.write_text(FAILING_PLUGIN)
    return path


# -- an exception raised while a factory builds its component ------------------------------------


@pytest.mark.parametrize("kind", list(CHOOSE))
@pytest.mark.parametrize(
    ("failure", "status", "says"),
    [
        ("value", 2, "refused its params: ValueError: width must be even"),
        ("type", 2, "refused its params: TypeError: expected a tensor"),
        ("memory", 2, "ran out of memory being built"),
        ("torch-memory", 2, "ran out of memory being built"),
        ("cuda-memory", 2, "ran out of memory being built"),
        ("key", 1, "a bug in the plugin rather than in the input: KeyError: 'width'"),
        ("attribute", 1, "a bug in the plugin rather than in the input: AttributeError"),
        ("exit", 1, "a bug in the plugin rather than in the input: SystemExit: the plugin gave up"),
    ],
)
def test_a_factory_that_raises_is_one_line_naming_component_and_plugin(
    kind: str,
    failure: str,
    status: int,
    says: str,
    plugin_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EDGE_FAIL", failure)
    before = _snapshot(tmp_path)
    argv = ["--plugins-dir", str(plugin_file), "train", *CHOOSE[kind], "--epochs", "2", "--quiet"]
    line = _fails([*argv, "--save", str(tmp_path / "run")], capsys, status)
    assert f"{kind} {NAMES[kind]!r} from plugin edges ({plugin_file})" in line
    assert says in line
    assert _snapshot(tmp_path) == before  # no run folder, not even an empty one


def test_a_factory_whose_signature_does_not_take_its_params_is_a_plugin_bug(
    plugin_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin_file.write_text(
        FAILING_PLUGIN.replace("def model(in_features, out_features):", "def model(in_features):")
    )
    argv = ["--plugins-dir", str(plugin_file), "train", *CHOOSE["model"], "--epochs", "1", "--quiet"]
    line = _fails(argv, capsys, status=1)
    assert "model 'edge-model' from plugin edges" in line
    assert (
        "cannot be called with its declared params, a bug in the plugin: TypeError: model() got an unexpected keyword argument 'out_features'"
        in line
    )


def test_the_same_plugin_trains_when_its_factories_do_not_fail(
    plugin_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failures above come from EDGE_FAIL, not from a plugin that never worked."""
    argv = ["--plugins-dir", str(plugin_file), "train", "--dataset", "edge-data", "--model", "edge-model"]
    argv += ["--loss", "edge-loss", "--optimizer", "edge-opt", "--epochs", "2", "--quiet", "--json"]
    assert main(argv) == 0, capsys.readouterr().err


def test_the_api_raises_mlbasics_errors_keeping_the_factorys_own(
    plugin_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = Registry.isolated()
    registry.add_plugin_path(plugin_file)
    monkeypatch.setenv("EDGE_FAIL", "value")
    with pytest.raises(
        ComponentBuildError, match=r"^model 'edge-model' from plugin edges .* width must be even"
    ) as built:
        registry.build("model", "edge-model", in_features=1)
    assert isinstance(built.value.error, ValueError)
    assert built.value.__cause__ is built.value.error
    monkeypatch.setenv("EDGE_FAIL", "key")
    with pytest.raises(PluginBugError, match="a bug in the plugin") as bug:
        mlbasics.train(dataset="tiny", model="edge-model", epochs=1, device="cpu", registry=registry)
    assert isinstance(bug.value.error, KeyError)
    assert not isinstance(bug.value, mlbasics.MlbasicsError)  # not the user's input


def test_a_real_model_too_large_for_memory_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A 1000 x 1e13 layer is 40 petabytes of weights: torch's allocator refuses at once, on any
    machine, and the layers before it are small (the test allocates next to nothing)."""
    line = _fails(
        ["train", "--set", "model.hidden=[1000,10000000000000]", "--device", "cpu", "--quiet"], capsys
    )
    assert "model 'mlp' from plugin builtins" in line
    assert "ran out of memory being built with hidden=[1000, 10000000000000]" in line


def test_running_out_of_memory_while_training_is_one_line(
    plugin_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model that builds but whose forward pass does not fit (as hidden=[100000000] on 1000 rows)."""
    source = FAILING_PLUGIN.replace(
        "    return nn.Linear(in_features, out_features)",
        "    return Hungry(in_features, out_features)",
    ) + textwrap.dedent(
        """
        class Hungry(nn.Linear):
            def forward(self, x):
                raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 4e11 bytes")
        """
    )
    plugin_file.write_text(source)
    argv = [
        "--plugins-dir",
        str(plugin_file),
        "train",
        "--dataset",
        "tiny",
        "--model",
        "edge-model",
        "--quiet",
    ]
    line = _fails([*argv, "--save", str(tmp_path / "run")], capsys)
    assert "out of memory training model 'edge-model' on cpu with 3 rows, in epoch 1" in line
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_running_out_of_memory_in_a_vmapped_sweep_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stacked step's allocation failing (stood in for: a thousand members of a model that
    fits once but not a thousand times) is one line that points to --sequential."""

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(mlbasics.sweeps.grid, "train_stacked", out_of_memory)
    line = _fails(["sweep", "--seeds", "0-2", "--dataset", "tiny", "--epochs", "2", "--quiet"], capsys)
    assert "out of memory training 3 members of model 'mlp' as one vmapped ensemble on cpu" in line
    assert "--sequential" in line


@pytest.mark.parametrize(
    ("exc", "users"),
    [
        (ValueError("x"), True),
        (TypeError("x"), True),
        (OverflowError("x"), True),
        (MemoryError(), True),
        (RuntimeError("CUDA out of memory"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (KeyError("x"), False),
        (ZeroDivisionError("x"), False),
        (SystemExit(1), False),
    ],
)
def test_the_rule_that_decides_whose_fault_a_factory_error_is(exc: BaseException, users: bool) -> None:
    assert caused_by_params(exc) is users


# -- a plugin that calls sys.exit() or raises a BaseException while loading ----------------------

EXITING = {
    "exits.py": "import sys\nsys.exit(3)\n",
    "exits_quietly.py": "raise SystemExit\n",
    "odd.py": "class Odd(BaseException):\n    pass\n\nraise Odd('not an Exception')\n",
    "hook_exits.py": textwrap.dedent(
        """
        import sys
        from mlbasics import hookimpl

        @hookimpl
        def mlbasics_models():
            sys.exit("no models today")
        """
    ),
}


def test_a_plugin_that_exits_while_loading_is_set_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    for name, source in EXITING.items():
        (folder / name).write_text(source)
    assert main(["--plugins-dir", str(folder), "plugins", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["exits"]["error"] == "import failed: SystemExit: 3"
    assert records["exits_quietly"]["error"] == "import failed: SystemExit"
    assert records["odd"]["error"] == "import failed: Odd: not an Exception"
    assert records["hook_exits"]["error"] == "hook mlbasics_models failed: SystemExit: no models today"
    assert all(records[name.removesuffix(".py")]["status"] == "failed" for name in EXITING)
    assert records["builtins"]["status"] == "active"
    # ... and the rest carry on: the lecture's experiment still trains.
    assert main(["--plugins-dir", str(folder), "train", "--epochs", "2", "--quiet", "--json"]) == 0


def test_an_installed_plugin_that_exits_on_import_is_set_aside(
    site: FakeSite, capsys: pytest.CaptureFixture[str]
) -> None:
    site.install(
        "mlbasics-quitter",
        entry_points={"quitter": "quitter_plugin"},
        modules={"quitter_plugin": "raise SystemExit(4)\n"},
    )
    assert main(["plugins", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (records["quitter"]["status"], records["quitter"]["error"]) == (
        "failed",
        "import failed: SystemExit: 4",
    )
    assert (
        main(["train", "--dataset", "tiny", "--model", "linear", "--epochs", "1", "--quiet", "--json"]) == 0
    )


def test_ctrl_c_while_a_plugin_loads_still_interrupts(tmp_path: Path) -> None:
    path = tmp_path / "slow.py"
    path.write_text("raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        PluginSet(PluginSettings(entry_points=False, paths=[path]))


# -- device names that pass mlbasics' check but that torch refuses --------------------------------


def test_a_device_index_torch_cannot_parse_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails(["train", "--device", "cuda:99999999999999999999", "--epochs", "1", "--quiet"], capsys)
    assert "device 'cuda:99999999999999999999'" in line


def test_mps_without_mps_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    line = _fails(["train", "--device", "mps", "--epochs", "1", "--quiet"], capsys)
    assert (
        line
        == "mlbasics: error: device 'mps' is not available: this machine or torch build has no MPS support; "
        'train on the CPU with --device cpu (device="cpu" in Python), or with --device auto, which uses a '
        "GPU only where there is one"
    )


def test_a_cuda_index_past_the_devices_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    line = _fails(["train", "--device", "cuda:99", "--epochs", "1", "--quiet"], capsys)
    assert line.endswith("device 'cuda:99' does not exist: 2 CUDA device(s) found, cuda:0 to cuda:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "auto"])
def test_a_cuda_device_that_is_listed_but_unusable_is_one_line(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Torch says CUDA is there (as with a driver that does not fit this build), but putting a
    tensor on it fails: the CPU build's own refusal, not a simulated one."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = _fails(["train", "--device", name, "--epochs", "1", "--quiet"], capsys)
    assert "cannot be used:" in line
    assert (f"device {name!r}" if name != "auto" else "device auto (chose cuda)") in line


# -- values nested absurdly deep -----------------------------------------------------------------


def _deep(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000])
def test_a_set_value_nested_too_deep_is_one_line(depth: int, capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails(["train", "--set", f"model.hidden={_deep(depth)}", "--epochs", "1", "--quiet"], capsys)
    assert (
        line
        == f"mlbasics: error: --set model.hidden: nested more than {MAX_NESTING} levels deep (lists in lists or tables in tables)"
    )


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000])
def test_a_toml_value_nested_too_deep_is_one_line(
    depth: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(f'epochs = 1\n[model]\nname = "mlp"\nhidden = {_deep(depth)}\n')
    line = _fails(["train", str(path), "--quiet"], capsys)
    assert line.startswith(f"mlbasics: error: {path}: ")
    assert f"nested more than {MAX_NESTING} levels deep" in line


def test_a_grid_value_nested_too_deep_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = _fails(["sweep", "--grid", f"model.hidden=[{_deep(3000)}]", "--quiet"], capsys)
    assert line.startswith("mlbasics: error: --grid model.hidden: nested more than")


def test_a_saved_experiment_nested_too_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlbasics.train(dataset="tiny", model="linear", epochs=2, device="cpu", save=tmp_path / "run")
    folder = tmp_path / "run" / "checkpoint"
    toml = folder / "experiment.toml"
    toml.write_text(toml.read_text().replace("[model]", f"[model]\nhidden = {_deep(4000)}"))
    # Re-signed, as a hand edit that knows the format would be: the parser is what is tested.
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["experiment.toml"] = hashlib.sha256(toml.read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    before = _snapshot(tmp_path)
    line = _fails(["train", "--resume", str(tmp_path / "run"), "--epochs", "3", "--quiet"], capsys)
    assert (
        line
        == f"mlbasics: error: {toml}: a value nested more than {MAX_NESTING} levels deep (lists in lists or tables in tables)"
    )
    assert _snapshot(tmp_path) == before


def test_the_api_refuses_deep_values_before_recursing_into_them() -> None:
    deep: list[object] = [1]
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert nested_too_deeply(deep)
    assert not nested_too_deeply([[[1]]])
    with pytest.raises(
        ValidationError, match=r"^model 'mlp': param 'hidden' is nested more than 16 levels deep$"
    ):
        mlbasics.train(model={"name": "mlp", "hidden": deep}, epochs=1, device="cpu")
    with pytest.raises(ValidationError, match=r"^model.hidden: nested more than"):
        Experiment().with_value("model.hidden", deep)
    with pytest.raises(mlbasics.DataError, match="nested more than"):
        Experiment.from_toml(f"seed = {_deep(100_000)}")


# -- an allow-list that names no installed plugin ------------------------------------------------


def test_an_allow_list_naming_no_installed_plugin_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLBASICS_PLUGINS", "foo")
    line = _fails(["train", "--epochs", "1", "--quiet"], capsys)
    assert line.startswith(
        "mlbasics: error: MLBASICS_PLUGINS names 'foo', which is not an installed plugin (installed: "
    )
    assert "builtins" in line
    assert line.endswith("so dataset 'quadratic', model 'mlp', loss 'mse', optimizer 'sgd' are unknown")


def test_an_allow_list_with_one_unknown_name_says_which(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLBASICS_PLUGINS", "builtins,torch-optimm")
    line = _fails(["train", "--optimizer", "adam", "--epochs", "1", "--quiet"], capsys)
    assert "MLBASICS_PLUGINS names 'torch-optimm', which is not an installed plugin" in line
    assert line.endswith("so optimizer 'adam' is unknown")
    # `mlbasics plugins` and `mlbasics list` warn too, and still list what they found.
    for command, shows in (("plugins", "builtins"), ("list", "mlp")):
        assert main([command]) == 0
        out, err = capsys.readouterr()
        assert err.startswith("mlbasics: warning: MLBASICS_PLUGINS names 'torch-optimm'")
        assert shows in out


def test_an_empty_allow_list_says_it_loads_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLBASICS_PLUGINS", "")
    line = _fails(["train", "--model", "linear", "--epochs", "1", "--quiet"], capsys)
    assert line.startswith(
        "mlbasics: error: MLBASICS_PLUGINS is set but empty, which loads no plugin, so dataset"
    )


# -- a sweep grid too large to hold --------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["--seeds", "0-10000000000"],
            "--seeds 0-10000000000 is 10,000,000,001 seeds; a sweep holds at most 10,000 members",
        ),
        (["--seeds", "0-5000,10-5010"], "is 10,002 seeds"),
        (
            [
                "--seeds",
                "0-999",
                "--grid",
                "optimizer.momentum=[0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95]",
            ],
            "sweep: 1,000 values of seed x 11 values of optimizer.momentum is 11,000 members; a sweep holds at most 10,000",
        ),
    ],
)
def test_a_sweep_too_large_is_refused_up_front_with_its_size(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _fails(["sweep", *argv, "--quiet"], capsys)
    assert says in line


def test_the_api_refuses_a_huge_grid_without_listing_it() -> None:
    with pytest.raises(
        ValidationError,
        match=r"^sweep: 1,000,000,000,000 values of seed is 1,000,000,000,000 members; a sweep holds at most 10,000$",
    ):
        mlbasics.sweep(seeds=range(10**12), epochs=1)
    assert MAX_MEMBERS == 10_000  # the documented limit (README.md, docs/performance.md)


# -- a forced resume with another model ----------------------------------------------------------


@pytest.fixture
def saved_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    mlbasics.train(model={"name": "mlp", "hidden": [3]}, dataset="tiny", epochs=2, device="cpu", save=run)
    return run


def test_a_forced_resume_names_the_model_being_built(
    saved_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(saved_run)
    line = _fails(["train", "--resume", str(saved_run), "--force", "--model", "linear", "--quiet"], capsys)
    assert "the weights do not fit model 'linear' (the run was trained with 'mlp')" in line
    line = _fails(
        ["train", "--resume", str(saved_run), "--force", "--set", "model.hidden=[4]", "--quiet"], capsys
    )
    assert (
        "do not fit model 'mlp' with hidden=[4], activation='relu' (the run was trained with hidden=[3]"
        in line
    )
    assert _snapshot(saved_run) == before


# -- components pulled in through a param are part of the provenance -----------------------------


def test_an_older_version_of_an_activations_plugin_is_refused_unless_forced(tmp_path: Path) -> None:
    model = {"name": "mlp", "hidden": [3], "activation": "wobble"}
    mlbasics.train(
        dataset="tiny",
        model=model,
        epochs=2,
        device="cpu",
        registry=reliability_plugin.registry("1.2"),
        save=tmp_path,
    )
    saved = mlbasics.Checkpoint.load(tmp_path).components["model"].uses["activation"]
    assert (saved.kind, saved.name, saved.plugin, saved.version) == (
        "activation",
        "wobble",
        "reliability",
        "1.2",
    )
    older = reliability_plugin.registry("1.0")
    message = (
        r"it was trained with activation 'wobble' \(the activation of model 'mlp'\) from plugin reliability "
        r"\(mlbasics-reliability 1.2\), but here reliability is version 1.0, which is older \(--force resumes anyway\)"
    )
    with pytest.raises(ValidationError, match=message):
        mlbasics.resume(tmp_path, registry=older, epochs=3)
    with pytest.warns(mlbasics.training.resuming.ResumeWarning, match="activation 'wobble'"):
        assert mlbasics.resume(tmp_path, registry=older, epochs=3, force=True).epochs == 3
    # Choosing another activation (forced) no longer depends on the one recorded.
    with pytest.warns(mlbasics.training.resuming.ResumeWarning):
        result = mlbasics.resume(
            tmp_path, registry=older, epochs=4, force=True, model={**model, "activation": "tanh"}
        )
    assert result.epochs == 4


def test_a_gone_plugin_is_not_offered_force_which_would_fail(tmp_path: Path) -> None:
    model = {"name": "mlp", "hidden": [3], "activation": "wobble"}
    mlbasics.train(
        dataset="tiny",
        model=model,
        epochs=2,
        device="cpu",
        registry=reliability_plugin.registry("1.2"),
        save=tmp_path,
    )
    gone = reliability_plugin.registry(with_plugin=False)
    for force in (False, True):
        with pytest.raises(
            ValidationError, match=r"which is not available here .*; install it to go on$"
        ) as refused:
            mlbasics.resume(tmp_path, registry=gone, epochs=3, force=force)
        assert "--force" not in str(refused.value)


# -- what a plugin author sees -------------------------------------------------------------------


def test_every_kind_is_pluralised_in_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--format", "markdown"]) == 0
    headings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Datasets",
        "## Models",
        "## Activations",
        "## Losses",
        "## Optimizers",
        "## Metrics",
        "## Callbacks",
    ]


def test_a_plugin_clashing_with_a_builtin_shows_the_conflict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "clash.py"
    path.write_text(
        textwrap.dedent(
            """
            from torch import nn
            from mlbasics import ComponentSpec, hookimpl

            @hookimpl
            def mlbasics_models():
                return [ComponentSpec(kind="model", name="mlp", factory=nn.Linear, summary="not the lecture's")]
            """
        )
    )
    assert main(["--plugins-dir", str(path), "plugins", "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["clash"]["status"] == "conflict"
    assert records["clash"]["error"].startswith("model 'mlp' (also from builtins): unusable until")
    assert records["builtins"]["status"] == "conflict"
    assert records["builtins"]["error"].startswith("model 'mlp' (also from clash)")
    assert main(["--plugins-dir", str(path), "plugins"]) == 0
    assert "conflict" in capsys.readouterr().out


def test_an_isolated_registry_gives_the_builtins_their_real_provenance() -> None:
    import importlib.metadata

    spec = Registry.isolated().get("model", "mlp")
    assert spec.plugin is not None
    assert (spec.plugin.name, spec.plugin.distribution) == ("builtins", "mlbasics")
    assert spec.plugin.version == importlib.metadata.version("mlbasics")
