"""Make examples/lecture.ipynb from docs/lecture.md: the page is the one source of truth.

    python docs/notebook.py           # rewrite the notebook from the page
    python docs/notebook.py --check   # exit 1 if the committed notebook is not what the page gives

The page's prose becomes markdown cells (its relative links and pictures pointing back into docs/);
each ```python block becomes code cells, the ``>>>`` and ``...`` prompts taken off. A block of
several statements with printed output is cut after each statement whose output the page shows,
so that each cell shows one output, which tests/test_notebook.py compares with the page's. A
statement whose output is an exception gets the cell tag ``raises-exception``, so running the whole
notebook goes on past it. The notebook is written without outputs: it is run, not read.
"""

from __future__ import annotations

import argparse
import doctest
import json
import os
import re
import sys
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "lecture.md"
NOTEBOOK = ROOT / "examples" / "lecture.ipynb"

_FENCE = re.compile(r"^```python\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
_SKIP = re.compile(r"<!--\s*skip:\s*next\b[^>]*-->\s*$")
_LINK = re.compile(r"\]\(([^)\s]+)\)")

#: The notebook's first code cell. The page names its files from the repository's root
#: (examples/tiny.toml), and Jupyter starts a notebook's kernel in the notebook's folder.
SETUP = """\
# The lecture names its files from the repository's root (examples/tiny.toml): run from there.
import os

if os.path.basename(os.getcwd()) == "examples":
    os.chdir("..")"""


@attrs.frozen
class Cell:
    """A notebook cell: ``want`` is the output the page shows for a code cell (empty: none), or
    for one that ``raises``, the exception's last line (``module.Name: message``)."""

    kind: str  # "markdown" or "code"
    source: str
    want: str = ""
    raises: bool = False


def cells_of(page: str, *, links_from: str = "") -> list[Cell]:
    """The cells of a page's markdown: prose, and its ```python blocks cut into code cells.
    ``links_from`` is prefixed to relative links (the page's folder seen from the notebook's)."""
    cells: list[Cell] = []
    prose: list[str] = []
    position = 0
    for block in _FENCE.finditer(page):
        before = page[position : block.start()]
        position = block.end()
        if _SKIP.search(before.rstrip("\n").rsplit("\n", 1)[-1]):  # not run: shown as code
            prose.append(before + block.group(0))
            continue
        prose.append(before)
        cells += _markdown("".join(prose), links_from)
        prose = []
        cells += _code(block.group(1))
    prose.append(page[position:])
    return cells + _markdown("".join(prose), links_from)


def _markdown(text: str, links_from: str) -> list[Cell]:
    text = text.strip("\n")
    if not text:
        return []

    def relink(match: re.Match[str]) -> str:
        target = match.group(1)
        if re.match(r"^([a-z]+:|#|/)", target):
            return match.group(0)
        return f"]({links_from}{target})"

    return [Cell("markdown", _LINK.sub(relink, text) if links_from else text)]


def _code(block: str) -> list[Cell]:
    if not block.lstrip().startswith(">>>"):
        return [Cell("code", block.rstrip("\n"))]
    cells: list[Cell] = []
    statements: list[str] = []
    for example in doctest.DocTestParser().get_examples(block):
        statements.append(example.source.rstrip("\n"))
        if example.want or example.exc_msg:
            if example.exc_msg is not None:  # compared as "Name: message", the traceback left out
                cells.append(Cell("code", "\n".join(statements), example.exc_msg, raises=True))
            else:
                cells.append(Cell("code", "\n".join(statements), example.want))
            statements = []
    if statements:
        cells.append(Cell("code", "\n".join(statements)))
    return cells


def notebook(cells: list[Cell], *, source: str) -> dict[str, object]:
    """The notebook (nbformat 4.5, as JSON-ready data) of ``cells``, with a header and the setup cell."""
    header = Cell(
        "markdown",
        f"*This notebook is made from [`{source}`](../{source}) by `docs/notebook.py`: edit the page, "
        "then run `python docs/notebook.py`. Run the cells from the top (Run → Run All Cells).*",
    )
    entries = []
    for index, cell in enumerate([header, Cell("code", SETUP), *cells]):
        entry: dict[str, object] = {
            "cell_type": cell.kind,
            "id": f"cell-{index:03d}",
            "metadata": {"tags": ["raises-exception"]} if cell.raises else {},
            "source": cell.source.splitlines(keepends=True),
        }
        if cell.kind == "code":
            entry |= {"execution_count": None, "outputs": []}
        entries.append(entry)
    return {
        "cells": entries,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def lecture_cells() -> list[Cell]:
    """docs/lecture.md's cells, links pointing from examples/ back into docs/."""
    links_from = Path(os.path.relpath(PAGE.parent, NOTEBOOK.parent)).as_posix() + "/"
    return cells_of(PAGE.read_text(encoding="utf-8"), links_from=links_from)


def lecture_notebook_text() -> str:
    data = notebook(lecture_cells(), source=PAGE.relative_to(ROOT).as_posix())
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the notebook is up to date")
    args = parser.parse_args(argv)
    text = lecture_notebook_text()
    name = NOTEBOOK.relative_to(ROOT)
    if args.check:
        current = NOTEBOOK.read_text(encoding="utf-8") if NOTEBOOK.exists() else ""
        if current != text:
            print(f"{name} is out of date with docs/lecture.md: run python docs/notebook.py", file=sys.stderr)
            return 1
        print(f"{name} is up to date")
        return 0
    NOTEBOOK.write_text(text, encoding="utf-8")
    print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
