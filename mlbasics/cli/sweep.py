"""``mlbasics sweep``: one experiment over a grid of seeds, learning rates and other settings,
trained as one vmapped ensemble where the components allow it; results best first."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlbasics.cli._output import format_value, print_json, show_notes, stdout
from mlbasics.cli.train import add_experiment_arguments, experiment_from_args
from mlbasics.engine.experiment import parse_value
from mlbasics.errors import MlbasicsError

if TYPE_CHECKING:
    from mlbasics.sweeps.grid import SweepResult


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "sweep",
        help="train an experiment over seeds, learning rates, ... at once (a vmapped ensemble)",
        description="Train the experiment (CONFIG.toml and flags, as for `mlbasics train`) once for "
        "every combination of --seeds, --lrs and --grid values. Members that differ only in their "
        "seed and the optimizer's numeric params (lr, momentum, ...) train together as one vmapped "
        "ensemble if the optimizer has a stacked form (sgd does; `mlbasics list optimizers --json` "
        "shows which do); otherwise they train one after another and a note says why.",
    )
    add_experiment_arguments(parser)
    parser.add_argument(
        "--seeds", metavar="LIST", help="seeds of the model's initialisation: 0-9, 1,5,7 or 0-4,10"
    )
    parser.add_argument("--lrs", metavar="LIST", help="learning rates (optimizer.lr): 0.001,0.01,0.1")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="another setting to vary: optimizer.momentum=0,0.9 or a TOML list, "
        "model.hidden=[[4],[8,8]] (repeatable)",
    )
    parser.add_argument(
        "--sequential", action="store_true", help="train the members one after another, not as an ensemble"
    )
    parser.add_argument(
        "--rank-by",
        default="loss",
        metavar="METRIC",
        help="rank by one of the experiment's metrics (--metric r2), on the validation rows if there "
        "are some, else on the training rows (default: the loss, on the same rows)",
    )
    parser.add_argument(
        "--top", type=int, default=10, metavar="N", help="rows in the results table (default 10, 0: all)"
    )
    parser.add_argument("--plot", metavar="PATH.png", help="write every member's loss curve as a PNG")
    parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON object (members best first)"
    )
    parser.add_argument("--history", action="store_true", help="with --json: add each member's loss history")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


# -- reading the grid from the command line ------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``1,5,7`` or ``0-4,10``: ranges include both ends. More seeds than a sweep may hold
    (:data:`mlbasics.sweeps.grid.MAX_MEMBERS`) are refused, with their count, before they are listed."""
    from mlbasics.sweeps.grid import MAX_MEMBERS

    ranges: list[range] = []
    for item in (part.strip() for part in text.split(",")):
        first, dash, last = item.partition("-")
        try:
            if dash:
                low, high = int(first), int(last)
                if high < low:
                    raise ValueError
                ranges.append(range(low, high + 1))
            else:
                ranges.append(range(int(item), int(item) + 1))
        except ValueError:
            raise MlbasicsError(f"--seeds: {item!r} is not a seed or a range like 0-9") from None
    count = sum(len(r) for r in ranges)
    if count > MAX_MEMBERS:
        raise MlbasicsError(
            f"--seeds {text} is {count:,} seeds; a sweep holds at most {MAX_MEMBERS:,} members"
        )
    return [seed for r in ranges for seed in r]


def parse_numbers(text: str, flag: str) -> list[float]:
    """``0.001,0.01,0.1``"""
    numbers = []
    for item in (part.strip() for part in text.split(",")):
        try:
            numbers.append(float(item))
        except ValueError:
            raise MlbasicsError(f"{flag}: {item!r} is not a number") from None
    return numbers


