"""Checked docs: every ```python block of README.md and of each docs/**/*.md page runs as a test.

Sybil finds the blocks. A block that starts with ``>>>`` is a doctest: each statement runs and its
printed output must match the text below it (``...`` matches anything, for output that is not the
same on every run). Any other ```python block simply has to run without an error. The blocks of one
file run in order and share one namespace, as if pasted one after another into one Python session.

Each file runs in a fresh temporary working directory holding a copy of ``examples/`` (so the docs
can name ``examples/tiny.toml`` as a reader in the repository's root would, and whatever they write
lands in the temporary directory, never in the repository), with no ``MLBASICS_*`` plugin settings
from the environment, and with torch's global random state restored afterwards.

A block that cannot run in the tests is preceded by ``<!-- skip: next "why" -->`` (Sybil's markdown
skip syntax); shell commands go in ```sh or ```console blocks, which are not run.
"""

from __future__ import annotations

import doctest
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def docs_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Module scope: for Sybil that is one documentation file, whose blocks all share it."""
    import torch

    from mlbasics.core.plugins import ENV_VARIABLES
    from mlbasics.core.registry import reset_default_registry

    workdir = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "examples", workdir / "examples")
    with pytest.MonkeyPatch.context() as patch, torch.random.fork_rng(devices=[]):
        patch.chdir(workdir)
        for variable in ENV_VARIABLES:
            patch.delenv(variable, raising=False)
        reset_default_registry()
        yield workdir
    reset_default_registry()


def _sybil(path: str, patterns: list[str], name: str, excludes: tuple[str, ...] = ()) -> Sybil:
    return Sybil(
        parsers=[PythonCodeBlockParser(doctest_optionflags=doctest.ELLIPSIS), SkipParser()],
        path=path,
        patterns=patterns,
        excludes=list(excludes),
        fixtures=["docs_workdir"],
        name=name,
    )


# Every page under docs/, at any depth (a pattern matches a path from its end), and the README.
pytest_collect_file = (
    _sybil("docs", ["*.md"], "docs") + _sybil(".", ["README.md"], "readme", excludes=("*/README.md",))
).pytest()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker is its own process on a share of the CPUs: one torch thread
    each, so that workers do not contend for the same cores (results do not depend on it)."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
