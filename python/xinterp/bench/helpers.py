"""Functions the interpreter benchmark calls in other interpreters (imported there by
reference, so nothing heavy here)."""


def noop():
    return None


def mul(a, b):
    return a * b


def cpu_task(n):
    """Pure-Python CPU work (the executor speed-up case)."""
    total = 0
    for i in range(n):
        total = (total + i * i) % 1000003
    return total


def spin_until_interrupted(ready):
    """Announces itself on `ready`, then loops in pure Python until an exception arrives;
    returns time.perf_counter() taken in the except clause (the interrupt benchmark)."""
    import time
    try:
        ready.put(0)
        while True:
            pass
    except BaseException:  # noqa: BLE001 - whatever interrupt() raised
        return time.perf_counter()


def sleep_until_interrupted(ready, seconds):
    """As spin_until_interrupted, but blocked in time.sleep(seconds), a C call."""
    import time
    try:
        ready.put(0)
        time.sleep(seconds)
        while True:
            pass
    except BaseException:  # noqa: BLE001
        return time.perf_counter()
