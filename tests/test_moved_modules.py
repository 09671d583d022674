"""The module paths of 0.1 still import for one more minor version: the same module, with a
DeprecationWarning that names its new path (mlbasics/_moved.py)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import mlbasics
from mlbasics._moved import MOVED

#: Every module of mlbasics 0.1 (``git show 783e05a:mlbasics``), and where its code is now.
OLD_MODULES = (
    *(
        "_checkpoint_files",
        "_csv",
        "_csv_cache",
        "_files",
        "_gradients",
        "_provenance",
        "_run_lock",
        "_state",
    ),
    *("_version", "analysis", "anomaly", "batches", "callbacks", "checkpoints", "data", "data_parallel"),
    *("devices", "display", "distributed", "distributed_sweeps", "divergence", "ensemble", "errors"),
    *("experiment", "hookspecs", "interrupts", "loop", "metrics", "notebook", "notes", "plotting"),
    *("plugin_files", "plugins", "prediction", "progress", "registry", "results", "resuming", "setup"),
    *("solvers", "specs", "splits", "standardization", "steppers", "sweep_results", "sweeps", "training"),
)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_new_module_with_a_warning(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"^{old} moved to {MOVED[old]}; import it from there"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert module.__spec__ is not None
    assert module.__spec__.name == MOVED[old]  # its own, not the alias's


def test_every_old_public_module_still_imports() -> None:
    # Private modules (a leading underscore) moved without a forwarding path; the rest either kept
    # their path (a module or a package re-exporting what they held) or are forwarded.
    for name in OLD_MODULES:
        if name.startswith("_"):
            continue
        path = f"mlbasics.{name}"
        assert path in MOVED or importlib.util.find_spec(path) is not None, path


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("mlbasics.data", {"Dataset": mlbasics, "GroundTruth": mlbasics}),
        ("mlbasics.training", {"train": mlbasics, "resume": mlbasics, "run": "mlbasics.training.runner"}),
        ("mlbasics.sweeps", {"sweep": mlbasics, "SweepMember": mlbasics, "SweepResult": mlbasics}),
    ],
)
def test_modules_that_became_packages_keep_their_names(package: str, names: dict[str, object]) -> None:
    module = importlib.import_module(package)
    for name, home in names.items():
        where = importlib.import_module(home) if isinstance(home, str) else home
        assert getattr(module, name) is getattr(where, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_the_warning_points_at_the_importing_line(tmp_path: pytest.TempPathFactory) -> None:
    script = tmp_path / "old_code.py"  # type: ignore[operator]
    script.write_text("import mlbasics.ensemble\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert f'File "{script}", line 1' in result.stderr
    assert "mlbasics.ensemble moved to mlbasics.sweeps.ensemble" in result.stderr
