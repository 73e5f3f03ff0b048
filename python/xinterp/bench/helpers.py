"""Functions the interpreter benchmark calls in other interpreters (imported there by
reference, so nothing heavy here)."""


def noop():
    return None


def mul(a, b):
    return a * b
