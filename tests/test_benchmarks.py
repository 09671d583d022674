"""The benchmark suite runs and its arithmetic is right. Nothing here asserts on a time: speed is
measured by running the benchmarks, not by the tests."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def _timing() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_timing", BENCHMARKS / "_timing.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # attrs resolves the module of its classes
    spec.loader.exec_module(module)
    return module


def test_ratios_are_per_unit_and_goals_are_checked() -> None:
    timing = _timing()
    baseline = iter([2.0, 2.0, 4.0, 2.0, 2.0, 2.0])  # warm-up, then (A B), (B A), (A B)
    candidate = iter([9.0, 1.0, 1.0, 1.0])
    row = timing.compare(
        "sweep",
        "one run",
        lambda: next(baseline),
        lambda: next(candidate),
        units=100,  # baseline: 100 steps per run
        candidate_units=1000,  # candidate: 1000 model-steps per run
        repeats=3,
        goal=">= 3x faster",
        goal_max=1 / 3,
    )
    # per unit: baseline 0.02 (0.04 once) s, candidate 0.001 s -> ratios 0.05, 0.025, 0.05
    assert row.ratio == pytest.approx(0.05)
    assert (row.ratio_low, row.ratio_high) == (pytest.approx(0.0375), pytest.approx(0.05))
    assert row.candidate_us == pytest.approx(1000.0)
    assert row.baseline_us == pytest.approx(20000.0)
    assert row.speedup == pytest.approx(20.0)
    assert row.met == "yes"
    assert timing.compare("x", "y", lambda: 1.0, lambda: 2.0, units=1, repeats=1, goal_max=1.0).met == "no"
    assert timing.compare("x", "y", lambda: 1.0, lambda: 2.0, units=1, repeats=1).met == "-"
    table = timing.markdown_table([row])
    assert table.splitlines()[0].startswith("| row | baseline |")
    assert "| 20x |" in table


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--only", "nope"],
            "unknown rows nope; rows here: train, metrics, sweep-100, sweep-1000, lstsq, list-cold, csv-load, "
            "batch-32, batch-32-hand, batch-256, batch-256-hand, ranks-sweep, ranks-ddp-256, ranks-ddp-lecture, "
            "arrays",
        ),
        (["--device", "tpu"], "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
    ],
)
def test_bad_arguments_are_one_line(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().endswith(f"error: {message}")


@pytest.mark.slow
def test_the_quick_benchmark_runs_every_cpu_row(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    result = _run("--quick", "--json", str(output), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| row | baseline | µs/unit |" in result.stdout
    document = json.loads(output.read_text())
    assert document["quick"] is True
    assert document["machine"]["device"] == "cpu"
    rows = {row["key"]: row for row in document["rows"]}
    assert list(rows) == [
        *("train", "metrics", "sweep-100", "sweep-1000", "lstsq", "list-cold", "csv-load"),
        *("batch-32", "batch-32-hand", "batch-256", "batch-256-hand"),
        *("ranks-sweep", "ranks-ddp-256", "ranks-ddp-lecture"),
        "arrays",
    ]
    for key, row in rows.items():
        assert row["error"] is None, key
        assert row["candidate_us"] > 0, key
        assert row["baseline_us"] > 0, key
        goal_max = row["goal_max"]
        assert row["met"] == ("-" if goal_max is None else "yes" if row["ratio"] <= goal_max else "no"), key
    assert [key for key, row in rows.items() if row["goal_max"] is None] == [
        "sweep-1000",  # a GPU goal
        *("ranks-ddp-256", "ranks-ddp-lecture"),  # measured and explained, no goal
    ]
    assert rows["lstsq"]["notes"]["exact"] is True
    assert rows["sweep-1000"]["notes"]["members"] == 1000
    assert rows["csv-load"]["notes"]["same_values"] is True
    assert rows["csv-load"]["notes"]["peak_mb"] > 0
    assert rows["arrays"]["notes"]["shared"] is True  # the float32 array trained as it was
    assert rows["arrays"]["notes"]["float64_shared"] is False  # a float64 one was converted
    assert rows["arrays"]["notes"]["train_peak_mb"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]  # nothing else left behind
