"""The pictures of the lecture walkthrough (docs/lecture.md) and of the next lesson
(docs/overfitting.md), drawn from the same mlbasics runs.

    python docs/figures.py            # write docs/images/*.png and docs/images/figures.json
    python docs/figures.py --check    # redraw every picture and compare it with what is committed

PNG bytes are not reproducible across matplotlib, FreeType and font versions, so the check does not
compare pixels: it compares what each picture shows. ``figures.json`` records, for each picture, the
numbers drawn (every line's and point set's coordinates, sampled at up to 50 places, and the contour
levels), the titles, axis labels, legend entries and annotations, the PNG's pixel size and its SHA-256.
``--check`` (run by the test suite) redraws each figure from fresh runs and requires the same numbers
(to a relative 1e-3), the same texts and pixel size, and the committed PNG to be the one recorded, so
a picture can neither go stale when mlbasics changes nor be swapped by hand.

Needs the ``plot`` extra (matplotlib) and NumPy (the ``docs`` or ``test`` extra).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import struct
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mlbasics
from mlbasics import Experiment
from mlbasics._files import atomic_write_text
from mlbasics.show.plotting import save_figure, training_figure

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
IMAGES = Path(__file__).resolve().parent / "images"
RECORD = "figures.json"

#: The (W, b) whose cost docs/lecture.md evaluates in section 2, and the starts of its gradient descents.
EVALUATED = [(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (1.0, 1.0)]
STARTS = [(-0.5, 2.5), (3.0, 2.0), (3.0, -2.5)]
W_RANGE, B_RANGE = (-1.0, 3.5), (-3.0, 3.0)
SAMPLES = 50
#: Redrawn numbers come from fresh float32 runs, which another CPU rounds differently in the last
#: bit; the longest, the lecture MLP's 10000 epochs (seed 1), amplifies that little: run as a
#: member of a vmapped sweep, whose products round differently, it stays within float32 tolerance
#: (about 1e-5) of the single run throughout (docs/performance.md). 1e-3 leaves 100 times that.
REL_TOL = 1e-3


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- the runs the pictures show (each trained once per process) ---------------------------------


def tiny_cost_surface() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cost (1/3)·Σ(Wxᵢ + b - yᵢ)² on the tiny table over a grid of (W, b)."""
    tiny = mlbasics.build("dataset", "tiny")
    x, y = tiny.features[:, 0].double(), tiny.targets[:, 0].double()
    w, b = torch.meshgrid(
        torch.linspace(*W_RANGE, 181, dtype=torch.float64),
        torch.linspace(*B_RANGE, 181, dtype=torch.float64),
        indexing="ij",
    )
    cost = ((w[..., None] * x + b[..., None] - y) ** 2).mean(dim=-1)
    return w.numpy(), b.numpy(), cost.numpy()


