"""Shared fixtures for xinterp's Python tests (run under every supported CPython)."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import xinterp


def pytest_report_header(config):
    return f'xinterp: {xinterp._xinterp.__file__}'


def pytest_configure(config):
    # Some tests reach below the public API through hooks compiled into test builds only.
    if not getattr(xinterp._xinterp, '_TEST_HOOKS', 0):
        raise pytest.UsageError(
            'this build of xinterp has no test hooks; build it for testing with '
            "pip install -C cmake.define.XINTERP_TEST_HOOKS=ON '.[test]' (tools/test.sh does)")
    # A sanitizer run imports a special build through PYTHONPATH; make sure it is the one used.
    expected = os.environ.get('XINTERP_EXPECT_BUILD')
    if expected and not os.path.abspath(xinterp._xinterp.__file__).startswith(expected):
        raise pytest.UsageError(
            f'expected xinterp from {expected}, imported {xinterp._xinterp.__file__}')


@pytest.fixture
def interp():
    """A fresh interpreter, closed after the test (if the test did not close it)."""
    i = xinterp.create()
    yield i
    try:
        i.close()
    except xinterp.InterpreterNotFoundError:
        pass


def eventually(predicate, timeout=10.0, interval=0.001):
    """Polls predicate until it is true or timeout seconds passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def run_script(source, timeout=60):
    """Runs source in a fresh `python -c` of this same Python; returns CompletedProcess."""
    env = dict(os.environ, PYTHONFAULTHANDLER='1')
    return subprocess.run(
        [sys.executable, '-c', textwrap.dedent(source)],
        capture_output=True, text=True, timeout=timeout, env=env)


def interp_stats(i):
    return xinterp.stats()[i.id]
