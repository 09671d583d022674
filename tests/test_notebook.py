"""Jupyter, for real: the lecture notebook is what docs/notebook.py makes of docs/lecture.md, and run
top to bottom in a Jupyter kernel it prints what the page shows; in a kernel the progress bar and the
live plot are each one output updated in place; outside one they change nothing.

The kernel is a real one (ipykernel, started by nbclient as Jupyter starts it), so these tests see
what a notebook front end is sent: the cells' outputs after every display update was applied.
"""

from __future__ import annotations

import doctest
import functools
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import mlbasics
from mlbasics.core.plugins import ENV_VARIABLES
from mlbasics.notes import forget_notes
from mlbasics.show.notebook import LivePlot, in_notebook

ROOT = Path(__file__).resolve().parent.parent
#: Seconds one cell may run. The lecture's longest cell trains the MLP for 10000 epochs: seconds on
#: a free CPU, but ten minutes were seen on a machine shared by many jobs. Only a hang should fail.
CELL_TIMEOUT = 3600


@functools.cache
def _script() -> ModuleType:
    """docs/notebook.py, which is a script, not part of the package."""
    spec = importlib.util.spec_from_file_location("docs_notebook", ROOT / "docs" / "notebook.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cells: list[str], workdir: Path) -> list[Any]:
    """Run a notebook of ``cells`` (or the lecture's, with ``cells == []``) in a fresh kernel started
    in ``workdir``, with no MLBASICS_* settings; return its code cells, their outputs filled in."""
    import nbformat
    from nbclient import NotebookClient

    if cells:
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    else:
        notebook = nbformat.read(ROOT / "examples" / "lecture.ipynb", as_version=4)
    env = {name: value for name, value in os.environ.items() if name not in ENV_VARIABLES}
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute(env=env)
    nbformat.validate(notebook)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _printed(cell: Any) -> str:
    """What a doctest would compare: the cell's stdout, then its value's text (as repr shows it)."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type == "execute_result":
            parts.append(output.data["text/plain"] + "\n")
    return "".join(parts)


def test_the_notebook_is_made_from_the_lecture_page() -> None:
    script = _script()
    committed = (ROOT / "examples" / "lecture.ipynb").read_text(encoding="utf-8")
    assert committed == script.lecture_notebook_text(), "out of date: run python docs/notebook.py"
    assert script.main(["--check"]) == 0


def test_a_page_is_cut_into_cells_after_each_shown_output() -> None:
    page = (
        "Intro, see [the code](figures.py) or [a site](https://example.org).\n\n"
        "```python\n>>> a = 1\n>>> a + 1\n2\n>>> for i in range(2):\n...     print(i)\n0\n1\n>>> b = 2\n```\n"
        "Then an error:\n\n```python\n>>> 1 / 0\nTraceback (most recent call last):\n...\n"
        "ZeroDivisionError: division by zero\n```\n"
        '<!-- skip: next "not here" -->\n```python\nimport nothing\n```\nThe end.\n'
    )
    Cell = _script().Cell
    assert _script().cells_of(page, links_from="../docs/") == [
        Cell("markdown", "Intro, see [the code](../docs/figures.py) or [a site](https://example.org)."),
        Cell("code", "a = 1\na + 1", "2\n"),
        Cell("code", "for i in range(2):\n    print(i)", "0\n1\n"),
        Cell("code", "b = 2"),
        Cell("markdown", "Then an error:"),
        Cell("code", "1 / 0", "ZeroDivisionError: division by zero\n", raises=True),
        Cell("markdown", '<!-- skip: next "not here" -->\n```python\nimport nothing\n```\nThe end.'),
    ]


@pytest.mark.slow
def test_the_lecture_notebook_runs_in_a_kernel_and_prints_what_the_page_shows(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")  # as the docs' tests run the page
    setup, *cells = _run([], tmp_path)
    assert setup.outputs == []
    expected = [cell for cell in _script().lecture_cells() if cell.kind == "code"]
    checker = doctest.OutputChecker()
    for cell, page in zip(cells, expected, strict=True):
        assert [o.name for o in cell.outputs if o.output_type == "stream" and o.name != "stdout"] == [], (
            cell.source
        )
        if page.raises:
            (error,) = [o for o in cell.outputs if o.output_type == "error"]
            assert page.want.rstrip("\n").endswith(f"{error.ename}: {error.evalue}"), cell.source
            continue
        got = _printed(cell)
        # IPython prints a value with its pretty-printer, which may wrap a long list where repr does not.
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        assert checker.check_output(page.want, got, flags), (
            f"{cell.source}\n--- page:\n{page.want}--- notebook:\n{got}"
        )


@pytest.mark.slow
def test_in_a_kernel_the_progress_bar_and_the_live_plot_update_in_place(tmp_path: Path) -> None:
    train, show, sweep = _run(
        [
            "import mlbasics\n"
            "result = mlbasics.train(dataset='tiny', model='linear', epochs=3000, log_every=10,"
            " device='cpu', progress=True, live=True)",
            "result",
            "mlbasics.sweep(dataset='tiny', model='linear', epochs=300, log_every=10, seeds=range(3),"
            " device='cpu', progress=True)",
        ],
        tmp_path,
    )
    assert [o.output_type for o in train.outputs] == ["display_data", "display_data"], train.outputs
    bar, plot = (output.data for output in train.outputs)
    assert "3000/3000" in bar["text/plain"]
    assert "3000/3000" in bar["text/html"]
    assert bar["text/plain"].count("\n") == 0  # one line
    assert plot["text/plain"].startswith("loss ")
    assert plot["text/plain"].endswith("after epoch 3000 of 3000")
    assert plot["image/png"]
    (summary,) = show.outputs
    assert summary.data["text/plain"].startswith("TrainResult: linear on tiny")
    assert summary.data["text/html"].startswith('<div class="mlbasics-summary">')
    assert [o.output_type for o in sweep.outputs] == ["display_data", "execute_result"], sweep.outputs
    assert "900/900" in sweep.outputs[0].data["text/plain"]  # model-epochs: 3 members × 300
    assert sweep.outputs[1].data["text/plain"].startswith("SweepResult: 3 members of linear on tiny")


def test_outside_a_notebook_the_live_plot_draws_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    assert not in_notebook()
    forget_notes()
    caplog.set_level(logging.WARNING, logger="mlbasics")
    result = mlbasics.train(dataset="tiny", model="linear", epochs=5, device="cpu", live=True)
    assert result.epochs == 5
    assert [r.getMessage() for r in caplog.records] == [
        "live plot: not in a Jupyter notebook, so nothing is drawn; result.plot('loss.png') draws the "
        "picture into a file once training is done"
    ]
    assert not LivePlot().active