class Trace(mlbasics.Callback):
    """Records the linear model's (W, b) before training and after every synced epoch."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def on_train_start(self, setup: mlbasics.Setup, epochs: int) -> None:
        self._record(setup)

    def on_sync(self, setup: mlbasics.Setup, epoch: int, losses: torch.Tensor) -> None:
        self._record(setup)

    def _record(self, setup: mlbasics.Setup) -> None:
        model: Any = setup.model
        self.points.append((model.weight.item(), model.bias.item()))


def descend(w: float, b: float) -> np.ndarray:
    """Gradient descent on the tiny table (examples/tiny.toml) from (W, b): the path, one row per epoch."""
    setup = mlbasics.prepare(Experiment.load(EXAMPLES / "tiny.toml").with_value("log_every", 1))
    model: Any = setup.model
    with torch.no_grad():
        model.weight.fill_(w)
        model.bias.fill_(b)
    trace = Trace()
    mlbasics.fit(setup, [trace])
    return np.array(trace.points)


@functools.cache
def run(name: str, **overrides: Any) -> mlbasics.TrainResult:
    """``examples/NAME.toml``, trained (once per process for the same overrides)."""
    return mlbasics.train(Experiment.load(EXAMPLES / f"{name}.toml"), **overrides)


# -- the pictures ------------------------------------------------------------------------------


def _cost_contours(axes: Any) -> None:
    w, b, cost = tiny_cost_surface()
    levels = [0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100]
    # The cost is 0 at the minimum; a log colour scale needs it clipped to the lowest level.
    shade = np.clip(cost, levels[0], None)
    axes.contourf(w, b, shade, levels=levels, cmap="Blues_r", norm=_log_norm(levels), alpha=0.6)
    lines = axes.contour(w, b, cost, levels=levels[2:], colors="tab:blue", linewidths=0.8)
    axes.clabel(lines, fmt="%g", fontsize=8)
    axes.set(xlabel="W", ylabel="b", xlim=W_RANGE, ylim=B_RANGE)


def _log_norm(levels: list[float]) -> Any:
    from matplotlib.colors import LogNorm

    return LogNorm(vmin=float(levels[0]), vmax=float(levels[-1]))


def _mark_minimum(axes: Any) -> None:
    exact = run("tiny", optimizer="lstsq")
    w, b = (round(exact.parameters[name].item(), 3) + 0.0 for name in ("weight", "bias"))  # no -0.0
    label = f"minimum: W = {w:g}, b = {b:g} (lstsq)"
    axes.plot([w], [b], marker="*", markersize=16, color="tab:red", linestyle="none", zorder=5, label=label)


def error_surface() -> Any:
    """Section 2: the cost over (W, b) on the tiny table, the points evaluated, the minimum."""
    figure, axes = _pyplot().subplots(figsize=(7, 5.2))
    _cost_contours(axes)
    tiny = mlbasics.build("dataset", "tiny")
    x, y = tiny.features[:, 0].double().numpy(), tiny.targets[:, 0].double().numpy()
    ws, bs = zip(*EVALUATED, strict=True)
    axes.plot(ws, bs, "o", color="black", markersize=5, label="(W, b) evaluated in the text")
    for w, b in EVALUATED:
        value = float(np.mean((w * x + b - y) ** 2))
        axes.annotate(f"{value:.3g}", (w, b), xytext=(6, 6), textcoords="offset points", fontsize=9)
    _mark_minimum(axes)
    axes.set_title("Cost (1/3)·Σ(Wxᵢ + b − yᵢ)² on x = y = (1, 2, 3)")
    axes.legend(loc="lower left", fontsize=9)
    figure.tight_layout()
    return figure


def gradient_descent() -> Any:
    """Section 3: gradient-descent paths from three starts, all ending in the one minimum."""
    figure, axes = _pyplot().subplots(figsize=(7, 5.2))
    _cost_contours(axes)
    for (w, b), color in zip(STARTS, ["tab:orange", "tab:green", "tab:purple"], strict=True):
        path = descend(w, b)
        axes.plot(path[:, 0], path[:, 1], color=color, linewidth=1.6, label=f"from ({w:g}, {b:g})")
        axes.plot(path[::100, 0], path[::100, 1], ".", color=color, markersize=5)
        axes.plot(path[:1, 0], path[:1, 1], "o", color=color, markersize=7)
    _mark_minimum(axes)
    axes.set_title("Gradient descent, lr 0.01, 2000 epochs (a dot every 100)")
    axes.legend(loc="lower left", fontsize=9)
    figure.tight_layout()
    return figure


def synthetic_linear() -> Any:
    """Section 5: the loss curve of nn.Linear + SGD + MSELoss on y = X·(1, 2, 3) + 5."""
    return training_figure(run("synthetic-linear"))


def quadratic_mlp() -> Any:
    """Section 7: the lecture's MLP on y = x² + 3, its loss curve and its fit."""
    return training_figure(run("quadratic-mlp"))


