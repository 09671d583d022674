"""The global ``--plugins-dir PATH`` option: plugin files for this run, without packaging them."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlbasics.core.plugin_files import path_problem
from mlbasics.core.plugins import PluginSet, PluginSettings
from mlbasics.core.registry import Registry, set_default_registry
from mlbasics.errors import ValidationError


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugins-dir",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="also load plugins from this .py file or folder of .py files (repeatable; adds to "
        "MLBASICS_PLUGINS_DIR); give it before the command",
    )


def apply(args: argparse.Namespace) -> None:
    """Use the ``--plugins-dir`` paths for this run. A path given on the command line that does not
    exist is an error now, where a stale ``MLBASICS_PLUGINS_DIR`` entry is only reported by
    ``mlbasics plugins``: the person typing the command wants to hear about the typo at once."""
    paths: list[Path] = args.plugins_dir
    if not paths:
        return
    problems = [
        f"--plugins-dir {str(path)!r}: {problem}" for path in paths if (problem := path_problem(path))
    ]
    if problems:
        raise ValidationError(problems)
    set_default_registry(Registry(PluginSet(PluginSettings.from_env(paths=paths))))
