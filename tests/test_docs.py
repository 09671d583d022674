"""The checked docs: the Sybil setup catches wrong output, and the pictures are the recorded ones.

The docs' code blocks themselves are collected from README.md and docs/ by the root conftest.py;
these tests check the machinery around them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _figures() -> ModuleType:
    """docs/figures.py, which is a script, not part of the package."""
    spec = importlib.util.spec_from_file_location("docs_figures", DOCS / "figures.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the docs' code blocks are really checked ----------------------------------------------------

PAGE = """
# A page

```python
>>> total = 1 + 1
>>> print(total)
2
```

Written where the docs run, not here:

```python
from pathlib import Path

Path("written.txt").write_text("x")
```

```python
>>> print(total * 10)
21
```

```python
raise RuntimeError("a plain block that fails")
```

```sh
echo "shell blocks are not run"; exit 1
```
"""


def test_a_wrong_output_or_a_failing_block_fails_the_docs_tests(tmp_path: Path) -> None:
    """A copy of the project's Sybil setup on a page with two good and two bad blocks."""
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(textwrap.dedent(PAGE))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntestpaths = docs\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert re.search(r"\b2 failed, 3 passed\b", run.stdout), run.stdout
    assert "Expected:\n    21\nGot:\n    20" in run.stdout
    assert "RuntimeError: a plain block that fails" in run.stdout
    assert not (tmp_path / "docs" / "written.txt").exists()
    assert not (tmp_path / "written.txt").exists()


def test_every_page_under_docs_and_the_readme_is_collected() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "docs",
            "README.md",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    collected = {line.split("::")[0] for line in run.stdout.splitlines() if "::" in line}
    pages_with_python = {
        path.relative_to(ROOT).as_posix()
        for path in [ROOT / "README.md", *DOCS.rglob("*.md")]
        if "```python" in path.read_text(encoding="utf-8")
    }
    assert "docs/lecture.md" in pages_with_python
    assert collected == pages_with_python


# -- the tests the docs cite ----------------------------------------------------------------------

# `tests/test_x.py` or `tests/test_x.py::test_name` in backticks; plugin authors' example files
# under docs/plugins.md ("mlbasics-wave/tests/...") are not ours and are not matched.
CITED_TEST = re.compile(r"`((?:tests|plugins/[\w.-]+/tests)/\w+\.py)(?:::(\w+))?`")
# A bare `test_name` in backticks is looked up in every test file.
CITED_NAME = re.compile(r"`(test_\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }


def test_every_test_the_docs_cite_exists() -> None:
    """reliability.md and performance.md say which test checks each guarantee: keep that true."""
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    every_name = set().union(*(_test_names(f) for f in ROOT.glob("**/tests/test_*.py")))
    cited = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for file, name in CITED_TEST.findall(text):
            if file == "tests/test_wave.py":  # the plugin guide's example, in the reader's project
                continue
            cited += 1
            assert (ROOT / file).is_file(), f"{page.name} cites {file}, which does not exist"
            if name:
                assert name in _test_names(ROOT / file), f"{page.name} cites {file}::{name}"
        for name in CITED_NAME.findall(text):
            cited += 1
            assert name in every_name, f"{page.name} cites {name}, which no test file defines"
    assert cited >= 40  # the pattern still matches how the docs cite tests


# -- the pictures --------------------------------------------------------------------------------


def test_committed_pictures_are_the_recorded_ones() -> None:
    figures = _figures()
    record = json.loads((figures.IMAGES / figures.RECORD).read_text(encoding="utf-8"))["figures"]
    assert set(record) == set(figures.FIGURES)
    for name, shown in record.items():
        data = (figures.IMAGES / f"{name}.png").read_bytes()
        assert hashlib.sha256(data).hexdigest() == shown["sha256"], name
        assert list(figures.png_size(data)) == shown["size"], name


def test_every_picture_is_shown_and_every_picture_shown_exists() -> None:
    figures = _figures()
    shown = {
        match
        for page in DOCS.rglob("*.md")
        for match in re.findall(r"!\[[^\]]*\]\((images/[^)]+)\)", page.read_text(encoding="utf-8"))
    }
    assert {f"images/{name}.png" for name in figures.FIGURES} <= shown
    for image in shown:
        assert (DOCS / image).is_file(), image


def test_the_check_notices_a_changed_picture() -> None:
    figures = _figures()
    record_file = figures.IMAGES / figures.RECORD
    record = json.loads(record_file.read_text(encoding="utf-8"))
    drawn = record["figures"]["error-surface"]["axes"]
    changed = json.loads(json.dumps(drawn))
    changed[0]["lines"][0][1][0] += 0.01  # one evaluated point moved
    changed[0]["title"] = "another title"
    problems = figures._differences("axes", changed, drawn)
    assert len(problems) == 2
    assert problems[0].startswith("axes[0].title: recorded 'another title', drawn 'Cost")
    assert problems[1] == "axes[0].lines[0][1][0]: recorded 0.51, drawn 0.5"
    assert figures._differences("axes", drawn, drawn) == []


@pytest.mark.slow
def test_the_committed_pictures_are_current() -> None:
    """Redraws every picture from fresh runs (the lecture MLP's 10000 epochs included)."""
    assert _figures().check() == []
