#!/usr/bin/env bash
# Builds and runs the core benchmarks, then prints the comparison table.
#   bash tools/bench.sh [REPETITIONS]    (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv-tools/bin:$PATH"
REPS="${1:-10}"
cmake -S . -B build -G Ninja -Wno-dev -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target xinterp_core_bench
mkdir -p build/bench-results
OUT="build/bench-results/core_bench.json"
echo "bench: $REPS repetitions of each benchmark (progress below), JSON in $OUT"
./build/bench/core/xinterp_core_bench --benchmark_repetitions="$REPS" \
  --benchmark_display_aggregates_only=true --benchmark_out="$OUT" --benchmark_out_format=json
echo
python3 bench/core/compare.py "$OUT"
