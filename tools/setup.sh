#!/usr/bin/env bash
# Installs what xinterp's build, tests and benchmarks need: compilers, C++ test libraries and
# wrk from Debian (apt, needs root), CMake and ninja from PyPI into .venv-tools/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v clang++ >/dev/null || need_apt+=(clang)
command -v clang-format >/dev/null || need_apt+=(clang-format)
[ -f /usr/src/googletest/CMakeLists.txt ] || need_apt+=(libgtest-dev)
[ -f /usr/include/benchmark/benchmark.h ] || need_apt+=(libbenchmark-dev)
command -v g++ >/dev/null || need_apt+=(g++)
# The HTTP load generator of python -m xinterp.bench.server (examples/http_server.py).
command -v wrk >/dev/null || need_apt+=(wrk)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
APT_UPDATED=0
apt_install() {
  echo "setup: apt-get install $*"
  [ "$APT_UPDATED" = 1 ] || $SUDO apt-get update -q
  APT_UPDATED=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "$@"
}
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_install "${need_apt[@]}"
fi
# clang's sanitizer and libFuzzer runtimes (TSan stage, fuzz targets): Debian only recommends them.
fuzzer_rt="$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
if [ ! -f "$fuzzer_rt" ]; then
  apt_install "libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
fi

# Build tools in a venv of their own, from whichever Python 3 is at hand.
PY=python3
if command -v pyenv >/dev/null && pyenv prefix 3.12.1 >/dev/null 2>&1; then
  PY="$(pyenv prefix 3.12.1)/bin/python3"
fi
if [ ! -x .venv-tools/bin/cmake ] || [ ! -x .venv-tools/bin/ninja ]; then
  echo "setup: cmake and ninja into .venv-tools/"
  "$PY" -m venv .venv-tools
  .venv-tools/bin/pip install -q --upgrade pip
  .venv-tools/bin/pip install -q "cmake>=3.20" ninja
fi
echo "setup: done"
