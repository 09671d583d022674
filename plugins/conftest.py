"""Collecting the plugin distributions' own tests from the project root (``python -m pytest``).

Each folder here is a separate distribution whose tests use it as installed. One that is not
installed (or installed at another version than its source) has its tests skipped, with the reason
and the command that installs it. With ``MLBASICS_REQUIRE_PLUGINS=1``, as ``.ci/run`` sets, that is
a collection error instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REQUIRE_VARIABLE = "MLBASICS_REQUIRE_PLUGINS"


class NotInstalled(pytest.Dir):
    """A plugin folder whose tests cannot run here: collecting it skips (or fails) with the reason."""

    reason = ""

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        if os.environ.get(REQUIRE_VARIABLE, "").strip() == "1":
            pytest.fail(f"{self.reason} ({REQUIRE_VARIABLE}=1)", pytrace=False)
        pytest.skip(self.reason)


def installed_problem(folder: Path) -> str | None:
    """Why the distribution in ``folder`` is not usable as installed, or ``None`` if it is."""
    project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = project["name"], project["version"]
    install = f"pip install --no-deps -e plugins/{folder.name}"
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return f"{name} is not installed; {install}"
    if installed != version:
        return f"{name} {installed} is installed, but its source is {version}; {install}"
    return None


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path.parent != HERE or not (path / "pyproject.toml").is_file():
        return None
    problem = installed_problem(path)
    if problem is None:
        return None  # collected as usual
    node = NotInstalled.from_parent(parent, path=path)
    node.reason = problem
    return node
