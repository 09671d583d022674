"""Loading a CSV of numbers: the ``csv`` dataset against ``numpy.loadtxt`` on the same file.

Time: the two alternate in this process (benchmarks/_timing.compare). Memory: each loads the file
once in a fresh interpreter, which reports its peak resident memory above what it held after its
imports (on Linux the peak, VmHWM, is reset after the imports through /proc/self/clear_refs, then
VmHWM - VmRSS; elsewhere ru_maxrss, which may include import-time peaks). The file's
bytes are read, not mapped, so the page cache is not counted; what is counted is the reader's own
memory: the float32 table and whatever it needed on the way.

Run alone:  python benchmarks/csv_load.py [--rows N]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
import numpy as np
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
registry = mlbasics.Registry.isolated()
registry.build("dataset", "tiny")  # the registry's own first-use costs are not the reader's
try:  # Linux: start the peak (VmHWM) afresh from the current resident size
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
before = status("VmRSS")
path, reader = sys.argv[1], sys.argv[2]
if reader == "mlbasics":
    data = registry.build("dataset", "csv", path=path)
    rows = data.n_samples
else:
    rows = len(numpy.loadtxt(path, delimiter=",", skiprows=1, dtype=numpy.float32))
print(json.dumps({"rows": rows, "peak_above_baseline": status("VmHWM") - before}))
"""


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` x 10 random numbers with a header, about 95 bytes a row, written in blocks."""
    generator = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as file:
        file.write(",".join(f"x{i + 1}" for i in range(COLUMNS - 1)) + ",y\n")
        for start in range(0, rows, 100_000):
            block = generator.standard_normal((min(100_000, rows - start), COLUMNS)) * 100
            np.savetxt(file, block, fmt="%.6f", delimiter=",")


def peak_memory(path: Path, reader: str) -> int:
    """Bytes of peak memory above the interpreter's baseline, loading ``path`` in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), reader],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"measuring {reader}'s memory failed: {result.stderr.strip()[-500:]}")
    return int(json.loads(result.stdout)["peak_above_baseline"])


def csv_load_row(rows: int, repeats: int) -> tuple[Row, dict[str, Any]]:
    import mlbasics

    registry = mlbasics.Registry.isolated()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        write_table(path, rows)
        data = registry.build("dataset", "csv", path=str(path))
        reference = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
        same = bool(
            np.array_equal(data.features.numpy(), reference[:, :-1])
            and np.array_equal(data.targets.numpy(), reference[:, -1:])
        )
        del data, reference
        row = compare(
            f"csv dataset, {rows:,} x {COLUMNS}",
            "numpy.loadtxt",
            lambda: timed(lambda: np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)),
            lambda: timed(lambda: registry.build("dataset", "csv", path=str(path))),
            units=1,
            repeats=repeats,
            goal="<= 1.5, memory <= 3x",
            goal_max=1.5,
        )
        float32_bytes = rows * COLUMNS * 4
        peak = peak_memory(path, "mlbasics")
        numpy_peak = peak_memory(path, "numpy")
        notes = {
            "same_values": same,
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "float32_mb": round(float32_bytes / 1e6, 1),
            "peak_mb": round(peak / 1e6, 1),
            "peak_over_float32": round(peak / float32_bytes, 2),
            "loadtxt_peak_mb": round(numpy_peak / 1e6, 1),
        }
    if not same or peak > 3 * float32_bytes:  # then the row fails its goal, however fast it is
        what = "values differ" if not same else "memory over 3x"
        row = attrs.evolve(row, goal=f"{row.goal}: {what.upper()}", goal_max=0.0)
    return row, notes


if __name__ == "__main__":
    import argparse

    from _timing import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    measured, extra = csv_load_row(args.rows, args.repeats)
    print(markdown_table([measured]))
    print(extra)
