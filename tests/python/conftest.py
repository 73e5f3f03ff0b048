"""Shared fixtures for xinterp's Python tests (run under every supported CPython).

Every test is followed by a leak check (the autouse fixture `nothing_left_behind`): the
interpreters, queues and channels alive are those alive before it, no interpreter has buffers
still borrowed or pending calls still queued, and no pending call was lost. A test that must
leave something behind says so with ``@pytest.mark.leaks(reason=...)``.
"""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import xinterp
from xinterp import _xinterp, channels, pool, queues

# How long the leak check waits for releases that run asynchronously (a housekeeper draining
# an idle owner, a thread finishing its call) before it reports a leak.
SETTLE_TIMEOUT = 30.0


def pytest_configure(config):
    # The Ctrl-C tests send SIGINT to child processes. A test run started in the background by
    # a non-interactive shell inherits SIGINT ignored, and so would every child (an ignored
    # signal stays ignored across exec; Python then installs no KeyboardInterrupt handler). A
    # handled one is reset to the default on exec, so the children get Python's usual handler.
    # A hook, not module code: test modules (and so this one) are also imported inside
    # interpreters, where the signal module must not be touched (3.12's getsignal() there hands
    # out the main interpreter's handler object: a crash).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    return f'xinterp: {xinterp._xinterp.__file__}'


def pytest_configure(config):
    # Some tests reach below the public API through hooks compiled into test builds only.
    if not getattr(xinterp._xinterp, '_TEST_HOOKS', 0):
        raise pytest.UsageError(
            'this build of xinterp has no test hooks; build it for testing with '
            "pip install -C cmake.define.XINTERP_TEST_HOOKS=ON '.[test]' (tools/test.sh does)")
    config.addinivalue_line(
        'markers',
        'leaks(reason): the test deliberately leaves an interpreter, queue, channel, borrow or '
        'pending call behind; the leak check after it is skipped (give the reason)')
    # A sanitizer run imports a special build through PYTHONPATH; make sure it is the one used.
    expected = os.environ.get('XINTERP_EXPECT_BUILD')
    if expected and not os.path.abspath(xinterp._xinterp.__file__).startswith(expected):
        raise pytest.UsageError(
            f'expected xinterp from {expected}, imported {xinterp._xinterp.__file__}')


def eventually(predicate, timeout=SETTLE_TIMEOUT, interval=0.001):
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


def released(i):
    """Every buffer interpreter i lent was given back, and no release is waiting to run in it."""
    s = interp_stats(i)
    return s['borrows'] == 0 and s['backlog'] == 0


def parked_getters(q):
    """Threads parked in q.get() right now (a waiter re-parks every 100 ms, so the count can
    read 0 for an instant while one still waits: wait until it is >= n, then act)."""
    return q._info()[3]


def parked_putters(q):
    return q._info()[4]


def parked_receivers(channel_end):
    return _xinterp.channel_info(channel_end.id)[3]


def act_when(predicate, action):
    """Returns a started thread that waits until predicate() holds (up to SETTLE_TIMEOUT),
    then runs action(). The action runs even if the predicate never held, so that a caller
    blocked until the action is never left waiting; the thread's `observed` (after join())
    says whether it held: assert it.

    For "once the other side is parked, wake it": act_when(lambda: parked_getters(q) >= 1,
    lambda: q.put(x)) before a blocking q.get() proves that the get parked and was woken.
    """
    thread = _ActWhen(predicate, action)
    thread.start()
    return thread


class _ActWhen(threading.Thread):
    def __init__(self, predicate, action):
        super().__init__(daemon=True)
        self._predicate, self._action = predicate, action
        self.observed = None

    def run(self):
        self.observed = bool(eventually(self._predicate))
        self._action()


# --- nothing left behind -----------------------------------------------------------------------

class _World:
    """What xinterp has alive at one moment, as far as a test can leave it behind."""

    def __init__(self):
        gc.collect()
        idle = {i.id for i in pool._idle}  # the warm pool keeps released interpreters on purpose
        stats = xinterp.stats()
        closed = xinterp.runtime_stats()['closed_interpreters']
        self.interpreters = {i for i, _ in _xinterp.list_all()} - idle
        self.queues = set(_xinterp.queue_list_all())
        self.channels = {c for c, _ in _xinterp.channel_list_all()}
        self.borrows = {i: s['borrows'] for i, s in stats.items() if s['borrows']}
        self.backlog = {i: s['backlog'] for i, s in stats.items() if s['backlog']}
        # A closed interpreter's counters move to the closed totals: the sum is what is kept.
        self.lost = sum(s['lost'] for s in stats.values()) + closed['lost']


