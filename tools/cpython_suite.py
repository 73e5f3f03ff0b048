#!/usr/bin/env python3
"""Runs CPython 3.13's own suite for its draft PEP 734 package against xinterp.

    python tools/cpython_suite.py [-v] [--list] [--only test_queues.TestQueueOps] [--keep]

with the Python (3.13) whose xinterp is to be measured. The suite is copied at run time from
that CPython's installation (``<stdlib>/test/test_interpreters/``) into a temporary folder,
never into this repository, together with tests/cpython_suite/sitecustomize.py, an import
alias that makes xinterp stand in for ``test.support.interpreters`` (and ``.queues``,
``.channels``) in the runner, in every interpreter it creates and in every subprocess.

Every test is classified (tests/cpython_suite/runner.py runs them, one JSON line per event):
- "needs private module": it used CPython's private `_interpreters`, `_interpqueues`,
  `_interpchannels`, `_testinternalcapi`, `_testcapi` or the draft's `_crossinterp` (found
  automatically: the bootstrap's guard refuses every use of those, in any interpreter, and the
  refusal is recognised in the test's outcome). Left out. A test whose public part failed as
  well counts as failed.
- skipped by the suite itself (e.g. ``@unittest.skip('broken ...')``);
- otherwise a public-API test: passed or failed. A test that hangs (--hang-seconds) or crashes
  the runner counts as failed; the run goes on with the next one in a new runner.

The failing public-API tests are compared with tests/cpython_suite/allowed_failures.toml (one
row per test, each with its reason). Exit status 0 only if the failing set is exactly that
table: a failure not in it is unexpected, and a row whose test now passes (or no longer exists)
is stale, so the table stays true. Exit status 2 when there is nothing to run (no CPython 3.13
suite next to this Python).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, 'tests', 'cpython_suite')
ALLOWED = os.path.join(HERE, 'allowed_failures.toml')
PACKAGE = 'test_interpreters'
MARKER = 'xinterp-suite: needs private module'


def default_source():
    return os.path.join(sysconfig.get_path('stdlib'), 'test', PACKAGE)


def load_allowed(path=ALLOWED):
    """-> {test id: (reason, subtests or None)} from the table (subtests: the failing parts
    allowed, as the runner names them: "[description]", or "(test)" for the test's own body)."""
    import tomllib
    with open(path, 'rb') as f:
        rows = tomllib.load(f).get('failure', [])
    allowed = {}
    for row in rows:
        if not {'test', 'reason'} <= set(row) <= {'test', 'reason', 'subtests'} \
                or not row['reason'].strip():
            raise SystemExit(f'{path}: each [[failure]] needs test and reason '
                             f'(and may list subtests): {row}')
        if row['test'] in allowed:
            raise SystemExit(f'{path}: {row["test"]} listed twice')
        subtests = row.get('subtests')
        allowed[row['test']] = (row['reason'], set(subtests) if subtests is not None else None)
    return allowed


def _copy_suite(source, dest):
    shutil.copytree(source, os.path.join(dest, PACKAGE),
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    shutil.copy(os.path.join(HERE, 'sitecustomize.py'), dest)


def _environment(folder):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [folder] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    env['XINTERP_CPYTHON_SUITE'] = '1'
    env['XINTERP_CPYTHON_SUITE_DIR'] = folder
    env['PYTHONFAULTHANDLER'] = '1'
    env.pop('PYTHONSAFEPATH', None)
    return env


def _read_events(path):
    events = []
    with open(path) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut short by a crash
    return events


def run_suite(source, *, only=(), hang_seconds=300, keep=False, listing=False, log=None,
              max_restarts=20):
    """Runs the suite; returns (tests, notes): tests maps id -> dict(units, hits, ended, crash)."""
    folder = tempfile.mkdtemp(prefix='xinterp-cpython-suite-')
    try:
        _copy_suite(source, folder)
        events_path = os.path.join(folder, 'events.jsonl')
        exclude_path = os.path.join(folder, 'exclude.txt')
        open(exclude_path, 'w').close()
        env = _environment(folder)
        tests, notes, order = {}, [], []
        for attempt in range(max_restarts + 1):
            open(events_path, 'w').close()
            cmd = [sys.executable, os.path.join(HERE, 'runner.py'), events_path, PACKAGE,
                   '--exclude', exclude_path, '--hang-seconds', str(hang_seconds)]
            cmd += [a for o in only for a in ('--only', o)]
            if listing:
                cmd.append('--list')
            proc = subprocess.run(cmd, cwd=folder, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors='replace')
            if log is not None:
                log.write(proc.stdout)
            events = _read_events(events_path)
            current, done = None, False
            for ev in events:
                kind = ev['event']
                if kind == 'listed':
                    order.append(ev['test'])
                elif kind == 'start':
                    current = ev['test']
                    order.append(current)
                    tests[current] = {'units': [], 'hits': [], 'ended': False, 'crash': None}
                elif kind == 'unit':
                    if ev['test'] not in tests:  # a skip, which 3.12 reports without startTest
                        order.append(ev['test'])
                        tests[ev['test']] = {'units': [], 'hits': [], 'ended': True,
                                             'crash': None}
                    tests[ev['test']]['units'].append(ev)
                elif kind == 'stop':
                    tests[ev['test']]['hits'] = ev['private_hits']
                    tests[ev['test']]['ended'] = True
                    current = None
                elif kind == 'fixture_error':
                    notes.append(f'fixture error in {ev["test"]}:\n{ev["text"]}')
                elif kind == 'done':
                    done = True
            with open(exclude_path, 'a') as f:
                for tid, t in tests.items():
                    f.write(tid + '\n')
            if done:
                if proc.returncode != 0:
                    notes.append(f'the runner exited with status {proc.returncode} after the '
                                 f'last test:\n{proc.stdout[-3000:]}')
                break
            if current is None:
                notes.append(f'the runner ended (status {proc.returncode}) outside any test:\n'
                             f'{proc.stdout[-3000:]}')
                break
            tests[current]['crash'] = (f'runner ended in this test (status {proc.returncode}; '
                                       f'hung for {hang_seconds:g} s or crashed):\n'
                                       f'{proc.stdout[-3000:]}')
        else:
            notes.append('too many runner restarts; the rest was not run')
        return tests, notes, order
    finally:
        if keep:
            print(f'kept {folder}', file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _private_modules(t):
    found = set(h.split('.')[0] for h in t['hits'])
    for u in t['units']:
        if MARKER in u['text']:
            tail = u['text'].split(MARKER, 1)[1].split()
            if tail:
                found.add(tail[0])
    return sorted(found)


_EXCEPTION_LINE = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Failed|Exit|Interrupt|Empty|Full|'
                             r'Destroyed|NotFound|Warning)(: .*)?$')


def _cause(text):
    """One line: the last exception line of a traceback (whose message, for ExecutionFailed,
    names the exception raised in the other interpreter)."""
    lines = [ln for ln in text.splitlines() if _EXCEPTION_LINE.match(ln)]
    if lines:
        return lines[-1][:200]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else '?'


def failing_parts(t):
    """The parts of a test that failed, other than uses of private modules."""
    return {u['subtest'] or '(test)' for u in t['units']
            if u['outcome'] in ('error', 'failure') and MARKER not in u['text']}


def classify(t):
    """-> (kind, detail): kind in passed, failed, private, skipped."""
    if t['crash']:
        return 'failed', t['crash'].splitlines()[0]
    failing = [u for u in t['units'] if u['outcome'] in ('error', 'failure')]
    marked = [u for u in failing if MARKER in u['text']]
    others = [u for u in failing if MARKER not in u['text']]
    swallowed = len(t['hits']) > len(marked)
    if (marked or t['hits']) and (swallowed or not others):
        return 'private', ', '.join(_private_modules(t))
    if others:
        u = others[0]
        where = f' [{u["subtest"]}]' if u['subtest'] else ''
        more = f' (+{len(others) - 1} more)' if len(others) > 1 else ''
        return 'failed', f'{_cause(u["text"])}{where}{more}'
    if t['units'] and all(u['outcome'] == 'skip' for u in t['units']):
        return 'skipped', t['units'][0]['text']
    if not t['ended']:
        return 'failed', 'did not finish'
    return 'passed', ''


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print every test with its outcome, and the failures in full')
    parser.add_argument('--list', action='store_true', help='list the tests, run nothing')
    parser.add_argument('--only', action='append', default=[], metavar='ID',
                        help='run only this test, class or module (repeatable); '
                             'the allowed table is then checked only for what ran')
    parser.add_argument('--source', default=default_source(),
                        help='the suite to copy (default: %(default)s)')
    parser.add_argument('--hang-seconds', type=float, default=300,
                        help='a test running longer counts as hung (default 300)')
    parser.add_argument('--allowed', default=ALLOWED,
                        help='the table of allowed failures (default: %(default)s)')
    parser.add_argument('--keep', action='store_true', help='keep the temporary copy')
    args = parser.parse_args(argv)

    if not os.path.isfile(os.path.join(args.source, 'utils.py')):
        # 3.12 ships an older, PEP 554 era test_interpreters.py (interp.run(), ...), not this
        # package; and 3.13's copy needs 3.13's test.support (force_not_colorized, ...).
        print(f'nothing to run: no CPython 3.13 test_interpreters package at {args.source} '
              f'(Python {sys.version.split()[0]})')
        return 2
    import xinterp  # the build being measured: fail here, not in every test
    print(f'CPython suite from {args.source}\nxinterp from {os.path.dirname(xinterp.__file__)}',
          flush=True)

    start = time.monotonic()
    tests, notes, order = run_suite(args.source, only=args.only, hang_seconds=args.hang_seconds,
                                    keep=args.keep, listing=args.list)
    if args.list:
        for tid in order:
            print(tid)
        print(f'{len(order)} tests')
        return 0
    allowed = load_allowed(args.allowed)
    results = {tid: classify(t) for tid, t in tests.items()}
    by_kind = {k: sorted(t for t, (kind, _) in results.items() if kind == k)
               for k in ('passed', 'failed', 'private', 'skipped')}
    failed = set(by_kind['failed'])
    checked = {t for t in allowed if not args.only or
               any(t == o or t.startswith(o + '.') for o in args.only)}
    unexpected, stale = [], []
    for tid in sorted(failed):
        if tid not in allowed:
            unexpected.append((tid, results[tid][1]))
            continue
        parts, allowed_parts = failing_parts(tests[tid]), allowed[tid][1]
        if allowed_parts is not None:
            if parts - allowed_parts:
                unexpected.append((tid, 'failing parts not in the table: '
                                   + ', '.join(sorted(parts - allowed_parts))))
            if allowed_parts - parts:
                stale.append((tid, 'these listed parts pass now: '
                              + ', '.join(sorted(allowed_parts - parts))))
    for tid in sorted(checked - failed):
        state = results[tid][0] if tid in results else 'not found'
        stale.append((tid, f'listed as allowed to fail, but {state}'))
    allowed_failed = sorted((failed & set(allowed)) - {tid for tid, _ in unexpected})
    ran = bool(results)

    if args.verbose:
        for tid in order:
            kind, detail = results[tid]
            mark = {'failed': 'ALLOWED FAIL' if tid in allowed else 'FAIL',
                    'private': 'LEFT OUT', 'skipped': 'SKIPPED', 'passed': 'ok'}[kind]
            print(f'{mark:12} {tid}' + (f'  -- {detail}' if detail else ''))
        for tid, _ in unexpected:
            t = tests[tid]
            print(f'\n===== {tid}')
            for u in t['units']:
                if u['outcome'] in ('error', 'failure'):
                    print(f'--- {u["subtest"] or "(test)"}: {u["outcome"]}\n{u["text"]}')
            if t['crash']:
                print(t['crash'])
    for note in notes:
        print(f'\nNOTE: {note}')

    public = len(by_kind['passed']) + len(failed)
    print(f'\n=== CPython {sys.version.split()[0]} test_interpreters against xinterp '
          f'({time.monotonic() - start:.0f} s)')
    print(f'{public} public-API tests: {len(by_kind["passed"])} passed, '
          f'{len(allowed_failed)} allowed failures, '
          f'{len(unexpected)} unexpected failures')
    print(f'{len(by_kind["private"])} left out (need private modules), '
          f'{len(by_kind["skipped"])} skipped by the suite itself')
    for tid in allowed_failed:
        print(f'  allowed  {tid}: {allowed[tid][0]}')
    for tid, why in unexpected:
        print(f'  UNEXPECTED FAILURE  {tid}: {why}')
    for tid, why in stale:
        print(f'  STALE ROW  {tid}: {why}; update {args.allowed}')
    ok = not unexpected and not stale and not notes and ran
    print('cpython suite: ' + ('OK' if ok else 'FAILED'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
