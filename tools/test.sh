#!/usr/bin/env bash
# Runs every xinterp test and ends with one summary line.
#
#   bash tools/test.sh           all stages
#   bash tools/test.sh --quick   the plain build only (no sanitizers, no clang analysis)
#   bash tools/test.sh --only consumer   that stage alone (see below)
#
# Stages (each in its own build folder):
#   format      clang-format --dry-run -Werror over every C and C++ file (.clang-format)
#   core        gcc, RelWithDebInfo: the C++ core tests (ctest label "core")
#   tsan        clang, ThreadSanitizer: the same tests; any report fails them
#   asan        gcc, AddressSanitizer + UndefinedBehaviorSanitizer: the same tests
#   clang-ts    clang with -Wthread-safety -Werror: lock discipline of the core and the CPython
#               engine checked at compile time
#   python-3.12, python-3.13
#               per CPython (pyenv 3.12.1 and 3.13.0): `pip install .[test]` into .venv-3.12 /
#               .venv-3.13, then pytest (tests/python); and a CMake build against that CPython
#               (build-py312 / build-py313) that builds and runs the C++ embedding example
#               (ctest label "embed"). The exit-churn test runs its script 200 times
#               (XINTERP_EXIT_CHURN_RUNS; 20 in a plain pytest run).
#   asan-python-3.12, asan-python-3.13
#               the engine, the extension and the embedding example built with ASan+UBSan; the
#               example (with leak checks) and the whole pytest suite run against that build.
#   fuzz-3.12, fuzz-3.13
#               the libFuzzer targets of fuzz/ (clang, ASan+UBSan), XINTERP_FUZZ_SECONDS each.
#   consumer    xinterp as a C++ consumer gets it: a Release build with the CPython engine
#               (pyenv 3.13.0) `cmake --install`ed into build-consumer/prefix, and tests/consumer
#               built against that prefix, one test per app (ctest label "consumer"); then the
#               core and its tests in Debug (build-debug).
# It first runs tools/setup.sh (installs what is missing; a quick check once all is there).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
if ! bash tools/setup.sh; then
  echo "tests: 0 passed, 1 failed (tools/setup.sh failed)"
  exit 1
fi
export PATH="$ROOT/.venv-tools/bin:$PATH"
QUICK=0
ONLY=""
case "${1:-}" in
  --quick) QUICK=1 ;;
  --only) ONLY="${2:-}" ;;
esac
JOBS="$(nproc 2>/dev/null || echo 2)"

declare -a SUMMARY
TOTAL_PASSED=0
TOTAL_FAILED=0

stage() { echo; echo "=== $* ==="; }

