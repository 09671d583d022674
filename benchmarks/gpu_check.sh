#!/usr/bin/env bash
# The GPU checks in one go, for a machine with a CUDA GPU and a CUDA build of torch (>= 2.6):
# install mlbasics (no downloads), run the tests marked `cuda`, run the benchmark on the GPU.
# Everything it finds is written to $OUT (default: ./gpu-results), which it prints at the end.
#
#   bash benchmarks/gpu_check.sh              # tests + benchmark (7 pairs per row)
#   REPEATS=15 bash benchmarks/gpu_check.sh   # more pairs per row (about 3-6 minutes in all)
#   QUICK=1 bash benchmarks/gpu_check.sh      # tests + a quick benchmark (shows it runs, not speed)
#
# A GPU machine without network access may lack mlbasics' pure-Python dependencies. Prepare them
# beforehand, on a machine with a package index, and bring the folder along (it is git-ignored):
#
#   bash benchmarks/gpu_check.sh --wheelhouse   # downloads them into ./wheelhouse
#
# The script installs from ./wheelhouse (or $WHEELS) when that exists.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
WHEELS="${WHEELS:-wheelhouse}"
# Some wheels are built per Python version and platform (hypothesis, safetensors): pass pip the
# GPU machine's when it differs from this one, e.g.
#   bash benchmarks/gpu_check.sh --wheelhouse --python-version 3.12 --platform manylinux2014_x86_64
# NumPy is left out: a CUDA build of torch usually comes with it. sybil is in: the root
# conftest.py collects the docs' code blocks, so pytest needs it to start at all.
# pytest-xdist (and execnet) too: pyproject.toml's addopts pass it -n.
DEPENDENCIES=(pluggy attrs rich markdown-it-py mdurl pygments tomli-w safetensors pytest iniconfig
              packaging hypothesis sortedcontainers sybil setuptools pytest-xdist execnet)

if [ "${1:-}" = "--wheelhouse" ]; then
    exec "$PYTHON" -m pip download --only-binary=:all: --no-deps -d "$WHEELS" "${@:2}" "${DEPENDENCIES[@]}"
fi

OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
status=0

echo "== machine" | tee "$OUT/machine.txt"
{
    "$PYTHON" -c 'import sys, torch; print("python", sys.version.split()[0], "| torch", torch.__version__,
        "| CUDA", torch.version.cuda, "| GPU", torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
    git log -1 --format='mlbasics commit %H' 2>/dev/null
} 2>&1 | tee -a "$OUT/machine.txt"

echo "== install"
if [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" "${DEPENDENCIES[@]}" 2>&1 | tail -3
fi
if ! "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation -e .; then
    echo "could not install mlbasics; using it from the source tree (the 'mlbasics' command and the"
    echo "entry-point plugins will be missing, so list-cold and some tests will fail)"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" -c 'import mlbasics, pluggy, attrs, rich, tomli_w, safetensors, pytest, sybil, xdist' || status=1

echo "== tests marked cuda"
# (torch warns on import when NumPy is missing; the suite turns warnings into errors; -n 0: the
# few CUDA tests in one process, with one CUDA context)
"$PYTHON" -m pytest -m cuda -n 0 -q -p no:cacheprovider --continue-on-collection-errors \
    -W "ignore:Failed to initialize NumPy" --junitxml="$OUT/cuda-tests.xml" 2>&1 | tee "$OUT/cuda-tests.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== benchmark on the GPU"
options=(--device cuda --json "$OUT/bench-cuda.json")
if [ -n "${QUICK:-}" ]; then options+=(--quick); else options+=(--repeats "${REPEATS:-7}"); fi
"$PYTHON" benchmarks/run.py "${options[@]}" 2>&1 | tee "$OUT/bench-cuda.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== results in $OUT (exit status $status)"
ls -l "$OUT"
exit "$status"
