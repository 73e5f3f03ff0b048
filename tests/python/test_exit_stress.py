"""Exit under load, repeated: a script leaves daemon threads blocked in Queue.get, in Queue.put,
in Interpreter.call on another interpreter (itself waiting in a queue), in exec of an endless
loop, and (every fourth run) in a C call inside a sub-interpreter (time.sleep, out of SystemExit's
reach, which costs the 2 s grace xinterp gives interrupted code at exit), then exits normally, through sys.exit(3), or through an unhandled exception.
Every run must exit with the expected code, without a crash, an abort or a hang.

XINTERP_EXIT_RUNS sets the number of runs (default 200, spread over the three exit modes).
"""

import concurrent.futures
import os

from conftest import run_script

RUNS = int(os.environ.get('XINTERP_EXIT_RUNS', '200'))

SCRIPT = '''
import sys, threading, time
import xinterp
q = xinterp.create_queue()
full = xinterp.create_queue(maxsize=1)
full.put(0)
waiter, spinner, callee, sleeper = (xinterp.create() for _ in range(4))
waiter.prepare_main(q=q)
callee.prepare_main(q=q)

def blocked_call():
    callee.exec("q.get()")  # blocked inside another interpreter

threading.Thread(target=q.get, daemon=True).start()
threading.Thread(target=full.put, args=(1,), daemon=True).start()
threading.Thread(target=blocked_call, daemon=True).start()
threading.Thread(target=spinner.exec, args=("while True: pass",), daemon=True).start()
threading.Thread(target=waiter.exec, args=("q.get()",), daemon=True).start()
if {sleeper}:
    threading.Thread(target=sleeper.exec, args=("import time; time.sleep(1000)",),
                     daemon=True).start()
deadline = time.monotonic() + 30
while not all(i.is_running() for i in (spinner, callee, waiter, sleeper)[:3 + {sleeper}]):
    if time.monotonic() > deadline:
        print("setup timed out", flush=True)
        break
    time.sleep(0.001)
print("ready", flush=True)
{ending}
'''

ENDINGS = [('pass', 0), ('sys.exit(3)', 3), ('raise RuntimeError("unhandled")', 1)]


def one_run(k):
    ending, code = ENDINGS[k % len(ENDINGS)]
    try:
        proc = run_script(SCRIPT.format(ending=ending, sleeper=int(k % 4 == 3)), timeout=60)
    except Exception as e:  # a hang shows up as TimeoutExpired
        return k, f'{type(e).__name__}: {e}'
    if (proc.returncode != code or 'ready' not in proc.stdout or 'Fatal' in proc.stderr
            or 'setup timed out' in proc.stdout):
        return k, f'exit {proc.returncode} (want {code}); stdout={proc.stdout!r}; ' \
                  f'stderr tail={proc.stderr[-600:]!r}'
    return k, None


def test_exit_with_blocked_daemon_threads_many_times():
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        failures = [(k, err) for k, err in ex.map(one_run, range(RUNS)) if err]
    assert not failures, f'{len(failures)} of {RUNS} runs failed; first: {failures[0]}'
