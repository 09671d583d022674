"""Plugins that are plain Python files, so a student can add a model during a lecture without
packaging anything.

``mlbasics --plugins-dir PATH`` and ``MLBASICS_PLUGINS_DIR`` name a ``.py`` file or a folder of them.
Each file is one plugin, named after the file (``my_model.py`` is the plugin ``my_model``), and is
isolated like any installed plugin. In a folder, files whose names start with ``_`` or ``.`` are
skipped (helpers, ``__init__.py``), and so are sub-folders.

A file is executed as a module of its own under a private name, so its factories should be the
functions themselves (``factory=build_my_model``) rather than ``"module:function"`` strings.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType

from mlbasics._files import name_problem

_MISSING = "no such file or folder"


def plugin_name(file: Path) -> str:
    """The plugin name of a file: its name without ``.py``."""
    return file.stem


def path_problem(path: Path) -> str | None:
    """Why ``path`` cannot name plugins (a name in it too long for the file system, missing, or a
    file that is not ``.py``), or ``None``."""
    too_long = name_problem(path)  # first: asking whether such a path exists is itself an error
    if too_long is not None:
        return too_long
    if path.is_dir():
        return None
    if not path.exists():
        return _MISSING
    if path.suffix != ".py":
        return "not a Python file (.py) or a folder of them"
    return None


def plugin_files(path: Path) -> list[Path]:
    """The plugin files ``path`` names: itself if it is a file, else the ``.py`` files directly in
    it, sorted by name. Raises ``FileNotFoundError`` or ``ValueError`` with :func:`path_problem`."""
    problem = path_problem(path)
    if problem == _MISSING:
        raise FileNotFoundError(f"{path}: {problem}")
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    if not path.is_dir():
        return [path]
    return sorted(
        file
        for file in path.iterdir()
        if file.suffix == ".py" and not file.name.startswith(("_", ".")) and file.is_file()
    )


def module_name(file: Path) -> str:
    """A private module name for ``file``, unique per path, so two files with the same name in
    different folders (or a file named like an installed module) never replace each other."""
    resolved = str(file.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:10]
    identifier = re.sub(r"\W", "_", file.stem)
    return f"mlbasics_plugin_file_{identifier}_{digest}"


def load_file(file: Path) -> ModuleType:
    """Execute ``file`` as a fresh module and return it. Loading it again (a new registry after the
    file was edited) executes it again, so a notebook sees the edits."""
    name = module_name(file)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules while it runs, as an imported module would be: dataclasses and pickling look
    # their module up there.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def split_paths(value: str) -> list[Path]:
    """``MLBASICS_PLUGINS_DIR``'s value: paths separated by ``os.pathsep``; empty parts ignored."""
    return [Path(part) for part in value.split(os.pathsep) if part.strip()]