def linear_stack() -> Any:
    """Section 8: the same layers with and without ReLU, both loss curves and both fits."""
    relu, stack = run("quadratic-mlp"), run("linear-stack")
    figure, (loss_axes, fit_axes) = _pyplot().subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(relu.history) + 1)
    loss_axes.plot(epochs, relu.history, color="tab:red", label="with ReLU (mlp)")
    loss_axes.plot(epochs, stack.history, color="tab:gray", label="without (linear-stack)")
    loss_axes.set_yscale("log")
    loss_axes.set(xlabel="epoch", ylabel="loss (mse)", title="1-6-10-6-1 layers on y = x² + 3")
    loss_axes.legend()
    loss_axes.grid(True, alpha=0.3)
    x, y = relu.dataset.features[:, 0], relu.dataset.targets[:, 0]
    grid = torch.linspace(float(x.min()), float(x.max()), 200).unsqueeze(1)
    fit_axes.scatter(x.numpy(), y.numpy(), s=10, alpha=0.4, color="tab:gray", label="data")
    line = grid[:, 0].numpy()
    fit_axes.plot(line, relu.predict(grid)[:, 0].numpy(), color="tab:red", linewidth=2, label="with ReLU")
    fit_axes.plot(
        line,
        stack.predict(grid)[:, 0].numpy(),
        color="black",
        linewidth=2,
        linestyle="--",
        label="without: one straight line",
    )
    fit_axes.set(xlabel="x", ylabel="y", title="What each one learned")
    fit_axes.legend()
    fit_axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


#: docs/overfitting.md: a few noisy points of y = x - 2x², polynomials of growing degree.
OVERFITTING_DEGREES = (1, 2, 3, 5, 7)
OVERFITTING = Experiment(
    dataset={
        "name": "polynomial",
        "coefficients": [0.0, 1.0, -2.0],
        "n": 15,
        "low": -1.0,
        "high": 1.0,
        "noise": 0.3,
    },
    model={"name": "polynomial"},
    optimizer={"name": "lbfgs"},
    epochs=30,
    validation=0.4,
    device="cpu",
)


@functools.cache
def overfitting_runs() -> dict[int, mlbasics.TrainResult]:
    """One run per degree of docs/overfitting.md's experiment."""
    return {
        degree: mlbasics.train(OVERFITTING, model={"name": "polynomial", "degree": degree})
        for degree in OVERFITTING_DEGREES
    }


def overfitting() -> Any:
    """docs/overfitting.md: training loss falls with the degree while validation loss rises."""
    runs = overfitting_runs()
    figure, axes = _pyplot().subplots(figsize=(6, 4))
    degrees = list(runs)
    axes.plot(degrees, [runs[d].final_loss for d in degrees], "o-", color="tab:blue", label="training rows")
    axes.plot(
        degrees, [runs[d].validation_loss for d in degrees], "o-", color="tab:orange", label="validation rows"
    )
    axes.set_yscale("log")
    axes.set(xlabel="degree of the polynomial", ylabel="loss (mse)", title="9 training rows, 6 held out")
    axes.legend()
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


FIGURES: dict[str, Callable[[], Any]] = {
    "error-surface": error_surface,
    "gradient-descent": gradient_descent,
    "synthetic-linear": synthetic_linear,
    "quadratic-mlp": quadratic_mlp,
    "linear-stack": linear_stack,
    "overfitting": overfitting,
}


# -- what a picture shows, recorded and compared -------------------------------------------------


def _sample(points: Any) -> list[list[float]]:
    """Up to SAMPLES rows of ``points`` (first and last included), to 6 significant digits."""
    array = np.asarray(points, dtype=float)
    array = array.reshape(len(array), -1)
    if len(array) == 0:
        return []
    index = np.unique(np.linspace(0, len(array) - 1, min(SAMPLES, len(array))).round().astype(int))
    return [[float(f"{value:.6g}") for value in row] for row in array[index]]


def describe(figure: Any) -> list[dict[str, Any]]:
    """The texts and numbers each axes of ``figure`` shows: titles, labels, legend entries,
    annotations, line and scatter coordinates (sampled) and contour levels. Contour *lines* are left
    out: their vertices depend on the contouring library's version; the levels and the data drawn on
    top of them do not."""
    from matplotlib.collections import PathCollection
    from matplotlib.contour import ContourSet
    from matplotlib.text import Annotation

    described = []
    for axes in figure.axes:
        legend = axes.get_legend()
        described.append(
            {
                "title": axes.get_title(),
                "xlabel": axes.get_xlabel(),
                "ylabel": axes.get_ylabel(),
                "yscale": axes.get_yscale(),
                "legend": [text.get_text() for text in legend.get_texts()] if legend else [],
                "annotations": [text.get_text() for text in axes.texts if isinstance(text, Annotation)],
                "lines": [_sample(line.get_xydata()) for line in axes.get_lines()],
                "points": [
                    _sample(c.get_offsets()) for c in axes.collections if isinstance(c, PathCollection)
                ],
                "levels": [_sample(c.levels) for c in axes.collections if isinstance(c, ContourSet)],
            }
        )
    return described


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def render(name: str, folder: Path) -> dict[str, Any]:
    """Draw figure ``name`` into ``folder/NAME.png``; return what it shows, its size and hash."""
    figure = FIGURES[name]()
    shows = describe(figure)
    path = folder / f"{name}.png"
    save_figure(figure, path)
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": list(png_size(data)), "axes": shows}