def parse_grid(assignments: Sequence[str]) -> dict[str, list[Any]]:
    """``KEY=V1,V2`` (each value read as TOML, else as a string) or ``KEY=[V1, V2]`` (a TOML list)."""
    grid: dict[str, list[Any]] = {}
    for assignment in assignments:
        key, eq, text = (part.strip() for part in assignment.partition("="))
        if not eq or not key or not text:
            raise MlbasicsError(f"--grid needs KEY=VALUES, got {assignment!r}")
        where = f"--grid {key}"
        value = parse_value(text, where=where) if text.startswith("[") else None
        values = (
            value
            if isinstance(value, list)
            else [parse_value(v.strip(), where=where) for v in text.split(",")]
        )
        if key in grid:
            raise MlbasicsError(f"--grid: {key!r} is given twice")
        grid[key] = values
    return grid


def run(args: argparse.Namespace) -> int:
    experiment = experiment_from_args(args)
    seeds = parse_seeds(args.seeds) if args.seeds else None
    lrs = parse_numbers(args.lrs, "--lrs") if args.lrs else None
    grid = parse_grid(args.grid)
    if args.top < 0:
        raise MlbasicsError(f"--top must be >= 0, got {args.top}")
    metric_names = [metric.name for metric in experiment.metrics]
    if args.rank_by != "loss" and args.rank_by not in metric_names:  # refused before training
        from mlbasics.core.registry import suggest

        names = ", ".join(repr(name) for name in ["loss", *metric_names])
        raise MlbasicsError(
            f"--rank-by {args.rank_by}: the experiment has {names}{suggest(args.rank_by, ['loss', *metric_names])}"
        )
    if args.plot:
        from mlbasics.show.plotting import check_can_plot

        check_can_plot(args.plot)
    from mlbasics.sweeps.grid import sweep

    show_notes()
    result = sweep(
        experiment,
        seeds=seeds,
        lrs=lrs,
        grid=grid,
        vmap=not args.sequential,
        progress=not (args.json or args.quiet),
        signals=True,  # Ctrl-C keeps what was trained: shown, ranked and drawn as any result
    )
    from mlbasics.distributed import is_main

    if not is_main():  # under torchrun every rank holds the result; rank 0 alone shows and saves it
        return 0
    if not result.members:  # interrupted before the first member finished a step
        return _report_interrupt(result)
    plot, failure = args.plot, None
    if plot:
        from mlbasics.errors import SaveError
        from mlbasics.show.plotting import save_sweep_plot

        try:
            save_sweep_plot(result, plot)
        except SaveError as exc:  # the sweep's results are shown all the same, then the error
            plot, failure = None, exc
    if args.json:
        print_json(result.to_dict(history=args.history, rank_by=args.rank_by))
    else:
        stdout().print(render_sweep(result, top=args.top, plot=plot, rank_by=args.rank_by))
    if failure is not None:
        where = "in the JSON on stdout" if args.json else "above"
        raise SaveError(f"{failure}; the results of the sweep are shown {where}, not saved")
    if result.interrupted_by:
        return _report_interrupt(result, shown="in the JSON on stdout" if args.json else "above")
    return 0


def _report_interrupt(result: SweepResult, *, shown: str | None = None) -> int:
    """After a signal stopped the sweep: what it kept, on stderr; the exit status 128 + signal."""
    from mlbasics.engine.interrupts import exit_status, signal_name

    assert result.interrupted_by is not None
    what = f"mlbasics: sweep interrupted by {signal_name(result.interrupted_by)}"
    if shown is None:
        print(f"{what} before any member finished a step; nothing to show", file=sys.stderr)
    else:
        print(f"{what}: {interrupted_text(result)}; the results so far are shown {shown}", file=sys.stderr)
    return exit_status(result.interrupted_by)


def interrupted_text(result: SweepResult) -> str:
    """``every member stopped after epoch 312 of 1000`` (an ensemble), or ``2 of 6 members trained,
    1 stopped after epoch 50 of 100, 3 not started`` (one after another)."""
    epochs = result.experiment.epochs
    partial = [member for member in result.members if len(member.history) < member.experiment.epochs]
    longest = max((len(member.history) for member in partial), default=0)
    if partial and len(partial) == len(result.members) and not result.not_trained:
        return f"every member stopped after epoch {longest} of {epochs}"
    done = len(result.members) - len(partial)
    parts = [f"{done} of {len(result.members) + result.not_trained} members trained"]
    if partial:
        parts.append(f"{len(partial)} stopped after epoch {longest} of {epochs}")
    if result.not_trained:
        parts.append(f"{result.not_trained} not started")
    return ", ".join(parts)


