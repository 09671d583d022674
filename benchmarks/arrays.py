"""Training on arrays held in memory: ``mlbasics.train(dataset=(X, y))`` on a 1,000,000 x 10
float32 NumPy array.

Time: the whole call (converting and checking the arrays, hashing them for the run's record,
building, training) against a hand-written loop over ``torch.from_numpy(X)`` with the same model
(linear), optimizer (SGD) and full-batch epochs, alternating in this process
(benchmarks/_timing.compare). Memory: each side in a fresh interpreter that makes the same arrays
after its imports; the baseline only holds them, the candidate trains on them. On Linux the peak
(VmHWM) of each, minus the baseline's, is what training added: at most one copy of the array is the
goal, and a float32 array shared with torch (no copy) should add far less. A float64 array, which
must be converted, is measured the same way (note ``float64_extra_copies``, in float32 copies).

Run alone:  python benchmarks/arrays.py [--rows N] [--epochs E] [--repeats R]
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import attrs
import numpy as np
import torch
from _timing import Row, compare, timed

COLUMNS = 10

_MEASURE = r"""
import json, resource, sys
def status(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
import numpy, torch, mlbasics
rows, epochs, mode, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
registry = mlbasics.Registry.isolated()
small = numpy.ones((8, 10), dtype=numpy.float32)
mlbasics.train(dataset=(small, small[:, 0]), model="linear", epochs=2, registry=registry)  # first-use costs
generator = numpy.random.default_rng(0)
x = generator.standard_normal((rows, 10), dtype=numpy.float32).astype(dtype, copy=False)
y = x @ numpy.arange(1, 11, dtype=x.dtype) + 5
try:  # Linux: start the peak (VmHWM) afresh from the current resident size, arrays included
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
held = status("VmRSS")
shared = None
if mode == "train":
    result = mlbasics.train(
        dataset=(x, y), model="linear", optimizer={"name": "sgd", "lr": 0.1}, epochs=epochs, registry=registry
    )
    shared = result.dataset.features.data_ptr() == x.ctypes.data
print(json.dumps({"held": held, "peak": status("VmHWM"), "shared": shared}))
"""


def peak_memory(rows: int, epochs: int, mode: str, dtype: str = "float32") -> dict[str, Any]:
    """The peak resident memory (and whether the features were shared) of a fresh interpreter
    that makes the arrays and, with ``mode`` "train", trains on them."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(rows), str(epochs), mode, dtype],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {mode} ({dtype}) failed: {done.stderr.strip()[-500:]}")
    measured: dict[str, Any] = json.loads(done.stdout)
    return measured


def hand_loop(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], epochs: int) -> float:
    """Full-batch SGD of a linear model on ``torch.from_numpy`` of the arrays, as one writes it."""
    features, targets = torch.from_numpy(x), torch.from_numpy(y).unsqueeze(1)
    torch.manual_seed(1)
    model = torch.nn.Linear(x.shape[1], 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def loop() -> None:
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(features), targets)
            loss.backward()
            optimizer.step()
            loss.item()

    return timed(loop)


def arrays_row(rows: int, epochs: int, repeats: int) -> tuple[Row, dict[str, Any]]:
    import mlbasics

    registry = mlbasics.Registry.isolated()
    generator = np.random.default_rng(0)
    x = generator.standard_normal((rows, COLUMNS), dtype=np.float32)
    y = x @ np.arange(1, COLUMNS + 1, dtype=np.float32) + 5

    def train() -> float:
        return timed(
            lambda: mlbasics.train(
                dataset=(x, y),
                model="linear",
                optimizer={"name": "sgd", "lr": 0.1},
                epochs=epochs,
                registry=registry,
            )
        )

    row = compare(
        f"train(dataset=(X, y)), {rows:,} x {COLUMNS} float32, per epoch",
        "hand loop on torch.from_numpy",
        lambda: hand_loop(x, y, epochs),
        train,
        units=epochs,
        repeats=repeats,
        goal="<= 1.5, memory <= 1 copy",
        goal_max=1.5,
    )
    array_bytes = x.nbytes
    holding = peak_memory(rows, epochs, "hold")
    training = peak_memory(rows, epochs, "train")
    float64 = peak_memory(rows, epochs, "train", "float64")
    float64_holding = peak_memory(rows, epochs, "hold", "float64")
    extra = training["peak"] - holding["peak"]
    notes = {
        "array_mb": round(array_bytes / 1e6, 1),
        "held_peak_mb": round(holding["peak"] / 1e6, 1),
        "train_peak_mb": round(training["peak"] / 1e6, 1),
        "extra_mb": round(extra / 1e6, 1),
        "extra_copies": round(extra / array_bytes, 2),
        "shared": training["shared"],
        "float64_extra_copies": round((float64["peak"] - float64_holding["peak"]) / array_bytes, 2),
        "float64_shared": float64["shared"],
    }
    if extra > array_bytes or training["shared"] is not True:  # then the row fails, however fast it is
        what = "not shared" if training["shared"] is not True else "memory over 1 copy"
        row = attrs.evolve(row, goal=f"{row.goal}: {what.upper()}", goal_max=0.0)
    return row, notes


if __name__ == "__main__":
    import argparse

    from _timing import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    measured, extra_notes = arrays_row(args.rows, args.epochs, args.repeats)
    print(markdown_table([measured]))
    print(extra_notes)