def write(folder: Path = IMAGES) -> None:
    """Draw every figure into ``folder`` and record what each one shows in ``folder/figures.json``."""
    import matplotlib

    folder.mkdir(parents=True, exist_ok=True)
    versions = {"matplotlib": matplotlib.__version__, "torch": torch.__version__}
    figures = {name: render(name, folder) for name in FIGURES}
    # One line per picture: a picture that changes is a one-line diff.
    body = ",\n".join(
        f"  {json.dumps(name)}: {json.dumps(shown, ensure_ascii=False)}" for name, shown in figures.items()
    )
    text = f'{{\n "drawn with": {json.dumps(versions)},\n "figures": {{\n{body}\n }}\n}}\n'
    atomic_write_text(folder / RECORD, text)


def _differences(where: str, recorded: Any, drawn: Any) -> list[str]:
    if isinstance(recorded, list) and isinstance(drawn, list):
        if len(recorded) != len(drawn):
            return [f"{where}: {len(recorded)} recorded, {len(drawn)} drawn"]
        found = []
        for index, (old, new) in enumerate(zip(recorded, drawn, strict=True)):
            found += _differences(f"{where}[{index}]", old, new)
            if len(found) >= 3:  # the first few say enough
                break
        return found
    if isinstance(recorded, dict) and isinstance(drawn, dict):
        if recorded.keys() != drawn.keys():
            return [f"{where}: recorded keys {sorted(recorded)}, drawn {sorted(drawn)}"]
        return [
            line for key in recorded for line in _differences(f"{where}.{key}", recorded[key], drawn[key])
        ]
    if isinstance(recorded, float) and isinstance(drawn, float):
        if math.isclose(recorded, drawn, rel_tol=REL_TOL, abs_tol=1e-9):
            return []
    elif recorded == drawn:
        return []
    return [f"{where}: recorded {recorded!r}, drawn {drawn!r}"]


def check(folder: Path = IMAGES) -> list[str]:
    """Redraw every figure (into a temporary folder) and say how the committed ones differ, if at all."""
    record_file = folder / RECORD
    if not record_file.is_file():
        return [f"{record_file}: missing; run python docs/figures.py"]
    recorded = json.loads(record_file.read_text(encoding="utf-8"))["figures"]
    problems = [
        f"{name}: recorded but no longer drawn by docs/figures.py"
        for name in recorded.keys() - FIGURES.keys()
    ]
    with tempfile.TemporaryDirectory() as scratch:
        for name in FIGURES:
            committed = folder / f"{name}.png"
            if name not in recorded or not committed.is_file():
                problems.append(
                    f"{name}: {committed.name} or its record is missing; run python docs/figures.py"
                )
                continue
            if hashlib.sha256(committed.read_bytes()).hexdigest() != recorded[name]["sha256"]:
                problems.append(f"{name}: {committed.name} is not the PNG recorded in {RECORD}")
            fresh = render(name, Path(scratch))
            if fresh["size"] != recorded[name]["size"]:
                problems.append(f"{name}: drawn {fresh['size']} pixels, recorded {recorded[name]['size']}")
            problems += [
                f"{name}: {line}" for line in _differences("axes", recorded[name]["axes"], fresh["axes"])
            ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare with the committed pictures instead")
    args = parser.parse_args(argv)
    if not args.check:
        write()
        print(f"wrote {len(FIGURES)} pictures and {RECORD} to {IMAGES}")
        return 0
    problems = check()
    for line in problems:
        print(f"figures: {line}", file=sys.stderr)
    if not problems:
        print(f"all {len(FIGURES)} pictures are current")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