# -- the results table ---------------------------------------------------------------------------


def render_sweep(
    result: SweepResult, *, top: int = 10, plot: str | None = None, rank_by: str = "loss"
) -> RenderableType:
    ranked = result.ranked(rank_by)
    shown = ranked if top == 0 else ranked[:top]
    how = "as one vmapped ensemble" if result.mode == "vmap" else "one after another"
    steps = result.model_steps
    headline = Text(
        f"{len(ranked)} member{'s' if len(ranked) != 1 else ''}, trained {how} on {result.device} in "
        f"{result.seconds:.3g} s"
    )
    if steps and result.seconds > 0:
        headline.append(f" ({result.seconds / steps * 1e6:,.1f} µs per model-step)")
    held_out = result.ranked_by == "validation loss"
    ranked_by = result.ranking_value(rank_by).replace("_", " ")
    title = "Sweep, best first" + (f" (ranked by {ranked_by})" if held_out or rank_by != "loss" else "")
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    for axis in result.axes:
        table.add_column(axis, justify="right")
    table.add_column("final loss", justify="right", style="cyan")
    if held_out:
        table.add_column("validation loss", justify="right", style="magenta")
    metrics = _shown_metrics(result, held_out)
    for name in metrics:
        table.add_column(name.replace("_", " "), justify="right")
    for rank, member in enumerate(shown, start=1):
        cells = [_loss_cell(member.final_loss)]
        if len(member.history) < member.experiment.epochs and math.isfinite(member.final_loss):
            cells[0].append(f" (epoch {len(member.history)})", style="yellow")  # stopped before the end
        if held_out:
            cells.append(_loss_cell(member.validation_loss))
        cells += [_metric_cell(member.metrics.get(name)) for name in metrics]
        table.add_row(str(rank), *(Text(format_value(member.values[a])) for a in result.axes), *cells)
    if len(shown) < len(ranked):
        table.caption = f"{len(ranked) - len(shown)} more not shown (--top 0 shows all)"
    parts: list[RenderableType] = [table, headline]
    from mlbasics.show.display import spread_text, value_label

    if len(ranked) > 1:  # the spread of the value the members are ranked by
        parts.append(Text(f"{value_label(result.ranking_value(rank_by))}: {spread_text(result, rank_by)}"))
    best = ranked[0]
    outcome = f"final loss {best.final_loss:.6g}"
    if held_out and best.validation_loss is not None:
        outcome = f"validation loss {best.validation_loss:.6g} (final loss {best.final_loss:.6g})"
    outcome += "".join(
        f", {name.replace('_', ' ')} {best.metrics[name]:.6g}" for name in metrics if name in best.metrics
    )
    parts.append(Text.assemble("best: ", (best.label, "bold"), f" -> {outcome}"))
    if result.reason:
        parts.append(Text(f"one after another because {result.reason}", style="yellow"))
    if result.interrupted_by:
        parts.append(Text(f"interrupted: {interrupted_text(result)}; losses so far", style="yellow"))
    if plot:
        parts.append(Text(f"plot written to {plot}"))
    return Group(*parts)


def _shown_metrics(result: SweepResult, held_out: bool) -> list[str]:
    """The metric values in the table: each metric on the validation rows where there are some (the
    rows the members are ranked on), else on the training rows. ``--json`` has them all."""
    return [("validation_" if held_out else "") + name for name in result.metric_modes]


def _metric_cell(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.6g}")


def _loss_cell(loss: float | None) -> Text:
    if loss is None:
        return Text("-")
    return Text(f"{loss:.6g}") if math.isfinite(loss) else Text(f"{loss} (diverged)", style="red")
