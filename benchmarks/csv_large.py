"""A CSV larger than one wants in memory: ``memory_map = true`` on generated files of 0.25 and 1 GB.

Not a row of benchmarks/run.py (it writes gigabytes and takes minutes); run it by hand:

    python benchmarks/csv_large.py [--gb 0.25,1] [--folder DIR]

For each size it writes a CSV of 10 columns (a block of 100,000 random rows, formatted once and
written over and over until the file has the size), then, each in a fresh interpreter:

- build: the ``csv`` dataset with ``memory_map = true`` reads the CSV into its binary cache;
  rows per second, and the peak resident memory above the interpreter's baseline after imports.
  The CSV is read with read() and the cache written with write(), so neither is in the process's
  resident memory: what is measured is the reader's own memory.
- read: the cached dataset is opened and read through the map, first in order (blocks of 65,536
  rows: every page of the file), then as 500 random batches of 4,096 rows gathered by index
  (index_select), as a training loop does; rows per second for each. Memory: resident memory counts the mapped
  file's pages that were read (RssFile: clean pages of the page cache, which the kernel drops when
  memory is short), so the figure that must not grow with the file is the anonymous memory
  (RssAnon, /proc/self/status): its largest value, sampled during the reads, above the baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = 10

_CHILD = r"""
import json, sys, time
def status():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
    return values
import numpy, torch, mlbasics
BATCHES = 500
registry = mlbasics.Registry.isolated()
registry.build("dataset", "tiny")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak (VmHWM) starts afresh from here
base = status()
path, phase = sys.argv[1], sys.argv[2]
start = time.perf_counter()
data = registry.build("dataset", "csv", path=path, memory_map=True)
opened = time.perf_counter() - start
out = {"rows": data.n_samples, "open_s": opened}
if phase == "read":
    anon = status()["RssAnon"]
    start = time.perf_counter()
    total = 0.0
    for first in range(0, data.n_samples, 65536):
        total += float(data.features[first : first + 65536].sum())
        anon = max(anon, status()["RssAnon"]) if first % (65536 * 16) == 0 else anon
    out["sequential_s"] = time.perf_counter() - start
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for batch in range(BATCHES):
        index = torch.randint(data.n_samples, (4096,), generator=generator)
        x, y = data.features.index_select(0, index), data.targets.index_select(0, index)
        total += float(x[0, 0] + y[0, 0])
        if batch % 100 == 0:
            anon = max(anon, status()["RssAnon"])
    out["random_s"] = time.perf_counter() - start
    out["anon_peak_above_base"] = anon - base["RssAnon"]
end = status()
out.update(
    peak_above_base=end["VmHWM"] - base["VmRSS"],
    anon_end_above_base=end["RssAnon"] - base["RssAnon"],
    file_pages_end=end["RssFile"] - base["RssFile"],
)
print(json.dumps(out))
"""


def write_csv(path: Path, size: float) -> int:
    """Write at least ``size`` bytes of CSV; return the number of data rows."""
    generator = np.random.default_rng(0)
    with tempfile.TemporaryFile("w+") as block:
        np.savetxt(block, generator.standard_normal((100_000, COLUMNS)) * 100, fmt="%.6f", delimiter=",")
        block.seek(0)
        text = block.read().encode()
    rows = 0
    with open(path, "wb") as file:
        file.write((",".join(f"x{i + 1}" for i in range(COLUMNS - 1)) + ",y\n").encode())
        while file.tell() < size:
            file.write(text)
            rows += 100_000
    return rows


def child(path: Path, phase: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), phase], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{phase} failed: {result.stderr.strip()[-800:]}")
    return dict(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", default="0.25,1", help="file sizes in GB (1e9 bytes), comma-separated")
    parser.add_argument("--folder", help="where to write the files (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        for gb in (float(text) for text in args.gb.split(",")):
            path = Path(folder) / f"table-{gb:g}gb.csv"
            start = time.perf_counter()
            rows = write_csv(path, gb * 1e9)
            written = time.perf_counter() - start
            build = child(path, "build")
            read = child(path, "read")
            cache = next(Path(folder).glob(f".{path.name}.*.mlbasics-cache"))
            mb = 1e6
            print(
                json.dumps(
                    {
                        "csv_gb": round(path.stat().st_size / 1e9, 3),
                        "cache_gb": round(cache.stat().st_size / 1e9, 3),
                        "rows": rows,
                        "write_csv_s": round(written, 1),
                        "build_s": round(build["open_s"], 1),
                        "build_rows_per_s": round(rows / build["open_s"]),
                        "build_peak_mb": round(build["peak_above_base"] / mb, 1),
                        "build_anon_end_mb": round(build["anon_end_above_base"] / mb, 1),
                        "open_cached_s": round(read["open_s"], 3),
                        "sequential_rows_per_s": round(rows / read["sequential_s"]),
                        "random_batch_rows_per_s": round(500 * 4096 / read["random_s"]),
                        "read_anon_peak_mb": round(read["anon_peak_above_base"] / mb, 1),
                        "read_file_pages_mb": round(read["file_pages_end"] / mb, 1),
                        "read_rss_peak_mb": round(read["peak_above_base"] / mb, 1),
                    }
                ),
                flush=True,
            )
            path.unlink()
            cache.unlink()


if __name__ == "__main__":
    main()
