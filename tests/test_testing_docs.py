"""docs/testing.md is true: its Python examples run, and its example plugin repository passes its
own tests with ``pytest -p mlbasics.testing.pytest_plugin``, and fails them as shown when broken.

Bare ```python blocks run here in file order in one namespace (the docs convention). Blocks with a
``title="path"`` are files of the example repository: they are written to a temporary directory
and tested there, in a separate pytest run, as their author would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parents[1] / "docs" / "testing.md"
FENCE = re.compile(r'^```(?P<lang>[\w-]*)(?: title="(?P<title>[^"]+)")?\n(?P<body>.*?)^```$', re.M | re.S)


def _blocks() -> list[tuple[str, str | None, str, int]]:
    text = DOC.read_text(encoding="utf-8")
    return [
        (m["lang"], m["title"], m["body"], text.count("\n", 0, m.start("body"))) for m in FENCE.finditer(text)
    ]


def test_the_python_examples_run() -> None:
    namespace: dict[str, object] = {"__name__": "docs_testing"}
    ran = 0
    for lang, title, body, line in _blocks():
        if lang == "python" and title is None:
            # Padding keeps the line numbers of a traceback those of the document.
            exec(compile("\n" * line + body, str(DOC), "exec"), namespace)
            ran += 1
    assert ran == 7


def _console_lines(marker: str) -> list[str]:
    return [
        line
        for lang, _, body, _ in _blocks()
        if lang == "console"
        for line in body.splitlines()
        if line.startswith(marker)
    ]


def _pytest(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLBASICS_")}
    env |= {"MLBASICS_HYPOTHESIS_PROFILE": "ci", "COLUMNS": "500"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "mlbasics.testing.pytest_plugin",
            "-v",
            "-p",
            "no:cacheprovider",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_the_example_plugin_is_tested_from_its_own_repository(tmp_path: Path) -> None:
    files = {title: body for _, title, body, _ in _blocks() if title is not None}
    assert set(files) == {
        "pyproject.toml",
        "src/softsign_plugin.py",
        "tests/test_conformance.py",
        "tests/test_softsign.py",
    }
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body, encoding="utf-8")

    result = _pytest(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"^(tests/\S+) PASSED", result.stdout, re.M)
    assert passed == [line.split()[0] for line in _console_lines("tests/")]  # as the docs show
    assert "mlbasics: device cpu, hypothesis profile ci" in result.stdout

    plugin = tmp_path / "src" / "softsign_plugin.py"
    correct = "return scaled / (1 + scaled.abs())"
    assert correct in plugin.read_text()
    broken = "return scaled.sum(-1, keepdim=True) / (1 + scaled.abs().sum(-1, keepdim=True))"
    plugin.write_text(plugin.read_text().replace(correct, broken))

    result = _pytest(tmp_path)

    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert failed[:2] == _console_lines("FAILED")  # the docs' failure lines, word for word
