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
