"""How long each command of the README takes here: every ``mlbasics`` and ``torchrun`` line of its
``sh`` blocks, run as written, one after another, in a scratch folder holding a copy of
``examples/`` (a block's commands share it, so ``--resume run`` finds the run saved before it).

    python benchmarks/readme_examples.py              # a markdown table on stdout
    python benchmarks/readme_examples.py --only sweep # the commands that contain "sweep"

Each row is one run of the command: its wall-clock seconds, interpreter start-up included (what a
student waits), and the CPU seconds it and its children used (user + system), with the one-minute
load average before and after it. The commands run with one thread per process
(``OMP_NUM_THREADS=1``, unless ``--threads`` says otherwise), so that on a busy machine the CPU
seconds stay close to what a quiet core spends (threads that wait for a descheduled sibling spin
and count), while the wall-clock time grows with the load. Not part of ``run.py``: these are single
runs of whole commands, not ratios against a baseline. docs/performance.md records a run.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```sh\n(.*?)^```\n", re.DOTALL | re.MULTILINE)


def readme_commands(text: str) -> list[list[list[str]]]:
    """The ``mlbasics`` and ``torchrun`` commands of each ``sh`` block, each split as the shell
    would (continuation lines joined, comments dropped)."""
    blocks = []
    for block in _BLOCK.findall(text):
        commands = []
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in ("mlbasics", "torchrun"):
                commands.append(words)
        if commands:
            blocks.append(commands)
    return blocks


def _children_cpu() -> float:
    """CPU seconds (user + system) of the children waited for so far, theirs included."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only the commands containing this text")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a command is given up")
    parser.add_argument("--threads", default="1", help="OMP_NUM_THREADS of the commands (default 1)")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS=args.threads
    )
    print("| command | wall s | CPU s | exit | load before-after |")
    print("|---|---|---|---|---|")
    for commands in readme_commands((ROOT / "README.md").read_text(encoding="utf-8")):
        with tempfile.TemporaryDirectory(prefix="mlbasics-readme-") as folder:
            shutil.copytree(ROOT / "examples", Path(folder) / "examples")
            for words in commands:
                line = shlex.join(words)
                if args.only not in line:
                    continue
                before, used = _load(), _children_cpu()
                start = time.perf_counter()
                try:
                    status: int | str = subprocess.run(
                        words, cwd=folder, env=env, capture_output=True, timeout=args.timeout, check=False
                    ).returncode
                except subprocess.TimeoutExpired:
                    status = "timeout"
                seconds, cpu = time.perf_counter() - start, _children_cpu() - used
                print(f"| `{line}` | {seconds:.1f} | {cpu:.1f} | {status} | {before}-{_load()} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
