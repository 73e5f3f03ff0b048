"""Tasks the executor-interrupt tests run in worker interpreters (imported there by reference,
so nothing heavy here)."""


def spin_until_interrupted(started, report):
    """Announces itself on `started`, then runs Python bytecode until an exception is raised in
    it; puts 'module.qualname' of that exception on `report` and lets it through."""
    try:  # the interrupt may come as soon as the item is seen, before put() returned here
        started.put(1)
        while True:
            pass
    except BaseException as exc:
        report.put(f'{type(exc).__module__}.{type(exc).__qualname__}')
        raise


def spin_then_swallow(started):
    """As spin_until_interrupted, but catches the interrupt and returns normally."""
    try:
        started.put(1)
        while True:
            pass
    except BaseException as exc:
        return f'caught {type(exc).__name__}'


def interpreter_id():
    import xinterp
    return xinterp.get_current().id


def count_to(n):
    """Pure-Python work that an interrupt would stop (runs bytecode all along)."""
    total = 0
    for i in range(n):
        total += i
    return total


def spin_forever(arg):
    while True:
        pass
