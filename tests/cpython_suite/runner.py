"""Runs the copied CPython suite in this process and writes one JSON line per event.

Started by tools/cpython_suite.py (never by hand) as
``python runner.py EVENTS_FILE PACKAGE [--exclude FILE] [--hang-seconds N]`` with the copy's
folder first on PYTHONPATH and XINTERP_CPYTHON_SUITE=1 (so that sitecustomize.py, the
bootstrap, already made xinterp stand in for ``test.support.interpreters``). Events:
``{"event": "start", "test": id}``, ``{"event": "unit", "test": id, "subtest": str|null,
"outcome": "error"|"failure"|"skip"|"success"|..., "text": str}``, ``{"event": "stop", "test":
id, "private_hits": [...]}`` and ``{"event": "done"}`` at the end. A test that does not end
within --hang-seconds makes faulthandler dump every thread's stack and exit; the parent then
counts that test as hung and starts a new runner for the rest.
"""

import argparse
import faulthandler
import gc
import importlib
import json
import os
import sys
import traceback
import unittest

import sitecustomize as bootstrap

def _patch_cleanups(package):
    """The suite's tearDown hooks that reach into private modules are replaced by public ones:
    utils.clean_up_interpreters catches `_interpreters.InterpreterError` (xinterp's
    InterpreterError is the public one), and test_queues' TestBase destroys leftover queues
    through `_interpqueues`: here it closes the test's interpreters instead (as every other
    TestBase does) and collects garbage, so that the queues they and the test held go away
    (xinterp's queues live while something refers to them)."""
    import xinterp
    utils = importlib.import_module(f'{package}.utils')

    def clean_up_interpreters():
        for interp in xinterp.list_all():
            if interp.id == 0:
                continue
            try:
                interp.close()
            except xinterp.InterpreterError:
                pass

    utils.clean_up_interpreters = clean_up_interpreters
    try:
        test_queues = importlib.import_module(f'{package}.test_queues')
    except Exception:
        return  # reported as that module's import error
    def tear_down(self):
        clean_up_interpreters()
        gc.collect()

    test_queues.TestBase.tearDown = tear_down


class Recorder(unittest.TestResult):
    def __init__(self, out, package):
        super().__init__()
        self.out = out
        self.prefix = package + '.'

    def _id(self, test):
        tid = test.id()
        return tid[len(self.prefix):] if tid.startswith(self.prefix) else tid

    def _emit(self, **event):
        self.out.write(json.dumps(event) + '\n')
        self.out.flush()

    def _unit(self, test, outcome, err=None, subtest=None, text=None):
        if err is not None:
            text = ''.join(traceback.format_exception(*err))
        self._emit(event='unit', test=self._id(test), subtest=subtest, outcome=outcome,
                   text=text or '')

    def startTest(self, test):
        super().startTest(test)
        tid = self._id(test)
        bootstrap.CURRENT_TEST = tid
        self._hits_before = len(bootstrap.HITS)
        self._emit(event='start', test=tid)

    def stopTest(self, test):
        hits = [what for _, what in bootstrap.HITS[self._hits_before:]]
        bootstrap.CURRENT_TEST = None
        self._emit(event='stop', test=self._id(test), private_hits=hits)
        super().stopTest(test)

    def addSuccess(self, test):
        self._unit(test, 'success')

    def addError(self, test, err):
        if not isinstance(test, unittest.TestCase):  # a class or module fixture
            self._emit(event='fixture_error', test=str(test),
                       text=''.join(traceback.format_exception(*err)))
            return
        self._unit(test, 'error', err)

    def addFailure(self, test, err):
        self._unit(test, 'failure', err)

    def addSkip(self, test, reason):
        self._unit(test, 'skip', text=reason)

    def addExpectedFailure(self, test, err):
        self._unit(test, 'success', text='expected failure')

    def addUnexpectedSuccess(self, test):
        self._unit(test, 'failure', text='unexpected success')

    def addSubTest(self, test, subtest, err):
        if err is not None:
            outcome = 'failure' if issubclass(err[0], test.failureException) else 'error'
            self._unit(test, outcome, err, subtest=subtest._subDescription())


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('events')
    parser.add_argument('package')
    parser.add_argument('--exclude')
    parser.add_argument('--only', action='append', default=[])
    parser.add_argument('--hang-seconds', type=float, default=300)
    parser.add_argument('--list', action='store_true', help='write "listed" events, run nothing')
    args = parser.parse_args()
    excluded = set()
    if args.exclude and os.path.exists(args.exclude):
        with open(args.exclude) as f:
            excluded = {line.strip() for line in f if line.strip()}

    folder = os.path.join(os.environ['XINTERP_CPYTHON_SUITE_DIR'], args.package)
    modules = sorted(name[:-3] for name in os.listdir(folder)
                     if name.startswith('test_') and name.endswith('.py'))
    with open(args.events, 'a') as out:
        result = Recorder(out, args.package)
        bootstrap.STRICT = False  # module-level use of private modules gets placeholders
        try:
            loader = unittest.TestLoader()
            tests = []
            for name in modules:
                tests.extend(_flatten(loader.loadTestsFromName(f'{args.package}.{name}')))
            _patch_cleanups(args.package)
        finally:
            bootstrap.STRICT = True
        chosen = []
        for test in tests:
            tid = result._id(test)
            if tid in excluded:
                continue
            if args.only and not any(tid == o or tid.startswith(o + '.') for o in args.only):
                continue
            chosen.append(test)
            if args.list:
                result._emit(event='listed', test=tid)
        for test in chosen if not args.list else ():
            faulthandler.dump_traceback_later(args.hang_seconds, exit=True)
            unittest.TestSuite([test]).run(result)
            faulthandler.cancel_dump_traceback_later()
        result._emit(event='done')


if __name__ == '__main__':
    main()
