"""Plugins that are plain .py files (``--plugins-dir``, ``MLBASICS_PLUGINS_DIR``), isolated like any other."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import torch

import mlbasics
from mlbasics import PluginError, PluginSettings, Registry
from mlbasics.core.plugin_files import module_name, plugin_files
from mlbasics.core.plugins import PluginSet
from mlbasics.core.registry import default_registry
from tests.conftest import builtins_only_env, run_main

# A student's model for today's lecture: H(x) = s·Σx³ with one learnable scale s.
CUBE_MODEL = """
import torch
from mlbasics import ComponentSpec, Param, hookimpl


class Cube(torch.nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        return self.scale * x.pow(3).sum(dim=1, keepdim=True)


def build(in_features, out_features, scale):
    return Cube(scale)


@hookimpl
def mlbasics_models():
    return [
        ComponentSpec(
            kind="model",
            name="cube",
            factory=build,
            summary="H(x) = s·Σx³",
            params=[Param(name="scale", type=float, default=1.0, help="initial s")],
        )
    ]
"""

BROKEN = "import a_module_nobody_has\n"


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    return folder


def _registry(*paths: Path, **settings: object) -> Registry:
    """The installed plugins (the built-ins among them) plus the given plugin paths."""
    return Registry(PluginSet(PluginSettings(paths=paths, **settings)))  # type: ignore[arg-type]


def _statuses(registry: Registry) -> dict[str, tuple[str, str | None]]:
    return {r.name: (r.status, r.error) for r in registry.records}


def test_a_folder_of_plugin_files(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "lecture",
        {
            "cube.py": CUBE_MODEL,
            "broken.py": BROKEN,
            "_helper.py": "raise RuntimeError('helpers are not plugins')\n",
            "notes.txt": "not Python",
        },
    )
    registry = _registry(folder)
    statuses = _statuses(registry)
    assert statuses["cube"] == ("active", None)
    assert statuses["broken"] == (
        "failed",
        "import failed: ModuleNotFoundError: No module named 'a_module_nobody_has'",
    )
    assert "_helper" not in statuses
    assert "notes" not in statuses
    cube = registry.get("model", "cube")
    assert cube.plugin is not None
    assert (cube.plugin.name, cube.plugin.path, cube.plugin.distribution) == (
        "cube",
        str(folder / "cube.py"),
        None,
    )
    assert str(cube.plugin) == f"cube ({folder / 'cube.py'})"
    model = registry.build("model", "cube", in_features=2, scale=2.0)
    assert model(torch.tensor([[1.0, 2.0]])).item() == pytest.approx(18.0)
    assert registry.get("model", "mlp")  # the rest keeps working


def test_a_single_file_trains(tmp_path: Path) -> None:
    file = _write(tmp_path, {"cube.py": CUBE_MODEL}) / "cube.py"
    result = mlbasics.train(
        dataset={"name": "synthetic-linear", "weights": [1.0], "bias": 0.0, "n": 20},
        model={"name": "cube", "scale": 0.0},
        optimizer={"name": "sgd", "lr": 0.01},
        epochs=5,
        registry=_registry(file),
    )
    assert result.components["model"].plugin == "cube"
    assert result.history[-1] < result.history[0]


def test_the_environment_variable_takes_several_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _write(tmp_path / "one", {"cube.py": CUBE_MODEL})
    second = _write(tmp_path / "two", {"broken.py": BROKEN}) / "broken.py"
    monkeypatch.setenv("MLBASICS_PLUGINS_DIR", os.pathsep.join([str(first), "", str(second)]))
    settings = PluginSettings.from_env(paths=[tmp_path / "given-first"])
    assert settings.paths == (tmp_path / "given-first", first, second)
    statuses = _statuses(Registry())
    assert statuses["cube"][0] == "active"
    assert statuses["broken"][0] == "failed"
    assert str(tmp_path / "given-first") not in statuses


def test_a_missing_path_is_reported_not_fatal(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    not_python = _write(tmp_path, {"model.txt": "x"}) / "model.txt"
    registry = _registry(missing, not_python)
    statuses = _statuses(registry)
    assert statuses[str(missing)] == ("failed", "no such file or folder")
    assert statuses[str(not_python)] == ("failed", "not a Python file (.py) or a folder of them")
    assert registry.get("model", "mlp")


def test_strict_mode_raises_for_a_broken_file(tmp_path: Path) -> None:
    folder = _write(tmp_path / "lecture", {"broken.py": BROKEN})
    with pytest.raises(
        PluginError, match=r"plugin broken \(.*broken.py\): import failed: ModuleNotFoundError"
    ):
        _registry(folder, strict=True)
    with pytest.raises(PluginError, match=r"plugin .*nowhere: no such file or folder"):
        _registry(tmp_path / "nowhere", strict=True)


def test_allow_and_deny_lists_apply_before_the_file_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    spy = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    folder = _write(tmp_path / "lecture", {"spy.py": spy, "cube.py": CUBE_MODEL})
    denied = _registry(folder, deny=frozenset({"spy"}))
    assert _statuses(denied)["spy"] == ("disabled", "disabled by MLBASICS_DISABLE_PLUGINS")
    assert _statuses(denied)["cube"] == ("active", None)
    not_allowed = _registry(folder, allow=frozenset({"builtins", "cube"}))
    assert _statuses(not_allowed)["spy"] == ("disabled", "not listed in MLBASICS_PLUGINS")
    assert not marker.exists()
    _registry(folder)
    assert marker.read_text() == "ran"  # the probe works: allowed, the file does run


def test_a_file_cannot_take_an_installed_plugins_name(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    impostor = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    folder = _write(tmp_path / "lecture", {"builtins.py": impostor})
    records = [r for r in _registry(folder).records if r.name == "builtins"]
    assert [r.status for r in records] == ["active", "failed"]
    assert records[1].error is not None
    assert "plugin name 'builtins' is already taken by builtins (mlbasics 0.1.0)" in records[1].error
    assert not marker.exists()


def test_same_file_name_in_two_folders(tmp_path: Path) -> None:
    one = _write(tmp_path / "one", {"cube.py": CUBE_MODEL})
    two = _write(tmp_path / "two", {"cube.py": CUBE_MODEL})
    registry = _registry(one, two, one / "cube.py")  # the last names a file already loaded
    cubes = [r for r in registry.records if r.name.startswith("cube")]
    assert [(r.status, r.info.path) for r in cubes] == [
        ("active", str(one / "cube.py")),
        ("failed", str(two / "cube.py")),
    ]
    assert module_name(one / "cube.py") != module_name(two / "cube.py")


def test_a_file_named_like_a_module_does_not_shadow_it(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"json.py": CUBE_MODEL})
    _registry(folder).get("model", "cube")
    assert json.dumps([1]) == "[1]"
    assert "mlbasics_plugin_file_json_" in module_name(folder / "json.py")


def test_a_new_registry_sees_an_edited_file(tmp_path: Path) -> None:
    file = _write(tmp_path, {"cube.py": CUBE_MODEL}) / "cube.py"
    assert _registry(file).get("model", "cube").summary == "H(x) = s·Σx³"
    file.write_text(CUBE_MODEL.replace("H(x) = s·Σx³", "the cube model, edited"))
    assert _registry(file).get("model", "cube").summary == "the cube model, edited"


def test_classes_in_a_plugin_file_behave_as_in_a_module(tmp_path: Path) -> None:
    source = """
    import dataclasses
    from mlbasics import ComponentSpec, hookimpl

    @dataclasses.dataclass
    class Scale:
        factor: float = 2.0

        def __call__(self):
            import torch
            return torch.nn.Identity()

    @hookimpl
    def mlbasics_activations():
        return [ComponentSpec(kind="activation", name="scaled", factory=Scale(), summary="x")]
    """
    registry = _registry(_write(tmp_path, {"scaled.py": source}))
    assert registry.build("activation", "scaled").__class__.__name__ == "Identity"


def test_plugin_files_lists_py_files_only(tmp_path: Path) -> None:
    folder = _write(tmp_path, {"b.py": "", "a.py": "", "_c.py": "", ".d.py": "", "e.txt": ""})
    (folder / "sub").mkdir()
    (folder / "sub" / "f.py").write_text("")
    assert [f.name for f in plugin_files(folder)] == ["a.py", "b.py"]
    assert plugin_files(folder / "_c.py") == [folder / "_c.py"]  # named explicitly: loaded
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        plugin_files(folder / "missing")
    with pytest.raises(ValueError, match="not a Python file"):
        plugin_files(folder / "e.txt")


def test_the_default_registry_takes_a_path(tmp_path: Path) -> None:
    file = _write(tmp_path, {"cube.py": CUBE_MODEL}) / "cube.py"
    [record] = default_registry().add_plugin_path(file)
    assert record.status == "active"
    assert mlbasics.build("model", "cube", in_features=1).__class__.__name__ == "Cube"


# -- the command line ----------------------------------------------------------------------------


def test_cli_plugins_dir_lists_trains_and_reports(tmp_path: Path) -> None:
    folder = _write(tmp_path / "lecture", {"cube.py": CUBE_MODEL, "broken.py": BROKEN})
    env = builtins_only_env(MLBASICS_PLUGINS="builtins,cube,broken")
    listing = run_main("--plugins-dir", str(folder), "list", "models", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    cube = next(c for c in json.loads(listing.stdout) if c["name"] == "cube")
    assert cube["plugin"] == {
        "name": "cube",
        "distribution": None,
        "version": None,
        "path": str(folder / "cube.py"),
    }
    plugins = run_main("--plugins-dir", str(folder), "plugins", "--json", env=env)
    records = {r["name"]: r for r in json.loads(plugins.stdout)}
    assert records["cube"]["status"] == "active"
    assert records["cube"]["path"] == str(folder / "cube.py")
    assert records["broken"]["status"] == "failed"
    assert records["broken"]["error"].startswith("import failed: ModuleNotFoundError")
    table = run_main("--plugins-dir", str(folder), "plugins", env=env | {"COLUMNS": "250"})
    assert str(folder / "cube.py") in table.stdout
    train = run_main(
        "--plugins-dir",
        str(folder / "cube.py"),
        "train",
        "--dataset",
        "tiny",
        "--model",
        "cube",
        "--epochs",
        "3",
        "--json",
        env=env,
    )
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["components"]["model"]["plugin"] == "cube"


def test_cli_environment_variable(tmp_path: Path) -> None:
    folder = _write(tmp_path / "lecture", {"cube.py": CUBE_MODEL})
    env = builtins_only_env(MLBASICS_PLUGINS="builtins,cube", MLBASICS_PLUGINS_DIR=str(folder))
    listing = run_main("list", "models", "cube", "--json", env=env)
    assert [c["name"] for c in json.loads(listing.stdout)] == ["cube"]


def test_cli_missing_plugins_dir_is_a_user_error(tmp_path: Path) -> None:
    result = run_main("--plugins-dir", "lectrue", "list", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "mlbasics: error: --plugins-dir 'lectrue': no such file or folder\n"
    assert result.stdout == ""
