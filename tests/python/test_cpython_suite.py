"""CPython 3.13's own test_interpreters suite against xinterp (tools/cpython_suite.py).

`test_cpython_313_suite` runs the real suite, copied from the installed CPython at test time
(never kept in this repository), and passes only if the failing tests are exactly those of
tests/cpython_suite/allowed_failures.toml. It runs on CPython 3.13 only: 3.12 ships an older,
PEP 554 era test_interpreters.py, not this package, and 3.13's copy needs 3.13's test.support.

The other tests check the harness itself, on any Python, with a small suite of our own that has
the same shape (a package with utils.py and test_*.py modules): a passing test, a failing one,
tests that use CPython's private modules (directly, in a sub-interpreter, in a subtest, or
swallowed by an `except`), and the allowed table's rules (unexpected failure, stale row,
failing parts).
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, 'tools', 'cpython_suite.py')
sys.path.insert(0, os.path.join(ROOT, 'tools'))
import cpython_suite  # noqa: E402

SOURCE = cpython_suite.default_source()


def run_tool(*args, timeout=300):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.skipif(not os.path.isfile(os.path.join(SOURCE, 'utils.py')),
                    reason='no CPython 3.13 test_interpreters package next to this Python '
                           '(3.12 ships an older PEP 554 era test_interpreters.py instead)')
def test_cpython_313_suite():
    proc = run_tool(timeout=3600)
    report = proc.stdout[proc.stdout.rfind('=== CPython'):] if '=== CPython' in proc.stdout \
        else proc.stdout[-5000:] + proc.stderr[-5000:]
    print(proc.stdout)
    assert proc.returncode == 0, report
    assert 'cpython suite: OK' in proc.stdout


FAKE_UTILS = '''
import unittest
from test.support import interpreters
try:
    import _interpreters
except ImportError as exc:
    raise unittest.SkipTest(str(exc))

class TestBase(unittest.TestCase):
    def tearDown(self):
        clean_up_interpreters()

def clean_up_interpreters():
    for interp in interpreters.list_all():
        if interp.id:
            try:
                interp.close()
            except _interpreters.InterpreterError:
                pass
'''

FAKE_TESTS = '''
import unittest
import _interpreters
from test.support import interpreters
from test.support.interpreters import queues
from .utils import TestBase

CONSTANT = _interpreters.WHENCE_STDLIB  # module level: must not stop the import


class Public(TestBase):
    def test_passes(self):
        interp = interpreters.create()
        interp.exec('from test.support import interpreters as i; assert i.__name__ == "xinterp"')
        self.assertEqual(queues.create().maxsize, 0)

    def test_fails(self):
        self.assertEqual(1, 2)

    def test_fails_in_one_subtest(self):
        for i in range(3):
            with self.subTest(i):
                self.assertNotEqual(i, 1)

    @unittest.skip('broken')
    def test_skipped(self):
        pass


class Private(TestBase):
    def test_direct(self):
        _interpreters.create()

    def test_in_subinterpreter(self):
        interpreters.create().exec('import _interpreters; _interpreters.list_all()')

    def test_constant(self):
        self.assertEqual(CONSTANT, 1)

    def test_swallowed(self):
        try:
            _interpreters.get_main()
        except Exception:
            pass
        self.fail('went on without the private module')

    def test_private_subtest_and_public_pass(self):
        with self.subTest('private'):
            _interpreters.get_main()
        with self.subTest('public'):
            self.assertTrue(interpreters.get_main().id == 0)
'''


@pytest.fixture
def fake_suite(tmp_path):
    src = tmp_path / 'suite'
    src.mkdir()
    (src / '__init__.py').write_text('')
    (src / 'utils.py').write_text(textwrap.dedent(FAKE_UTILS))
    (src / 'test_fake.py').write_text(textwrap.dedent(FAKE_TESTS))
    return src


def write_table(path, rows):
    text = ''
    for test, subtests in rows:
        text += f'[[failure]]\ntest = "{test}"\nreason = "for the harness test"\n'
        if subtests is not None:
            text += f'subtests = {subtests!r}\n'.replace("'", '"')
    path.write_text(text)
    return str(path)


def test_harness_classifies_public_private_and_skipped(fake_suite, tmp_path):
    table = write_table(tmp_path / 'allowed.toml', [
        ('test_fake.Public.test_fails', None),
        ('test_fake.Public.test_fails_in_one_subtest', ['[1]']),
    ])
    proc = run_tool('--source', str(fake_suite), '--allowed', table, '-v')
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert '3 public-API tests: 1 passed, 2 allowed failures, 0 unexpected failures' in out
    assert '5 left out (need private modules), 1 skipped by the suite itself' in out
    for name in ('test_direct', 'test_in_subinterpreter', 'test_constant', 'test_swallowed',
                 'test_private_subtest_and_public_pass'):
        assert f'LEFT OUT     test_fake.Private.{name}  -- _interpreters' in out, out
    assert 'ok           test_fake.Public.test_passes' in out
    assert 'cpython suite: OK' in out


def test_harness_fails_on_unexpected_failure_and_on_stale_rows(fake_suite, tmp_path):
    table = write_table(tmp_path / 'allowed.toml', [
        ('test_fake.Public.test_passes', None),                        # passes: stale
        ('test_fake.Public.test_fails_in_one_subtest', ['[2]']),       # [1] fails, [2] passes
    ])
    proc = run_tool('--source', str(fake_suite), '--allowed', table)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert 'UNEXPECTED FAILURE  test_fake.Public.test_fails: AssertionError: 1 != 2' in out
    assert ('UNEXPECTED FAILURE  test_fake.Public.test_fails_in_one_subtest: failing parts not '
            'in the table: [1]') in out
    assert 'STALE ROW  test_fake.Public.test_passes: listed as allowed to fail, but passed' in out
    assert ('STALE ROW  test_fake.Public.test_fails_in_one_subtest: these listed parts pass '
            'now: [2]') in out
    assert 'cpython suite: FAILED' in out


def test_harness_counts_a_hung_test_as_failed_and_goes_on(fake_suite, tmp_path):
    (fake_suite / 'test_hang.py').write_text(textwrap.dedent('''
        import threading
        import unittest

        class Hangs(unittest.TestCase):
            def test_a_hangs(self):
                threading.Event().wait()

            def test_b_after(self):
                pass
        '''))
    table = write_table(tmp_path / 'allowed.toml', [
        ('test_fake.Public.test_fails', None),
        ('test_fake.Public.test_fails_in_one_subtest', None),
    ])
    proc = run_tool('--source', str(fake_suite), '--allowed', table, '--only', 'test_hang',
                    '--only', 'test_fake.Public', '--hang-seconds', '3', '-v')
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert 'UNEXPECTED FAILURE  test_hang.Hangs.test_a_hangs: runner ended in this test' in out
    assert 'ok           test_hang.Hangs.test_b_after' in out


def test_nothing_to_run_without_the_suite(tmp_path):
    proc = run_tool('--source', str(tmp_path))
    assert proc.returncode == 2
    assert 'nothing to run' in proc.stdout


def test_the_allowed_table_is_well_formed():
    allowed = cpython_suite.load_allowed()
    for test, (reason, _) in allowed.items():
        assert reason.startswith(('deliberate deviation:',
                                  'draft-only 3.13 behaviour that 3.14 changed:')), test
