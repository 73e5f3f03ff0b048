"""Objects of the caller's main script in call(), as CPython 3.14 sends them: a stateless function
by its code, anything else by pickle, resolved in the target against the caller's main script
run once per interpreter as a hidden module '<fake __main__>' (main_module_transport.h).

Each test runs a real main script (a file, `python script.py`) in a subprocess."""

import os
import subprocess
import sys
import textwrap

import pytest

import xinterp


def run_main_script(tmp_path, source, name='script.py', timeout=120):
    """Writes source to tmp_path/name, runs it as the main script; returns its stdout lines."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONFAULTHANDLER='1')
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_main_function_keeps_the_globals_of_its_script(tmp_path):
    out = run_main_script(tmp_path, '''
        import xinterp

        count = 0

        def inc(x=1):
            global count
            count += x

        def get_count():
            return count

        def whoami():
            return __name__

        if __name__ == '__main__':
            interp = xinterp.create()
            counts = [interp.call(get_count)]
            interp.call(inc)
            counts.append(interp.call(get_count))
            interp.call(inc, 3)
            counts.append(interp.call(get_count))
            print(counts, count)
            print(interp.call(whoami))
            # The target's real __main__ is untouched.
            print([interp.call(eval, f'{n!r} in vars()') for n in ('count', 'inc', 'get_count')])
            interp.close()
        ''')
    assert out == ['[0, 1, 4] 0', '<fake __main__>', '[False, False, False]']


def test_partial_class_instance_and_nested_argument_from_main(tmp_path):
    out = run_main_script(tmp_path, '''
        import functools
        import xinterp

        SCALE = 10

        def scale(x, by=SCALE):
            return x * by

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

            def norm1(self):
                return abs(self.x) + abs(self.y) + SCALE

        def apply_all(fns, value):
            return [f(value) for f in fns]

        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)

        if __name__ == '__main__':
            interp = xinterp.create()
            print(interp.call(functools.partial(scale, by=3), 5))
            print(interp.call(Point.norm1, Point(1, -2)))
            print(interp.call(Point(3, 4).norm1))
            print(interp.call(apply_all, [scale, fib], 7))
            print(interp.call(fib, 15))
            interp.close()
        ''')
    assert out == ['15', '13', '17', '[70, 13]', '610']


def test_script_runs_once_per_interpreter_without_its_main_block(tmp_path):
    out = run_main_script(tmp_path, '''
        import xinterp

        print('top level', __name__, flush=True)
        LIMIT = 3

        def under_limit(x):
            return x < LIMIT

        if __name__ == '__main__':
            print('main block', flush=True)
            a, b = xinterp.create(), xinterp.create()
            print([a.call(under_limit, n) for n in range(5)], flush=True)
            print([b.call(under_limit, n) for n in range(2)], flush=True)
            a.close()
            b.close()
        ''')
    assert out == [
        'top level __main__',
        'main block',
        'top level <fake __main__>',
        '[True, True, True, False, False]',
        'top level <fake __main__>',
        '[True, True]',
    ]


def test_function_added_to_main_at_run_time_is_not_shareable(tmp_path):
    out = run_main_script(tmp_path, '''
        import xinterp

        if __name__ == '__main__':
            # Defined at run time (as in an interactive session): not in the script.
            exec('G = 1\\ndef added():\\n    return G\\n')
            interp = xinterp.create()
            try:
                interp.call(added)
            except xinterp.NotShareableError as exc:
                print('NotShareableError', 'added' in str(exc))
            interp.exec('print("main untouched", "added" not in dir())')
            interp.close()
        ''')
    assert out == ['NotShareableError True', 'main untouched True']


def test_target_main_definition_is_used_first(tmp_path):
    # As 3.14: the target's own __main__ is tried first; the script runs only when it misses.
    out = run_main_script(tmp_path, '''
        import xinterp

        print('top level', __name__, flush=True)
        G = 'script'

        def where():
            return G

        if __name__ == '__main__':
            interp = xinterp.create()
            interp.exec('G = "target"\\ndef where():\\n    return G\\n')
            print(interp.call(where), flush=True)
            interp.close()
        ''')
    assert out == ['top level __main__', 'target']


def test_failing_script_is_not_shareable_and_retried(tmp_path):
    out = run_main_script(tmp_path, '''
        import os
        import xinterp

        G = 1

        def uses_global():
            return G

        if __name__ != '__main__' and not os.path.exists('ok'):
            raise RuntimeError('not now')

        if __name__ == '__main__':
            interp = xinterp.create()
            try:
                interp.call(uses_global)
            except xinterp.NotShareableError as exc:
                print('NotShareableError', 'not now' in str(exc))
            open('ok', 'w').close()
            print(interp.call(uses_global))
            interp.close()
        ''')
    assert out == ['NotShareableError True', '1']


def test_no_main_script_python_c():
    # python -c has no main script: as 3.14, a function of __main__ that is not stateless is
    # not found in the target; a stateless one travels by its code.
    source = textwrap.dedent('''
        import xinterp
        G = 2
        def uses_global(x):
            return x * G
        def stateless(x):
            return x * 2
        interp = xinterp.create()
        print(interp.call(stateless, 21))
        try:
            interp.call(uses_global, 1)
        except xinterp.NotShareableError as exc:
            print('NotShareableError', 'no main script' in str(exc))
        interp.close()
        ''')
    proc = subprocess.run([sys.executable, '-c', source], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ['42', 'NotShareableError True']


def test_stateless_functions_travel_by_code(interp):
    before = xinterp.runtime_stats()['fallback_function_code']
    assert interp.call(lambda x: x + 1, 41) == 42

    def get_global(name):
        return globals().get(name)

    def set_global(name, value):
        globals()[name] = value

    # A stateless function runs over the target's __main__ (its globals() is that namespace).
    assert interp.call(get_global, '__name__') == '__main__'
    interp.call(set_global, 'spam', 42)
    interp.exec('assert spam == 42')
    assert xinterp.runtime_stats()['fallback_function_code'] >= before + 3
    # A stateless function comes back by code too.
    back = interp.call(lambda: (lambda x: x * 3))
    assert back(5) == 15


def test_nested_functions_that_are_not_stateless_are_not_shareable(interp):
    def with_default(x, y=10):
        return x * y

    k = 3
    with pytest.raises(xinterp.NotShareableError, match='default'):
        interp.call(with_default, 4)
    with pytest.raises(xinterp.NotShareableError, match='closure'):
        interp.call(lambda: k)
    with pytest.raises(xinterp.NotShareableError, match="global 'xinterp'"):
        interp.call(lambda: xinterp)


def test_script_without_main_guard_does_not_recurse(tmp_path):
    # The script's top level calls into a new interpreter, which runs the script as the fake
    # __main__; there its own top-level call cannot send its function on (it belongs to
    # '<fake __main__>', which no interpreter can import), so no interpreter per level forever.
    out = run_main_script(tmp_path, '''
        import xinterp

        G = 5

        def uses_global():
            return G

        interp = xinterp.create()
        try:
            print('result', __name__, interp.call(uses_global), flush=True)
        except xinterp.NotShareableError as exc:
            print('NotShareableError', __name__, flush=True)
        interp.close()
        ''')
    assert out == ['NotShareableError <fake __main__>', 'result __main__ 5']


def test_queue_item_of_a_main_class_is_rebuilt_from_the_script(tmp_path):
    out = run_main_script(tmp_path, '''
        import xinterp

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        if __name__ == '__main__':
            q = xinterp.create_queue()
            q.put(Point(2, 3))
            interp = xinterp.create()
            interp.prepare_main(q=q)
            interp.exec('p = q.get()\\nprint(type(p).__name__, p.x * p.y, flush=True)')
            interp.close()
        ''')
    assert out == ['Point 6']


def test_a_function_whose_nested_functions_use_its_locals_travels_by_code(interp):
    # As 3.14's stateless check: cell variables (locals that its own nested functions use) are
    # allowed; only a closure over the enclosing scope is not.
    def work(n):
        return sum(map(lambda k: k * n, range(3)))

    before = xinterp.runtime_stats()['fallback_function_code']
    assert interp.call(lambda n: (lambda: n)(), 4) == 4
    assert interp.call(work, 2) == 6
    assert xinterp.runtime_stats()['fallback_function_code'] >= before + 2


RACE_SCRIPT = '''
    import xinterp

    def main_func():
        return marker

    marker = 1
    print('script ran', flush=True)

    if __name__ == '__main__':
        RECEIVER = """if True:
            import sys, threading
            sys.setswitchinterval(1e-6)  # switch threads as often as possible
            real = sys.modules['__main__']
            got = []
            ts = [threading.Thread(target=lambda: got.append(q.get()())) for _ in range(4)]
            for t in ts: t.start()
            for t in ts: t.join()
            assert got == [1, 1, 1, 1], got
            assert sys.modules['__main__'] is real, sys.modules['__main__']
            import __main__
            assert __main__ is real
        """
        for trial in range(TRIALS):
            q = xinterp.create_queue()
            i = xinterp.create()
            i.prepare_main(q=q)
            for _ in range(4):
                q.put(main_func)
            i.exec(RECEIVER)
            i.close()
        print('done', flush=True)
'''


def test_threads_of_one_receiver_run_the_main_script_once_and_keep_its_real_main(tmp_path):
    # Four threads of a fresh receiver unpickle a function of the sender's main script at once:
    # the script runs once in that interpreter (one helper namespace, one cache), and every
    # thread's swap of sys.modules['__main__'] is undone (the real module stays). Without the
    # fixes, 14 of 20 fresh interpreters ran the script more than once (seen in review).
    trials = 10
    out = run_main_script(tmp_path, RACE_SCRIPT.replace('TRIALS', str(trials)))
    assert out.count('script ran') == 1 + trials, out  # the real run, then once per receiver
    assert out[-1] == 'done'


def test_fake_main_loads_and_script_runs_are_counted(tmp_path):
    out = run_main_script(tmp_path, '''
        import xinterp

        def scaled(x):
            return x * factor

        factor = 10

        if __name__ == '__main__':
            before = xinterp.runtime_stats()
            interps = [xinterp.create(), xinterp.create()]
            results = [i.call(scaled, k) for i in interps for k in (1, 2)]
            after = xinterp.runtime_stats()
            print(results)
            # Two interpreters, two values each: the script ran once in each, every value was
            # rebuilt against the fake __main__.
            print(after['fallback_main_script_runs'] - before['fallback_main_script_runs'],
                  after['fallback_fake_main_loads'] - before['fallback_fake_main_loads'])
            # A stateless function travels by code: neither counter moves.
            interps[0].call(lambda x: x + 1, 1)
            final = xinterp.runtime_stats()
            print(final['fallback_main_script_runs'] - after['fallback_main_script_runs'],
                  final['fallback_fake_main_loads'] - after['fallback_fake_main_loads'])
            for i in interps:
                i.close()
        ''')
    assert out == ['[10, 20, 10, 20]', '2 4', '0 0']