# run_ctest NAME BUILD_DIR [env...]: counts the tests ctest ran and failed (label $LABEL, "core"
# unless set).
run_ctest() {
  local name="$1" dir="$2"
  shift 2
  local log="$dir/ctest.log"
  env "$@" ctest --test-dir "$dir" -L "${LABEL:-core}" --output-on-failure -j "$JOBS" 2>&1 |
    tee "$log"
  local total failed
  # ctest closes with "100% tests passed out of N" or "P% tests passed, F tests failed out of N".
  total=$(sed -n 's/.*tests passed.* out of \([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
  failed=$(sed -n 's/.*tests passed, \([0-9][0-9]*\) tests failed out of.*/\1/p' "$log" | tail -1)
  failed="${failed:-0}"
  if [ -z "${total:-}" ]; then
    SUMMARY+=("$name: did not run")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    return
  fi
  TOTAL_PASSED=$((TOTAL_PASSED + total - failed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  SUMMARY+=("$name: $((total - failed)) passed, $failed failed")
}

# run_pytest NAME LOG COMMAND...: runs COMMAND (a `python -m pytest` with any leading `env`
# and options) on tests/python, and counts passed and failed (errors count as failed) from
# pytest's last line.
run_pytest() {
  local name="$1" log="$2"
  shift 2
  (cd "$ROOT" && "$@" -p no:cacheprovider -q -rfE tests/python) 2>&1 | tee "$log"
  local passed failed errors
  passed=$(tail -1 "$log" | grep -o '[0-9]* passed' | grep -o '[0-9]*')
  failed=$(tail -1 "$log" | grep -o '[0-9]* failed' | grep -o '[0-9]*')
  errors=$(tail -1 "$log" | grep -o '[0-9]* error' | grep -o '[0-9]*')
  passed="${passed:-0}"
  failed=$(( ${failed:-0} + ${errors:-0} ))
  if [ "$passed" = 0 ] && [ "$failed" = 0 ]; then
    SUMMARY+=("$name: did not run")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
  else
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    SUMMARY+=("$name: $passed passed, $failed failed")
  fi
}

# build NAME BUILD_DIR [cmake args...]  (builds everything, or only $TARGET if set: one target
# or several, separated by spaces)
build() {
  local name="$1" dir="$2"
  shift 2
  stage "$name: build ($dir)"
  mkdir -p "$dir"
  if cmake -S "$ROOT" -B "$dir" -G Ninja -Wno-dev "$@" >"$dir/configure.log" 2>&1 &&
     cmake --build "$dir" -j "$JOBS" ${TARGET:+--target $TARGET}; then
    return 0
  fi
  tail -20 "$dir/configure.log" 2>/dev/null
  SUMMARY+=("$name: BUILD FAILED")
  TOTAL_FAILED=$((TOTAL_FAILED + 1))
  return 1
}

print_summary() {
  echo
  echo "=== summary ==="
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  echo "tests: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
}

# consumer_stage: what a C++ consumer gets (README, "Using xinterp from C++"). xinterp is built in
# Release with the CPython engine against pyenv's CPython 3.13.0, without tests or benchmarks and
# only the installed targets, so that it is quick; `cmake --install`ed into a fresh
# build-consumer/prefix; then tests/consumer is configured against that prefix alone (it must find
# CPython through the package, so no Python hints are passed), built and run: one test per app.
# Build types: this is the Release build (-O3, where GCC warns most); the core stage is
# RelWithDebInfo, which is also what an empty CMAKE_BUILD_TYPE becomes (CMakeLists.txt);
# Debug (-O0) is built here too: the core and its tests, which then run (a few seconds).
consumer_stage() {
  local version=3.13.0 name=consumer dir=build-consumer
  local prefix
  if ! prefix="$(pyenv prefix "$version" 2>/dev/null)"; then
    SUMMARY+=("$name: CPython $version not found (pyenv)")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    return
  fi
  if TARGET="xinterp_core xinterp_python" build "$name" "$dir" -DCMAKE_BUILD_TYPE=Release \
       -DXINTERP_BUILD_PYTHON=ON -DXINTERP_BUILD_TESTS=OFF -DXINTERP_BUILD_BENCH=OFF \
       -DPython_ROOT_DIR="$prefix" -DPython_FIND_STRATEGY=LOCATION; then
    stage "$name: install into $dir/prefix, build tests/consumer against it"
    rm -rf "$dir/prefix"  # a file left by an earlier run must not hide a missing install rule
    if cmake --install "$dir" --prefix "$ROOT/$dir/prefix" >"$dir/install.log" 2>&1 &&
       cmake -S "$ROOT/tests/consumer" -B "$dir/app" -G Ninja \
         -DCMAKE_PREFIX_PATH="$ROOT/$dir/prefix" -DXINTERP_CONSUMER_REQUIRE_PYTHON=ON \
         >"$dir/app-configure.log" 2>&1 &&
       cmake --build "$dir/app" -j "$JOBS"; then
      stage "$name: tests"
      LABEL=consumer run_ctest "$name" "$dir/app"
    else
      tail -20 "$dir/install.log" "$dir/app-configure.log" 2>/dev/null
      SUMMARY+=("$name: INSTALL OR CONSUMER BUILD FAILED")
      TOTAL_FAILED=$((TOTAL_FAILED + 1))
    fi
  fi
  if build debug build-debug -DCMAKE_BUILD_TYPE=Debug -DXINTERP_BUILD_BENCH=OFF; then
    stage "debug: tests"
    run_ctest debug build-debug
  fi
}

if [ "$ONLY" = consumer ]; then
  consumer_stage
  print_summary
  [ "$TOTAL_FAILED" = 0 ]
  exit
elif [ -n "$ONLY" ]; then
  echo "tests: 0 passed, 1 failed (--only knows one stage: consumer)"
  exit 1
fi

# format: every C and C++ file as .clang-format says (clang-format from Debian 12, version 14;
# fix with: clang-format -i $(git ls-files '*.cc' '*.h' '*.c')).
stage "format: clang-format --dry-run -Werror"
c_files() {
  git ls-files '*.cc' '*.h' '*.c' 2>/dev/null ||
    find src include tests examples fuzz bench -name '*.cc' -o -name '*.h' -o -name '*.c'
}
if (cd "$ROOT" && c_files | xargs clang-format --dry-run -Werror); then
  SUMMARY+=("format: 1 passed, 0 failed")
  TOTAL_PASSED=$((TOTAL_PASSED + 1))
else
  SUMMARY+=("format: 0 passed, 1 failed (clang-format)")
  TOTAL_FAILED=$((TOTAL_FAILED + 1))
fi

if build core build -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
  stage "core: tests"
  run_ctest core build
fi

if [ "$QUICK" = 0 ]; then
  if build tsan build-tsan -DXINTERP_SANITIZE=thread -DXINTERP_BUILD_BENCH=OFF \
       -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++; then
    stage "tsan: tests"
    run_ctest tsan build-tsan \
      TSAN_OPTIONS="halt_on_error=1 exitcode=66 die_after_fork=0 second_deadlock_stack=1"
  fi
  if build asan build-asan -DXINTERP_SANITIZE=address -DXINTERP_BUILD_BENCH=OFF; then
    stage "asan: tests"
    run_ctest asan build-asan \
      ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 abort_on_error=0" \
      UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
  fi
  # The core and the CPython engine (against pyenv's 3.13.0, or the core alone without it).
  ts_python=()
  if ts_prefix="$(pyenv prefix 3.13.0 2>/dev/null)"; then
    ts_python=(-DXINTERP_BUILD_PYTHON=ON -DPython_ROOT_DIR="$ts_prefix" -DPython_FIND_STRATEGY=LOCATION)
  fi
  if build clang-ts build-clang-ts -DXINTERP_THREAD_SAFETY=ON -DXINTERP_BUILD_BENCH=OFF \
       -DXINTERP_BUILD_TESTS=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
       "${ts_python[@]}"; then
    SUMMARY+=("clang-ts: -Wthread-safety clean (core${ts_python:+ and CPython engine})")
  fi
fi

# python_stage VERSION: the package and its pytest suite, then the embedding example, against
# pyenv's CPython VERSION.
python_stage() {
  local version="$1" short="${1%.*}"
  local name="python-$short" venv="$ROOT/.venv-$short"
  local prefix
  if ! prefix="$(pyenv prefix "$version" 2>/dev/null)"; then
    SUMMARY+=("$name: CPython $version not found (pyenv)")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    return
  fi
  stage "$name: pip install .[test] into $venv"
  if [ ! -x "$venv/bin/python" ]; then
    "$prefix/bin/python3" -m venv "$venv" && "$venv/bin/pip" install -q --upgrade pip
  fi
  # pip always rebuilds a project given by path, so this installs the current sources.
  # The test hooks (bindings/test_hooks.cc) are compiled into test builds only.
  if ! "$venv/bin/pip" install -q -C cmake.define.XINTERP_TEST_HOOKS=ON ".[test]"; then
    SUMMARY+=("$name: INSTALL FAILED")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
    return
  fi
  stage "$name: pytest"
  # The exit-churn case (test_adversarial_lifecycle.py) runs 200 times per Python here.
  run_pytest "$name pytest" "$venv/pytest.log" \
    env XINTERP_EXIT_CHURN_RUNS="${XINTERP_EXIT_CHURN_RUNS:-200}" "$venv/bin/python" -m pytest
  local dir="build-py${short/./}"
  if build "embed-$short" "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXINTERP_BUILD_PYTHON=ON \
       -DXINTERP_BUILD_CORE_TESTS=OFF -DXINTERP_BUILD_BENCH=OFF \
       -DPython_ROOT_DIR="$prefix" -DPython_FIND_STRATEGY=LOCATION; then
    stage "embed-$short: tests"
    LABEL=embed run_ctest "embed-$short" "$dir"
  fi
}

# asan_python_stage VERSION: the engine, the extension module and the embedding example built
# with ASan+UBSan against pyenv's CPython VERSION (build-py31x-asan), on the debug core
# (XINTERP_DEBUG_CHECKS: owner affinity checked at every lent buffer's take and release, so a
# release outside its owner aborts the test naming both interpreters). The embedding example runs
# with leak checks (tools/sanitizers/lsan.supp names CPython's own never-freed memory); then the
# whole Python suite, in the venv of python_stage, imports that build (PYTHONPATH) with the
# sanitizer runtimes preloaded into the uninstrumented python, PYTHONMALLOC=malloc so that ASan
# sees every object, and without leak checks (CPython does not free everything at exit).
# Tests that assert on RSS (marker "memory") are left out: ASan's quarantine inflates it; so are
# those marked "no_asan" (fork while other threads allocate: ASan's own allocator can hang the
# child; seen with GCC 12's libasan, its stack entirely inside ASan's malloc).
asan_python_stage() {
  local version="$1" short="${1%.*}"
  local name="asan-python-$short" venv="$ROOT/.venv-$short" dir="build-py${short/./}-asan"
  local prefix
  prefix="$(pyenv prefix "$version" 2>/dev/null)" || return 0  # reported by python_stage
  [ -x "$venv/bin/python" ] || return 0
  if ! build "$name" "$dir" -DXINTERP_SANITIZE=address -DXINTERP_BUILD_PYTHON=ON \
       -DXINTERP_TEST_HOOKS=ON -DXINTERP_DEBUG_CHECKS=ON \
       -DXINTERP_BUILD_CORE_TESTS=OFF -DXINTERP_BUILD_BENCH=OFF \
       -DPython_ROOT_DIR="$prefix" -DPython_FIND_STRATEGY=LOCATION; then
    return
  fi
  local supp="$ROOT/tools/sanitizers/lsan.supp"
  stage "$name: embedding example"
  LABEL=embed run_ctest "$name embed" "$dir" \
    ASAN_OPTIONS="halt_on_error=1 detect_leaks=1" \
    LSAN_OPTIONS="suppressions=$supp print_suppressions=0" \
    UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
  stage "$name: pytest (ASan+UBSan)"
  local preload
  preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
  run_pytest "$name pytest" "$ROOT/$dir/pytest.log" \
    env LD_PRELOAD="$preload" PYTHONPATH="$ROOT/$dir/python" XINTERP_EXPECT_BUILD="$ROOT/$dir" \
    PYTHONMALLOC=malloc \
    ASAN_OPTIONS="halt_on_error=1 detect_leaks=0" \
    UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
    "$venv/bin/python" -m pytest -m "not memory and not no_asan"
}

python_stage 3.12.1
python_stage 3.13.0
consumer_stage
# fuzz_stage VERSION: the libFuzzer targets of fuzz/ (clang, ASan+UBSan) against pyenv's CPython
# VERSION, each for XINTERP_FUZZ_SECONDS (default 60) from its checked-in seeds.
fuzz_stage() {
  local version="$1" short="${1%.*}"
  local name="fuzz-$short" dir="build-fuzz-py${short/./}"
  local prefix
  prefix="$(pyenv prefix "$version" 2>/dev/null)" || return 0  # reported by python_stage
  if TARGET=xvalue_fuzz build "$name" "$dir" -DXINTERP_SANITIZE=address -DXINTERP_BUILD_FUZZ=ON \
       -DXINTERP_BUILD_PYTHON=ON -DXINTERP_BUILD_CORE_TESTS=OFF -DXINTERP_BUILD_BENCH=OFF \
       -DXINTERP_FUZZ_SECONDS="${XINTERP_FUZZ_SECONDS:-60}" \
       -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
       -DPython_ROOT_DIR="$prefix" -DPython_FIND_STRATEGY=LOCATION; then
    stage "$name: libFuzzer, ${XINTERP_FUZZ_SECONDS:-60} s per target"
    LABEL=fuzz run_ctest "$name" "$dir"
  fi
}

if [ "$QUICK" = 0 ]; then
  asan_python_stage 3.12.1
  asan_python_stage 3.13.0
  fuzz_stage 3.12.1
  fuzz_stage 3.13.0
fi

print_summary
[ "$TOTAL_FAILED" = 0 ]
