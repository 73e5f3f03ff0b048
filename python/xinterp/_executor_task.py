"""What an InterpreterPoolExecutor worker runs inside its interpreter (imported there).

Kept apart from xinterp.pool so that a worker interpreter imports only this, not the executor.
"""


def run_task(results, fn, args, kwargs):
    """Calls fn(*args, **kwargs) (kwargs None: none, so that no empty dict is pickled). If it raises, the exception object is put on `results` (so
    the executor can re-raise it as itself, as CPython 3.14 does) and raised on, unhandled, so
    that call() reports it as ExecutionFailed. An exception that cannot cross (not picklable)
    is reported on stderr and None is put in its place. The asyncio.CancelledError of an
    interrupt (a cancelled running task, see InterpreterPoolExecutor) takes the same way, so
    the executor sees it as itself and ends the future cancelled."""
    try:
        return fn(*args, **kwargs) if kwargs else fn(*args)
    except BaseException as exc:
        try:
            results.put(exc)
        except Exception:  # noqa: BLE001 - NotShareableError or a pickling error
            import sys
            import traceback
            print('exception is not shareable:', file=sys.stderr)
            traceback.print_exception(exc)
            results.put(None)
        raise
