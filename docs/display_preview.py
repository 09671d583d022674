"""One HTML page of every notebook display, to look at in a browser (not run by the tests).

    python docs/display_preview.py preview.html
    chromium --headless --no-sandbox --screenshot=preview.png --window-size=1000,2600 preview.html

It trains small runs on the CPU and writes, one after another, what Jupyter shows for a
TrainResult (1-D data, so with the fit), a TrainResult on three features, a SweepResult, a
Checkpoint, an Experiment and a Dataset, then the notebook progress bar, finished.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import mlbasics
from mlbasics import Checkpoint, Experiment
from mlbasics.show.notebook import RichOutput


def _progress_bar_html() -> str:
    """The notebook progress bar's HTML, at the end of a run, as RichOutput renders it."""
    shown: dict[str, str] = {}

    class Captured(RichOutput):
        def show(self, bundle: dict[str, str], *, force: bool = False) -> None:
            shown.update(bundle)

    progress = Progress(
        TextColumn("[bold]epoch"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("loss [cyan]0.00332"),
        TimeRemainingColumn(),
        auto_refresh=False,
    )
    progress.add_task("train", total=10000, completed=6400)
    Captured().render(progress.get_renderable(), force=True)
    return shown["text/html"]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    quadratic = mlbasics.train(Experiment.load("examples/quadratic-mlp.toml"), epochs=3000, device="cpu")
    linear = mlbasics.train(Experiment.load("examples/synthetic-linear.toml"), device="cpu")
    sweep = mlbasics.sweep(dataset="tiny", model="linear", epochs=300, seeds=range(10), lrs=[0.01, 0.1, 0.3])
    with tempfile.TemporaryDirectory() as folder:
        mlbasics.train(Experiment.load("examples/tiny.toml"), device="cpu", save=Path(folder) / "run")
        checkpoint = Checkpoint.load(Path(folder) / "run")
    parts = [
        quadratic._repr_html_(),
        linear._repr_html_(),
        sweep._repr_html_(),
        checkpoint._repr_html_(),
        linear.experiment._repr_html_(),
        linear.dataset._repr_html_(),
        _progress_bar_html(),
    ]
    page = "".join(
        f'<section style="margin: 16px 0; border-top: 1px solid #ccc">{part}</section>' for part in parts
    )
    Path(argv[0]).write_text(f"<!doctype html><meta charset='utf-8'><body>{page}</body>", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