def _queues_held_by_pytest(item):
    """Queues that fixtures or parameters handed to the test: pytest keeps references to them
    until after the teardown, so they cannot be gone yet."""
    held = set()
    values = list((item.funcargs or {}).values())
    while values:
        v = values.pop()
        if isinstance(v, queues.Queue):
            held.add(v.id)
        elif isinstance(v, (tuple, list)):
            values.extend(v)
    return held


def _left_behind(before, item):
    """What the test left behind compared with `before`, as {what: detail}; empty if nothing."""
    now = _World()
    left = {}
    interps = now.interpreters - before.interpreters
    if interps:
        running = sorted(i for i in interps if _is_running(i))
        left['interpreters'] = f'{sorted(interps)} (running: {running})'
    held = _queues_held_by_pytest(item)
    qs = now.queues - before.queues - held
    if qs:
        left['queues'] = {q: _queue_size(q) for q in sorted(qs)}
    chans = now.channels - before.channels
    if chans:
        left['channels'] = sorted(chans)
    borrows = {i: n for i, n in now.borrows.items() if i not in before.borrows}
    if borrows:
        left['buffers still borrowed (lender id: count)'] = borrows
    backlog = {i: n for i, n in now.backlog.items() if i not in before.backlog}
    if backlog:
        left['pending calls still queued (interpreter id: count)'] = backlog
    if now.lost > before.lost:
        left['pending calls lost'] = now.lost - before.lost
    rt = xinterp.runtime_stats()
    if rt['interpreters_alive'] != len(_xinterp.list_all()):
        left['runtime_stats interpreters_alive'] = (
            f"{rt['interpreters_alive']} but list_all() has {len(_xinterp.list_all())}")
    if rt['queues'] != len(_xinterp.queue_list_all()):
        left['runtime_stats queues'] = (
            f"{rt['queues']} but queue_list_all() has {len(_xinterp.queue_list_all())}")
    return left


def _is_running(iid):
    try:
        return _xinterp.is_running(iid)
    except xinterp.InterpreterError:
        return False


def _queue_size(qid):
    try:
        return f'{_xinterp.queue_handle(qid).info()[0]} items'
    except queues.QueueError:
        return 'gone'


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == 'call':
        item.xinterp_call_passed = report.passed


@pytest.fixture(autouse=True)
def nothing_left_behind(request):
    """After each test (and after the other fixtures' teardown, since this one is set up first):
    nothing it made is left. Releases run asynchronously, so the check polls for up to
    SETTLE_TIMEOUT seconds (collecting garbage each time) before it reports what is left."""
    marker = request.node.get_closest_marker('leaks')
    if marker is not None:
        if not marker.kwargs.get('reason'):
            pytest.fail('@pytest.mark.leaks needs reason=...', pytrace=False)
        yield
        return
    before = _World()
    yield
    if not getattr(request.node, 'xinterp_call_passed', False):
        return  # the test failed (or was skipped): its own report says what went wrong
    left = {}

    def settled():
        left.clear()
        left.update(_left_behind(before, request.node))
        return not left

    if not eventually(settled, timeout=SETTLE_TIMEOUT, interval=0.005):
        details = '\n'.join(f'  {what}: {detail}' for what, detail in left.items())
        pytest.fail(f'{request.node.nodeid} left behind (after {SETTLE_TIMEOUT:.0f} s):\n'
                    f'{details}', pytrace=False)


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def interp():
    """A fresh interpreter, closed after the test (if the test did not close it)."""
    i = xinterp.create()
    yield i
    try:
        i.close()
    except xinterp.InterpreterNotFoundError:
        pass


@pytest.fixture
def dead():
    """An Interpreter object whose interpreter was closed."""
    i = xinterp.create()
    i.close()
    return i


@pytest.fixture
def q():
    """An unbounded queue; emptied after the test (pytest itself keeps the Queue object until
    after the leak check, so what it holds must go)."""
    q = xinterp.create_queue()
    yield q
    _drain(q)


@pytest.fixture
def q1():
    """A queue with room for one item; emptied after the test (pytest itself keeps the Queue
    object until after the leak check, so what it holds must go)."""
    q = xinterp.create_queue(maxsize=1)
    yield q
    _drain(q)


def _drain(q):
    while True:
        try:
            q.get_nowait()
        except queues.QueueEmpty:
            return
        except queues.QueueError:
            return  # closed under the test (queue_release misused on purpose)


@pytest.fixture
def new_channel():
    """channels.create(**kwargs) for the test; every channel it made is closed (its items
    dropped) after the test. A channel lives until it is closed, not until its ends are gone."""
    made = []

    def create(**kwargs):
        r, s = channels.create(**kwargs)
        made.append(r.id)
        return r, s

    yield create
    for cid in made:
        try:
            _xinterp.channel_close(cid, True, True, True)
        except channels.ChannelError:
            pass  # closed by the test already


@pytest.fixture
def chan(new_channel):
    """A channel's (receive end, send end), closed (items dropped) after the test."""
    return new_channel()
