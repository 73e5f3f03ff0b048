#!/usr/bin/env bash
# Sets up and runs the main job: installs xinterp into a venv of its own and runs
# `python -m xinterp demo` (extra arguments go to the demo, e.g. --size 64MiB --workers 4).
#
#   bash tools/demo.sh [demo options]
#
# Uses pyenv's CPython 3.13.0 if present, else 3.12.1, else the first python3.13/python3.12 on
# PATH. Needs only a C++ compiler and network access to PyPI (pip fetches the build tools).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=""
for v in 3.13.0 3.12.1; do
  if command -v pyenv >/dev/null && p="$(pyenv prefix "$v" 2>/dev/null)"; then
    PY="$p/bin/python3"
    break
  fi
done
if [ -z "$PY" ]; then
  for c in python3.13 python3.12; do
    if command -v "$c" >/dev/null; then PY="$(command -v "$c")"; break; fi
  done
fi
if [ -z "$PY" ]; then
  echo "demo: needs CPython 3.12 or newer (pyenv 3.13.0/3.12.1, or python3.13/python3.12)" >&2
  exit 1
fi
short="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
venv=".venv-$short"
if [ ! -x "$venv/bin/python" ]; then
  echo "demo: creating $venv with $PY" >&2
  "$PY" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
echo "demo: pip install . into $venv (builds the extension; about a minute the first time)" >&2
"$venv/bin/pip" install -q .
exec "$venv/bin/python" -m xinterp demo "$@"
