"""Functions the tests call inside other interpreters.

This module is imported there by reference (pickle), so it imports nothing heavy: a new xinterp
interpreter starts with its creator's sys.path, which puts this folder in reach.
"""


def evaluate(expr):
    """eval(expr) in the calling interpreter's __main__."""
    import __main__
    return eval(expr, __main__.__dict__)


def identity(x):
    return x


def mul(a, b=2, *, c=1):
    return a * b * c


def make_lock():
    import threading
    return threading.Lock()


def plain_function():
    global ran_from_function
    ran_from_function = True


def busy_until(seconds):
    """Runs Python bytecode (so eval-breaker checks happen) for `seconds`; returns loop count."""
    import time
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def busy_until_item(q):
    """Runs Python bytecode (so eval-breaker checks happen) until q has an item, then takes it;
    returns the loop count. The caller decides when the work ends, not a clock."""
    n = 0
    while q.empty():
        n += 1
    q.get_nowait()
    return n


def wait_for_item(q):
    """Blocks until q has an item (up to 60 s) and returns it."""
    return q.get(timeout=60)


def handshake(mine, theirs, name):
    """Announces name on `mine`, then waits for the other side's announcement on `theirs` and
    returns it. Two of these complete only if they are in progress at the same time."""
    mine.put(name)
    return theirs.get(timeout=60)


def wait_until(predicate, timeout=60.0):
    """Waits until predicate() is true, for state that nothing signals (counters of another
    interpreter, /proc thread states); returns its last value. The one polling wait of the
    suite: tests that can wait on an event or a queue do that instead."""
    import time
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            return value
        time.sleep(0.001)  # the poll interval, not a synchronisation
    return value


def run_in_main(source):
    """exec(source) in the calling interpreter's __main__ (for call_in_thread)."""
    import __main__
    exec(source, __main__.__dict__)
