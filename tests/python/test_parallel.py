"""Calls release the caller's GIL and every interpreter has its own, so calls into two
interpreters are in progress at the same time, and the caller's interpreter keeps running.

These are checks of concurrency that can be observed (a hand-shake that could not complete if
the calls ran one after the other), not of speed: how much faster two interpreters are than one
is measured by the benchmark suite (``python -m xinterp bench``), never asserted in a test.
"""

import threading

import xinterp

from shared_helpers import evaluate


def test_calls_into_two_interpreters_are_in_progress_at_once():
    # Each call announces itself on its own queue, then waits for the other's announcement. If
    # the two calls were serialised, the first would wait until its timeout and raise.
    a, b = xinterp.create(), xinterp.create()
    qa, qb = xinterp.create_queue(), xinterp.create_queue()
    try:
        a.prepare_main(mine=qa, theirs=qb, name='a')
        b.prepare_main(mine=qb, theirs=qa, name='b')
        code = 'mine.put(name)\ngot = theirs.get(timeout=60)'
        threads = [threading.Thread(target=i.exec, args=(code,)) for i in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert (a.call(evaluate, 'got'), b.call(evaluate, 'got')) == ('b', 'a')
    finally:
        a.close()
        b.close()


def test_caller_interpreter_keeps_running_during_a_call():
    # The sub-interpreter's call waits for a value that only a thread of the calling (main)
    # interpreter puts, after the call began: it completes only if the call released main's GIL.
    a = xinterp.create()
    started, reply = xinterp.create_queue(), xinterp.create_queue()
    try:
        def main_thread_side():
            started.get(timeout=60)  # the call is running in `a` now
            reply.put('from main')

        t = threading.Thread(target=main_thread_side)
        t.start()
        a.prepare_main(started=started, reply=reply)
        a.exec('started.put(1)\nresult = reply.get(timeout=60)\nassert result == "from main"')
        t.join()
    finally:
        a.close()
