"""What the bad-input tests (test_bad_input_*.py) share: the check, the odd values they feed in,
and the tables of bad ids and timeouts that every kind of object must refuse alike.

Bad input (issue 6, item 6): every public function, given wrong types, out-of-range values,
closed or destroyed objects, ids of dead interpreters or huge values, raises a clear Python
exception (the specific type, and a message that says what was wrong), never crashes, and
leaks nothing (conftest's leak check runs after every case). The cases are tables: (call,
expected exception type, fragment of its message). The private ``xinterp._xinterp`` functions
are swept too, since a user can reach them. What could take the process down runs in a fresh
process (conftest.run_script), whose exit status and stderr are checked.
"""

import decimal

import pytest

INF = float('inf')
NAN = float('nan')
NOT_FOUND = 'unrecognized interpreter ID'
UNUSED = 2**63 - 1  # a valid id, never handed out


def check(call, exc, fragment):
    """call() raises exc, whose message contains fragment; returns the exception."""
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), str(info.value)
    return info.value


def assert_clean_exit(proc, expected_last_line='done'):
    """A run_script() process exited 0, printed expected_last_line last, and reported nothing
    that means a crash or an error on its way out."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    for marker in ('Fatal Python error', 'Segmentation fault', 'SystemError', 'Traceback'):
        assert marker not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == expected_last_line, proc.stdout[-2000:]


class BadBool:
    """An object whose truth value raises: a block=/syncobj= flag that cannot be read."""

    def __bool__(self):
        raise ZeroDivisionError('bad bool')


def nested_tuple(depth):
    t = ()
    for _ in range(depth):
        t = (t,)
    return t


def nested_list(depth):
    v = []
    for _ in range(depth):
        v = [v]
    return v


DEEP_TUPLE = nested_tuple(100_000)
DEEP_LIST = nested_list(100_000)

# Ids: wrong types, out of range, too large. Every function taking an interpreter, queue or
# channel id refuses these alike.
BAD_IDS = [
    pytest.param(-1, ValueError, 'must be a non-negative int', id='-1'),
    pytest.param(-2**70, ValueError, 'must be a non-negative int', id='-2**70'),
    pytest.param(2**63, OverflowError, 'too large', id='2**63'),
    pytest.param(2**64 + 1, OverflowError, 'too large', id='2**64+1'),
    pytest.param(10**100, OverflowError, 'too large', id='10**100'),
    pytest.param('1', TypeError, 'must be an int', id='str'),
    pytest.param(1.0, TypeError, 'must be an int', id='float'),
    pytest.param(None, TypeError, 'must be an int', id='None'),
    pytest.param(b'\x01', TypeError, 'must be an int', id='bytes'),
]

# Timeouts every blocking call (close, put, get, send, recv) refuses alike.
BAD_TIMEOUTS = [
    pytest.param(-1, ValueError, 'non-negative', id='-1'),
    pytest.param(-1e-9, ValueError, 'non-negative', id='-1e-9'),
    pytest.param(NAN, ValueError, 'non-negative', id='nan'),
    pytest.param(-INF, ValueError, 'non-negative', id='-inf'),
    pytest.param(-2**64, ValueError, 'non-negative', id='-2**64'),
    pytest.param(10**400, OverflowError, 'too large to convert to float', id='10**400'),
    pytest.param('1', TypeError, 'number of seconds', id='str'),
    pytest.param(b'1', TypeError, 'number of seconds', id='bytes'),
    pytest.param([], TypeError, 'number of seconds', id='list'),
    pytest.param(1j, TypeError, 'number of seconds', id='complex'),
    pytest.param(decimal.Decimal('0.5'), TypeError, 'number of seconds', id='Decimal'),
]

# Timeouts too long to ever expire: accepted, and the wait still wakes.
HUGE_TIMEOUTS = [
    pytest.param(INF, id='inf'), pytest.param(1e300, id='1e300'),
    pytest.param(2**64, id='2**64'), pytest.param(10**18, id='10**18'),
]
