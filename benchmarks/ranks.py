"""Rows for torchrun: 2 ranks against 1 process, one thread each (benchmarks/run.py runs them).

  ranks-sweep        a sweep of the lecture MLP over 200 seeds, 2 ranks of 100 members each, vs the
                     same sweep in one process, per model-step
  ranks-ddp-256      data-parallel training of an MLP 1-256-256-1 on 100,000 rows of y = x² + 3 in
                     batches of 10,000 (2 ranks of 5,000 rows a step), vs one process, per step
  ranks-ddp-lecture  the lecture's 1-6-10-6-1 MLP, full batch (1,000 rows), 2 ranks vs one process

Each launch runs this file: under ``torchrun --nproc-per-node 2`` (the candidate) or as a plain
``python`` process (the baseline), both with ``OMP_NUM_THREADS=1``. It trains ``--inner`` times
through ``mlbasics.cli.main`` (a launch's process group is joined once) and prints, on rank 0, the
training seconds mlbasics measured (the ``seconds`` of the JSON result: the training loop, or for a
sweep the slowest rank's), so the start-up of the interpreters (seconds each) is not counted.
Launches alternate (baseline, candidate, candidate, baseline, ...); each pair gives one ratio.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _timing import Row, quartiles

HERE = Path(__file__)

#: The command line of each row; ``{epochs}`` is filled in from the settings.
COMMANDS: dict[str, list[str]] = {
    "ranks-sweep": [
        "sweep",
        "--seeds",
        "0-199",
        "--epochs",
        "{epochs}",
        "--json",
        "--quiet",
        "--device",
        "cpu",
    ],
    "ranks-ddp-256": [
        *("train", "--dataset", "quadratic", "--set", "dataset.n=100000", "--set", "model.hidden=[256,256]"),
        *("--batch-size", "10000", "--epochs", "{epochs}", "--json", "--quiet"),
    ],
    "ranks-ddp-lecture": ["train", "--epochs", "{epochs}", "--json", "--quiet", "--device", "cpu"],
}


def steps_of(key: str, epochs: int) -> int:
    """Units of work of one training: model-steps of the sweep, steps of the training runs."""
    return {"ranks-sweep": 200 * epochs, "ranks-ddp-256": 10 * epochs, "ranks-ddp-lecture": epochs}[key]


def ranks_row(key: str, epochs: int, pairs: int, inner: int) -> tuple[Row, dict[str, object]]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLBASICS_PLUGINS="builtins")
    units = steps_of(key, epochs)

    def launch(ranks: int) -> float:
        worker = [str(HERE), key, str(epochs), str(inner)]
        command = [sys.executable, *worker]
        if ranks > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
            command += ["--nproc-per-node", str(ranks), *worker]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
        seconds: list[float] = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
        return statistics.median(seconds) / units

    base, cand, ratios = [], [], []
    for index in range(pairs):
        if index % 2 == 0:
            b, c = launch(1), launch(2)
        else:
            c, b = launch(2), launch(1)
        base.append(b)
        cand.append(c)
        ratios.append(c / b)
    low, median, high = quartiles(ratios)
    goal, goal_max = (">= 1.7x faster", 1 / 1.7) if key == "ranks-sweep" else ("", None)
    row = Row(
        name=key.replace("ranks-", "2 ranks: "),
        baseline="1 process",
        candidate_us=statistics.median(cand) * 1e6,
        baseline_us=statistics.median(base) * 1e6,
        ratio=median,
        ratio_low=low,
        ratio_high=high,
        repeats=pairs,
        goal=goal,
        goal_max=goal_max,
    )
    return row, {"epochs": epochs, "units": units, "inner": inner, "threads_per_rank": 1}


def _work(key: str, epochs: int, inner: int) -> None:
    """In a launch: train ``inner`` times; rank 0 prints the seconds of each as one JSON line."""
    from mlbasics.cli import main

    argv = [part.format(epochs=epochs) for part in COMMANDS[key]]
    seconds = []
    for _ in range(inner):
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            status = main(argv)
        if status != 0:
            raise SystemExit(status)
        if os.environ.get("RANK", "0") == "0":
            seconds.append(json.loads(output.getvalue())["seconds"])
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    _work(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
