#!/usr/bin/env bash
# The benchmarks, each ending with a comparison table:
#   1. the core (C++, Google Benchmark) beside a mutex+deque and a CPython-style 300-slot ring;
#   2. interpreter round trips (create+close, exec, call) beside CPython's own PEP 734
#      interpreters and multiprocessing, on CPython 3.13 and 3.12 (pyenv 3.13.0 / 3.12.1);
#   3. queues and buffers (throughput, blocking round trip, zero-copy hand-over, releases to an
#      idle owner) beside CPython 3.13's queues and multiprocessing.Queue.
#
#   bash tools/bench.sh [REPETITIONS]    (default 10 for the core and the Python suite)
#   bash tools/bench.sh --quick          a smoke run of everything
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PATH="$ROOT/.venv-tools/bin:$PATH"
REPS=10
RUNS=10
QUICK=()
if [ "${1:-}" = "--quick" ]; then
  REPS=2
  QUICK=(--quick)
elif [ -n "${1:-}" ]; then
  REPS="$1"
  RUNS="$1"
fi
mkdir -p build/bench-results

echo "=== core ==="
cmake -S . -B build -G Ninja -Wno-dev -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target xinterp_core_bench
OUT="build/bench-results/core_bench.json"
echo "bench: $REPS repetitions of each benchmark (progress below), JSON in $OUT"
./build/bench/core/xinterp_core_bench --benchmark_repetitions="$REPS" \
  --benchmark_display_aggregates_only=true --benchmark_out="$OUT" --benchmark_out_format=json
echo
python3 bench/core/compare.py "$OUT"

for version in 3.13.0 3.12.1; do
  short="${version%.*}"
  venv="$ROOT/.venv-$short"
  echo
  echo "=== python -m xinterp bench, CPython $version ==="
  if ! prefix="$(pyenv prefix "$version" 2>/dev/null)"; then
    echo "bench: CPython $version not found (pyenv); skipped"
    continue
  fi
  if [ ! -x "$venv/bin/python" ]; then
    "$prefix/bin/python3" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
  fi
  echo "bench: pip install .[bench] into $venv"
  "$venv/bin/pip" install -q ".[bench]"
  HOT=()
  [ "$short" = 3.13 ] && [ ${#QUICK[@]} = 0 ] && HOT=(--hotpath)
  "$venv/bin/python" -m xinterp bench --runs "$RUNS" "${QUICK[@]}" "${HOT[@]}" \
    --out "build/bench-results/python-$short"
done
