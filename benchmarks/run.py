"""Every speed path of mlbasics against its baseline, measured in one run, as one table.

Each row times a candidate and its baseline alternately (A B B A ...) and reports the median of the
per-pair ratios, candidate / baseline time per unit of work, with the interquartile range. Below 1
the candidate is faster; "speed-up" is the inverse. Rows:

  train       mlbasics.train (eager, validation and building included) vs the lecture's own loop,
              per step (the lecture MLP: 1-6-10-6-1 ReLU, 1000 points, full-batch SGD lr 0.01)
  metrics     mlbasics.train with the default callbacks (the progress bar drawing to a hidden
              terminal) and r2 and mae computed at every sync point vs the same without metrics,
              per step
  graph       CUDA only: mlbasics.train replaying a CUDA graph vs the lecture's loop, per step
  sweep-100   a sweep of 100 seeds as one vmapped ensemble, per model-step, vs one eager
  sweep-1000  training run of the same experiment per step (both: the training loop's own time)
  lstsq       least squares in closed form vs 100 SGD steps on synthetic-linear (the training
              phase of mlbasics.train each); also checks that lstsq recovers the truth
  list-cold   `mlbasics list` in a fresh process vs `python -c "import torch"`, per process
  csv-load    the `csv` dataset loading a generated 1,000,000 x 10 CSV (95 MB) vs numpy.loadtxt
              on the same file, per load; notes: peak memory above the baseline, in a fresh
              process each (benchmarks/csv_load.py)
  batch-32    an epoch of the lecture MLP on 100,000 rows in mini-batches of 32 (256), per step,
  batch-256   vs DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True) (benchmarks/batches.py)
  batch-32-hand, batch-256-hand   the same epoch vs a hand-written index-slicing loop
  ranks-sweep, ranks-ddp-256, ranks-ddp-lecture   torchrun with 2 ranks vs 1 process, one thread
              each: a 200-member sweep, data-parallel training of a width-256 MLP and of the
              lecture's MLP (benchmarks/ranks.py)
  arrays      mlbasics.train(dataset=(X, y)) on a 1,000,000 x 10 float32 NumPy array (linear model,
              full-batch SGD) vs a hand-written loop on torch.from_numpy(X), per epoch; notes: what
              training adds to the peak memory of a process that holds the array, in copies of it
              (goal: at most one), and whether the array was shared (benchmarks/arrays.py)

Run:  python benchmarks/run.py [--device cpu|cuda] [--quick] [--json results.json] [--only train,lstsq]
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import torch

sys.path.insert(0, str(Path(__file__).parent))

from _timing import Row, compare, markdown_table, timed
from arrays import arrays_row
from batches import versus_dataloader, versus_hand_loop
from csv_load import csv_load_row
from ranks import ranks_row
from training_overhead import METRICS, lecture_loop, metrics_row, mlbasics_train, overhead_row

import mlbasics
from mlbasics.devices import resolve_device

LECTURE = mlbasics.Experiment()
SYNTHETIC = mlbasics.Experiment(
    dataset="synthetic-linear", model="linear", optimizer={"name": "sgd", "lr": 0.1}
)


@attrs.frozen
class Settings:
    """How much work each row does; ``--quick`` only shows that everything runs."""

    repeats: int
    train_epochs: int
    graph_epochs: int
    eager_epochs: int  # the one eager run the sweeps are compared with
    sweep_epochs: dict[int, int]  # members -> epochs
    lstsq_repeats: int
    list_repeats: int
    csv_rows: int
    csv_repeats: int
    batch_rows: int  # rows of the mini-batch epochs
    batch_repeats: int
    ranks_epochs: dict[str, int]  # row -> epochs of each training in a torchrun launch
    ranks_pairs: int  # launches of 1 process and of 2 ranks, alternating
    arrays_rows: int  # rows of the array the arrays row trains on
    arrays_epochs: int

    @classmethod
    def of(cls, quick: bool) -> Settings:
        if quick:
            ranks = {"ranks-sweep": 2, "ranks-ddp-256": 1, "ranks-ddp-lecture": 20}
            return cls(3, 200, 300, 100, {100: 20, 1000: 5}, 5, 3, 20_000, 1, 2000, 3, ranks, 1, 20_000, 3)
        ranks = {"ranks-sweep": 50, "ranks-ddp-256": 1, "ranks-ddp-lecture": 1000}
        return cls(
            15,
            2000,
            3000,
            1000,
            {100: 200, 1000: 50},
            31,
            11,
            1_000_000,
            5,
            100_000,
            7,
            ranks,
            5,
            1_000_000,
            20,
        )


@attrs.frozen
class Measured:
    """A row, with what else the run found out (correctness checks, notes)."""

    key: str
    row: Row | None
    notes: dict[str, Any] = attrs.field(factory=dict)
    error: str | None = None


def train_row(device: torch.device, s: Settings, registry: mlbasics.Registry) -> Measured:
    row = overhead_row(device, s.train_epochs, s.repeats, registry)
    return Measured("train", row, {"epochs": s.train_epochs})


def watched_row(device: torch.device, s: Settings, registry: mlbasics.Registry) -> Measured:
    row = metrics_row(device, s.train_epochs, s.repeats, registry)
    return Measured("metrics", row, {"epochs": s.train_epochs, "metrics": ",".join(METRICS)})


def graph_row(device: torch.device, s: Settings, registry: mlbasics.Registry) -> Measured:
    check = mlbasics.train(LECTURE, registry=registry, epochs=s.graph_epochs, device=str(device))
    if check.step_mode != "cuda-graph":
        return Measured("graph", None, error=f"training used {check.step_mode!r}, not the CUDA graph")
    row = compare(
        "mlbasics.train, CUDA graph",
        "lecture's loop",
        lambda: lecture_loop(s.graph_epochs, device),
        lambda: mlbasics_train(s.graph_epochs, device, registry, cuda_graph=True),
        units=s.graph_epochs,
        repeats=s.repeats,
        goal=">= 12x faster",
        goal_max=1 / 12,
    )
    return Measured("graph", row, {"epochs": s.graph_epochs})


def sweep_row(members: int, device: torch.device, s: Settings, registry: mlbasics.Registry) -> Measured:
    epochs = s.sweep_epochs[members]
    experiment = attrs.evolve(LECTURE, device=str(device), cuda_graph=False)
    notes: dict[str, Any] = {"members": members, "epochs": epochs, "eager_epochs": s.eager_epochs}

    def ensemble() -> float:
        result = mlbasics.sweep(experiment, seeds=range(members), epochs=epochs, registry=registry)
        if result.mode != "vmap":
            raise RuntimeError(f"the sweep ran {result.mode}: {result.reason}")
        notes["setup_seconds"] = result.setup_seconds
        return result.seconds

    def one_eager_run() -> float:
        return mlbasics.train(experiment, registry=registry, epochs=s.eager_epochs).seconds

    goals = {(100, "cpu"): (">= 3x faster", 1 / 3), (1000, "cuda"): (">= 300x faster", 1 / 300)}
    goal, goal_max = goals.get((members, device.type), ("", None))
    row = compare(
        f"sweep of {members} models, per model-step",
        "one eager run, per step",
        one_eager_run,
        ensemble,
        units=s.eager_epochs,
        candidate_units=members * epochs,
        repeats=s.repeats,
        goal=goal,
        goal_max=goal_max,
    )
    return Measured(f"sweep-{members}", row, notes)


def lstsq_row(device: torch.device, s: Settings, registry: mlbasics.Registry) -> Measured:
    experiment = attrs.evolve(SYNTHETIC, device=str(device), cuda_graph=False)
    exact = mlbasics.train(experiment, registry=registry, optimizer="lstsq")
    truth_weight, truth_bias = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([5.0])
    error = max(
        float((exact.parameters["weight"] - truth_weight).abs().max()),
        float((exact.parameters["bias"] - truth_bias).abs().max()),
    )
    is_exact = torch.allclose(exact.parameters["weight"], truth_weight) and torch.allclose(
        exact.parameters["bias"], truth_bias
    )
    row = compare(
        "lstsq (closed form), per fit",
        "100 SGD steps",
        lambda: mlbasics.train(experiment, registry=registry, epochs=100).seconds,
        lambda: mlbasics.train(experiment, registry=registry, optimizer="lstsq").seconds,
        units=1,
        repeats=s.lstsq_repeats,
        goal=">= 50x faster, exact",
        goal_max=1 / 50,
    )
    notes = {"exact": is_exact, "max_parameter_error": error, "final_loss": exact.final_loss}
    if not is_exact:  # then the row fails its goal, however fast it is
        row = attrs.evolve(row, goal=">= 50x faster, exact: NOT EXACT", goal_max=0.0)
    return Measured("lstsq", row, notes)


def list_row(s: Settings) -> Measured:
    script = Path(sys.executable).with_name("mlbasics")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "mlbasics"]
    environment = dict(os.environ, COLUMNS="120")

    def run(arguments: list[str]) -> Callable[[], float]:
        def once() -> float:
            return timed(
                lambda: subprocess.run(
                    arguments, check=True, env=environment, stdout=subprocess.DEVNULL, timeout=300
                )
            )

        return once

    row = compare(
        "`mlbasics list`, fresh process",
        "`python -c 'import torch'`",
        run([sys.executable, "-c", "import torch"]),
        run([*command, "list"]),
        units=1,
        repeats=s.list_repeats,
        goal="<= 1.5",
        goal_max=1.5,
    )
    return Measured("list-cold", row, {"command": " ".join([*command, "list"])})


def csv_load_measured(s: Settings) -> Measured:
    row, notes = csv_load_row(s.csv_rows, s.csv_repeats)
    return Measured("csv-load", row, notes)


def batch_row(
    batch_size: int, hand: bool, device: torch.device, s: Settings, registry: mlbasics.Registry
) -> Measured:
    compare_with = versus_hand_loop if hand else versus_dataloader
    row = compare_with(batch_size, device, s.batch_repeats, registry, s.batch_rows)
    key = f"batch-{batch_size}{'-hand' if hand else ''}"
    return Measured(key, row, {"rows": s.batch_rows, "batch_size": batch_size})


def ranks_measured(key: str, s: Settings) -> Measured:
    load_before = os.getloadavg()[0]  # 2 ranks need 2 free cores: say how busy the machine was
    row, notes = ranks_row(key, s.ranks_epochs[key], s.ranks_pairs, inner=1)
    return Measured(key, row, notes | {"load_before": load_before, "load_after": os.getloadavg()[0]})


def arrays_measured(s: Settings) -> Measured:
    row, notes = arrays_row(s.arrays_rows, s.arrays_epochs, s.repeats)
    return Measured("arrays", row, notes | {"rows": s.arrays_rows, "epochs": s.arrays_epochs})


def machine(device: torch.device) -> dict[str, Any]:
    info = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "mlbasics": mlbasics.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument("--quick", action="store_true", help="little work per row: shows it runs, not speed")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--only", metavar="ROWS", help="comma-separated row keys, e.g. train,lstsq")
    parser.add_argument("--repeats", type=int, metavar="N", help="pairs per row (default 15, quick 3)")
    parser.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N) first")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except mlbasics.MlbasicsError as exc:
        parser.error(str(exc))
    settings = Settings.of(args.quick)
    if args.repeats:
        settings = attrs.evolve(settings, repeats=args.repeats)
    registry = mlbasics.Registry.isolated()
    rows: dict[str, Callable[[], Measured]] = {
        "train": lambda: train_row(device, settings, registry),
        "metrics": lambda: watched_row(device, settings, registry),
        "graph": lambda: graph_row(device, settings, registry),
        "sweep-100": lambda: sweep_row(100, device, settings, registry),
        "sweep-1000": lambda: sweep_row(1000, device, settings, registry),
        "lstsq": lambda: lstsq_row(device, settings, registry),
        "list-cold": lambda: list_row(settings),
        "csv-load": lambda: csv_load_measured(settings),
    }
    for size in (32, 256):
        rows[f"batch-{size}"] = functools.partial(batch_row, size, False, device, settings, registry)
        rows[f"batch-{size}-hand"] = functools.partial(batch_row, size, True, device, settings, registry)
    for key in ("ranks-sweep", "ranks-ddp-256", "ranks-ddp-lecture"):
        rows[key] = functools.partial(ranks_measured, key, settings)
    rows["arrays"] = lambda: arrays_measured(settings)
    if device.type != "cuda":
        del rows["graph"]
    wanted = args.only.split(",") if args.only else list(rows)
    unknown = [key for key in wanted if key not in rows]
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; rows here: {', '.join(rows)}")

    info = machine(device)
    print(", ".join(f"{key} {value}" for key, value in info.items()) + (", quick" if args.quick else ""))
    results: list[Measured] = []
    for key in wanted:
        print(f"measuring {key} ...", file=sys.stderr, flush=True)
        try:
            results.append(rows[key]())
        except Exception as exc:  # one broken row must not hide the others
            results.append(Measured(key, None, error=f"{type(exc).__name__}: {exc}"))
        if args.json:  # after every row: a run cut short still leaves what it measured
            write_json(Path(args.json), info, args.quick, settings, results)
    print(markdown_table([m.row for m in results if m.row is not None]))
    for measured in results:
        if measured.error:
            print(f"{measured.key}: FAILED: {measured.error}")
        elif measured.notes:
            print(f"{measured.key}: " + ", ".join(f"{k}={v}" for k, v in measured.notes.items()))
    return 1 if any(m.error for m in results) else 0


def write_json(
    path: Path, info: dict[str, Any], quick: bool, settings: Settings, results: list[Measured]
) -> None:
    document = {
        "machine": info,
        "quick": quick,
        "settings": attrs.asdict(settings),
        "rows": [
            {
                "key": m.key,
                "error": m.error,
                "notes": m.notes,
                **({"met": m.row.met, "speedup": m.row.speedup, **attrs.asdict(m.row)} if m.row else {}),
            }
            for m in results
        ],
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
