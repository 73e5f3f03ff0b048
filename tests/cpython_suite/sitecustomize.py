"""Bootstrap for running CPython 3.13's own `test_interpreters` suite against xinterp.

tools/cpython_suite.py copies this file, with the suite, into a temporary folder and puts that
folder first on PYTHONPATH with XINTERP_CPYTHON_SUITE=1, so `site` imports it in the runner
process, in every interpreter created there (sub-interpreters run `site` too) and in every
`python` subprocess a test starts. Outside such a run it does nothing.

It installs one meta-path finder that answers for these names only:
- `test.support.interpreters`, `.queues` and `.channels`: xinterp, `xinterp.queues` and
  `xinterp.channels` (the module objects themselves; their `__spec__` is restored);
- CPython's private modules `_interpreters`, `_interpqueues`, `_interpchannels`,
  `_testinternalcapi`, `_testcapi` and the draft package's own `_crossinterp`: a guard module
  whose attributes raise NeedsPrivateModule, so that a test reaching below the public API
  stops there and the runner counts it as "needs private module" instead of as a failure.
  Importing a guarded module succeeds (the suite imports them at module level); only using one
  is refused. While the runner imports the test modules (`STRICT` False), attribute access
  hands out placeholders instead, so that module-level constants built from private modules
  (test_queues' REPLACE) do not stop the import; a placeholder refuses every use once STRICT.
"""

import os
import sys

ALIASES = {
    'test.support.interpreters': 'xinterp',
    'test.support.interpreters.queues': 'xinterp.queues',
    'test.support.interpreters.channels': 'xinterp.channels',
}
# The draft package's `_crossinterp`: `from test.support.interpreters import _crossinterp` looks
# it up under the name of the module standing in for the package, hence `xinterp._crossinterp`.
PRIVATE = ('_interpreters', '_interpqueues', '_interpchannels', '_testinternalcapi', '_testcapi',
           'test.support.interpreters._crossinterp', 'xinterp._crossinterp')
MARKER = 'xinterp-suite: needs private module'

# Set by the runner (tests/cpython_suite/runner.py) in its own interpreter.
STRICT = True
CURRENT_TEST = None
HITS = []  # (test id, what) for every refused use in this interpreter


class NeedsPrivateModule(Exception):
    """A test used one of CPython's private modules, which xinterp does not stand in for."""


def _refuse(what):
    HITS.append((CURRENT_TEST, what))
    raise NeedsPrivateModule(f'{MARKER} {what.split(".")[0]} (uses {what})')


class _Placeholder:
    """What a private module's attribute is while the test modules are imported."""

    def __init__(self, what):
        object.__setattr__(self, '_what', what)

    def _next(self, suffix):
        if STRICT:
            _refuse(self._what)
        return _Placeholder(self._what + suffix)

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        return self._next('.' + name)

    def __getitem__(self, key):
        return self._next('[...]')

    def __call__(self, *args, **kwargs):
        return self._next('(...)')

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        if STRICT:
            _refuse(self._what)
        return self is other

    def __str__(self, *args):
        _refuse(self._what)

    __repr__ = __format__ = __index__ = __int__ = __bool__ = __iter__ = __str__


def _guard_module(name):
    import types

    shown = '_crossinterp' if name.endswith('._crossinterp') else name

    class Guard(types.ModuleType):
        def __getattr__(self, attr):
            if attr.startswith('__') and attr.endswith('__'):
                raise AttributeError(attr)
            what = f'{shown}.{attr}'
            if STRICT:
                _refuse(what)
            return _Placeholder(what)

    return Guard(name, f'guard: xinterp does not stand in for CPython private module {name}')


class _Loader:
    def __init__(self, name):
        self.name = name
        self._spec = None

    def create_module(self, spec):
        if self.name in PRIVATE:
            return _guard_module(self.name)
        import importlib
        module = importlib.import_module(ALIASES[self.name])
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        if self._spec is not None:
            module.__spec__ = self._spec  # importlib set ours; the module keeps its own


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in ALIASES or name in PRIVATE:
            import importlib.machinery
            return importlib.machinery.ModuleSpec(name, _Loader(name))
        return None

    @staticmethod
    def invalidate_caches():
        pass


if os.environ.get('XINTERP_CPYTHON_SUITE') == '1':
    sys.meta_path.insert(0, _Finder)
